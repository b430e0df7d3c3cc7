"""A club on bank transfers alone, as production runs it: gunicorn (the Procfile's web) and the RQ
worker (jobs.worker.Worker) on the test database and a real Redis, with no Stripe variable at all.
A SePay webhook is answered at once; the worker matches it and the booking turns confirmed."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from loafy.models import BankTransaction, Booking, LedgerEntry
from loafy.people.tokens import create_token
from tests.fault_fixtures import production_env, start_gunicorn, stop_gunicorn, stop_process, wait_until
from tests.stripe_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEPAY_KEY = "sepay-stack-key"
PRICE = 90_000


def real_now():
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def stack(app, database_url, redis_url, redis_conn, tmp_path):
    port = free_port()
    env = production_env(database_url, redis_url, port, tmp_path)
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_PUBLISHABLE_KEY", "STRIPE_API_BASE"):
        env.pop(name, None)
    env["SEPAY_API_KEY"] = SEPAY_KEY
    web = start_gunicorn(env, port, tmp_path / "web.log")
    worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [str(BIN / "rq"), "worker", "-w", "jobs.worker.Worker", "--url", redis_url, "default", "mail"],
        env=env,
        cwd=ROOT,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base) or web.poll() is not None, 60, "gunicorn to answer")
        if web.poll() is not None:
            pytest.fail("gunicorn did not start:\n" + (tmp_path / "web.log").read_text()[-3000:])
        yield base
    finally:
        stop_process(worker)
        worker_log.close()
        stop_gunicorn(web)


def _up(base):
    try:
        return requests.get(base + "/healthz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def test_bank_transfer_club_runs_in_production_without_stripe(stack, factory):
    now = real_now()
    club_session = factory.club_session(
        price=PRICE, starts_at=now + timedelta(days=2), booking_opens_at=now - timedelta(hours=1)
    )
    player = factory.user()
    _row, token = create_token(player, "stack test")
    auth = {"Authorization": f"Bearer {token}"}

    card = requests.post(
        f"{stack}/api/bookings",
        json={"session_id": club_session.id, "guest_count": 0, "payment_method": "stripe"},
        headers=auth,
        timeout=10,
    )
    assert card.status_code == 422, card.text
    assert card.json()["error"]["code"] == "payment_method_unavailable"
    assert "Stripe" in card.json()["error"]["message"]
    assert Booking.select().count() == 0

    response = requests.post(
        f"{stack}/api/bookings",
        json={"session_id": club_session.id, "guest_count": 0, "payment_method": "bank_transfer"},
        headers=auth,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["bank"]["memo"] == booking["code"] and booking["bank"]["account_number"]

    body = {
        "id": 91001,
        "gateway": "Vietcombank",
        "transactionDate": "2026-12-03 10:00:00",
        "accountNumber": booking["bank"]["account_number"],
        "code": None,
        "content": f"MBVCB.3317 {booking['code'].replace('-', '').lower()} chuyen khoan",
        "transferType": "in",
        "transferAmount": PRICE,
        "accumulated": 0,
        "subAccount": None,
        "referenceCode": "FT1",
        "description": "",
    }
    response = requests.post(
        f"{stack}/api/webhooks/bank/sepay",
        data=json.dumps(body),
        headers={"Authorization": f"Apikey {SEPAY_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200 and response.json() == {"success": True}

    def confirmed():
        row = Booking.get_by_id(booking["id"])
        return row.status == "confirmed" and row.payment_status == "paid"

    wait_until(confirmed, 30, "the worker to match the transfer")
    assert BankTransaction.get().status == "matched"
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 1
    status = requests.get(f"{stack}/api/bookings/{booking['id']}", headers=auth, timeout=10).json()
    assert status["status"] == "confirmed"
