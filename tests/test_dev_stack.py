"""`loafy dev` end to end: one command brings up web, worker, clock, sign-in and Stripe; Ctrl-C stops all."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from loafy.dev.devserver import free_port


@pytest.fixture
def dev_stack(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "OIDC_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update({"INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1"})
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115 - read after the process ends
    process = subprocess.Popen(
        [sys.executable, "-m", "loafy.cli", "dev", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the test can see every child is gone
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        log.seek(0)
        if "Loafy is running at" in log.read():
            break
        if process.poll() is not None:
            break
        time.sleep(0.5)
    log.seek(0)
    output = log.read()
    assert "Loafy is running at" in output, output[-3000:]
    yield base, process, log
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_loafy_dev_runs_everything_and_ctrl_c_stops_it(dev_stack, tmp_path):
    base, process, log = dev_stack
    log.seek(0)
    banner = log.read()
    assert "admin@loafy.local" in banner and "Dev sign-in" in banner

    health = requests.get(f"{base}/healthz", timeout=5).json()
    assert health == {"status": "ok", "database": "ok", "redis": "ok"}
    home = requests.get(f"{base}/", timeout=5)
    assert home.status_code == 200 and "₫" in home.text  # demo sessions with prices

    # A new user signs in through the local OIDC provider ("Dev sign-in") and lands signed in.
    browser = requests.Session()
    login_page = browser.get(f"{base}/auth/login", timeout=5).text
    assert "Dev sign-in" in login_page
    authorize = browser.get(f"{base}/auth/login/dev", timeout=10)
    assert authorize.status_code == 200 and "127.0.0.1" in authorize.url
    signed_in = browser.post(authorize.url, data={"sub": "newcomer"}, timeout=10)
    assert signed_in.status_code == 200 and signed_in.url.rstrip("/") == base
    me = browser.get(f"{base}/api/auth/me", timeout=5).json()["user"]
    assert me["role"] == "player"

    # The demo admin signs in the same way and opens the staff area.
    admin = requests.Session()
    authorize = admin.get(f"{base}/auth/login/dev", timeout=10)
    admin.post(authorize.url, data={"sub": "admin"}, timeout=10)
    assert admin.get(f"{base}/api/auth/me", timeout=5).json()["user"]["email"] == "admin@loafy.local"
    assert admin.get(f"{base}/admin/", timeout=5).status_code == 200

    # The demo player books; the worker (its scheduler, then a work horse of the Core app) sends
    # the "booking received" e-mail to the outbox.
    player = requests.Session()
    authorize = player.get(f"{base}/auth/login/dev", timeout=10)
    player.post(authorize.url, data={"sub": "player"}, timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', player.get(f"{base}/", timeout=5).text)[1]
    sessions = player.get(f"{base}/api/sessions", timeout=5).json()["items"]
    answers = [
        player.post(
            f"{base}/api/bookings",
            json={"session_id": item["id"], "guest_count": 0, "payment_method": "stripe"},
            headers={"X-CSRFToken": token},
            timeout=10,
        )
        for item in sessions[:3]
    ]
    booked = next(answer.json() for answer in answers if answer.status_code == 201)
    outbox = tmp_path / "instance" / "outbox"  # the INSTANCE_PATH given to `loafy dev`
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        booked["code"] in mail.read_text() for mail in outbox.glob("*.eml")
    ):
        time.sleep(0.5)
    assert any(booked["code"] in mail.read_text() for mail in outbox.glob("*.eml"))

    # Ctrl-C: the dev process stops every child it started.
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not _group_alive(process.pid), "a child of `loafy dev` survived Ctrl-C"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
    log.seek(0)
    assert re.search(r"Traceback", log.read()) is None
