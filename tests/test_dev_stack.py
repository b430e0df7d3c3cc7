"""`loafy dev` end to end: one command brings up web, worker, clock, sign-in and Stripe; Ctrl-C stops all."""

import html
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from loafy.dev.devserver import free_port
from loafy.dev.processes import children


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


def _form_action(page):
    return html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _descendants(pid):
    found = set()
    for child in children(pid):
        found |= {child} | _descendants(child)
    return found


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = pathlib.Path(f"/proc/{pid}/status").read_text()  # a zombie is gone, not yet reaped
    return "State:\tZ" not in status


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
    assert "Đăng nhập thử (dev)" in login_page  # the provider button, in the default language
    chooser = browser.get(f"{base}/auth/login/dev", timeout=10, headers={"Accept-Language": "vi"})
    # Our own page, in the visitor's language, no stylesheet from elsewhere; it posts to the provider.
    assert chooser.status_code == 200 and chooser.url.startswith(base)
    assert "Đăng nhập thử" in chooser.text and "Trần Minh Anh" in chooser.text
    assert "cdn" not in chooser.text.lower() and 'rel="stylesheet" href="http' not in chooser.text
    action = _form_action(chooser.text)
    assert action.startswith("http://127.0.0.1:") and not action.startswith(base)
    signed_in = browser.post(action, data={"sub": "newcomer@example.com"}, timeout=10)
    assert signed_in.status_code == 200 and signed_in.url.rstrip("/") == base
    me = browser.get(f"{base}/api/auth/me", timeout=5).json()["user"]
    assert me["role"] == "player"

    # The demo admin signs in the same way and opens the staff area.
    admin = requests.Session()
    chooser = admin.get(f"{base}/auth/login/dev", timeout=10)
    admin.post(_form_action(chooser.text), data={"sub": "admin"}, timeout=10)
    assert admin.get(f"{base}/api/auth/me", timeout=5).json()["user"]["email"] == "admin@loafy.local"
    assert admin.get(f"{base}/admin/", timeout=5).status_code == 200

    # The demo player books; the worker (its scheduler, then a work horse of the Core app) sends
    # the "booking received" e-mail to the outbox.
    player = requests.Session()
    chooser = player.get(f"{base}/auth/login/dev", timeout=10)
    player.post(_form_action(chooser.text), data={"sub": "player"}, timeout=10)
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

    # A second run on the same folder says why it won't start and leaves the first one alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "OIDC_", "REDIS_URL"))}
    env["INSTANCE_PATH"] = dev_stack_instance(log)
    second = subprocess.run(
        [sys.executable, "-m", "loafy.cli", "dev", "--port", base.rsplit(":", 1)[1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "Another `loafy dev` is already running" in second.stderr and base in second.stderr
    assert requests.get(f"{base}/healthz", timeout=5).json()["redis"] == "ok"

    # Ctrl-C as a terminal sends it: to the whole foreground group. Every child stops, the exit is clean.
    family = _descendants(process.pid)
    assert len(family) >= 4  # gunicorn, the RQ worker, the clock, localstripe, the OIDC provider
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not [pid for pid in family if _alive(pid)], "a child of `loafy dev` survived Ctrl-C"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
    log.seek(0)
    output = log.read()
    assert re.search(r"Traceback", output) is None
    assert "A process stopped" not in output
    # Job chatter stays out of the way: RQ logs warnings only, and no line is printed twice over.
    assert "Listening on default" not in output and "Job OK" not in output
    assert "handling success" not in output


def dev_stack_instance(log):
    return str(os.path.join(os.path.dirname(log.name), "instance"))
