"""Under `loafy dev` (gunicorn, the RQ worker, the clock, embedded Redis): the demo player's
bank-transfer booking is paid by pressing "simulate transfer" in Chromium, and the page turns
confirmed by itself; a second booking is paid by `loafy bank simulate`, a signed webhook posted to
the running stack and matched by its worker."""

import os
import re
import subprocess
import sys
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.test_dev_stack import _form_action, dev_stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


def _wait_confirmed(session, base, booking_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.get(f"{base}/api/bookings/{booking_id}", timeout=5).json()["status"] == "confirmed":
            return True
        time.sleep(0.5)
    return False


def test_demo_transfer_simulated_in_the_browser_and_from_the_cli(dev_stack, browser, tmp_path):  # noqa: F811
    base, _process, log = dev_stack
    log.seek(0)
    assert "waits for a bank transfer" in log.read()  # the demo says what to try

    player = requests.Session()
    player.post(_form_action(player.get(f"{base}/auth/login/dev", timeout=10).text), data={"sub": "player"})
    mine = player.get(f"{base}/api/bookings", timeout=5).json()["items"]
    demo = next(
        b for b in mine if b["payment_method"] == "bank_transfer" and b["status"] == "pending_payment"
    )
    assert demo["bank"]["memo"] == demo["code"]

    # In Chromium, as the demo player (the signed-in cookie; sign-in is tested elsewhere): open
    # the pay page, press the button, watch.
    context = browser.new_context(locale="en-GB", viewport=PHONE, base_url=base)
    context.set_default_timeout(30_000)
    context.add_cookies([{"name": c.name, "value": c.value, "url": base} for c in player.cookies])
    page = context.new_page()
    page.goto(f"/bookings/{demo['id']}/pay")
    expect(page.locator("#bank-memo")).to_have_text(demo["code"])
    page.get_by_role("button", name="Simulate transfer (development)").click()
    expect(page.get_by_text("Transfer received: your booking is confirmed.")).to_be_visible()
    context.close()
    assert _wait_confirmed(player, base, demo["id"], timeout=5)

    # From the command line: a new booking, paid by a signed SePay webhook the CLI posts.
    token = re.search(r'name="csrf_token" value="([^"]+)"', player.get(f"{base}/", timeout=5).text)[1]
    sessions = player.get(f"{base}/api/sessions", timeout=5).json()["items"]
    booked = None
    for item in sessions:
        if item["id"] == demo["session"]["id"] or not item["price"]:
            continue
        answer = player.post(
            f"{base}/api/bookings",
            json={"session_id": item["id"], "guest_count": 0, "payment_method": "bank_transfer"},
            headers={"X-CSRFToken": token},
            timeout=10,
        )
        if answer.status_code == 201:
            booked = answer.json()
            break
    assert booked is not None
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "OIDC_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(LOAFY_ENV="development", INSTANCE_PATH=str(tmp_path / "instance"))
    result = subprocess.run(
        [sys.executable, "-m", "loafy.cli", "bank", "simulate", booked["code"], str(booked["amount"]),
         "--provider", "casso"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert base in result.stdout  # found the running stack's address by itself
    assert _wait_confirmed(player, base, booked["id"])
