"""A burst of bank-transfer webhooks against production's processes: how fast SePay is answered and
how long until every transfer is matched.

    .venv/bin/python bench/bank_burst.py [--db postgres|sqlite] [--transfers 500] [--senders 20]

gunicorn (loafy/gunicorn_conf.py, 2 workers x 4 threads) and one RQ worker (jobs.worker.Worker) on a
fresh database and Redis db 4, no Stripe variable. The transfers are mixed: 60 % exact, 10 % short,
10 % over, 10 % a second transfer for a booking already paid (duplicate), 10 % without a code. Each
webhook's latency is measured by the sender; "all matched" is when no transfer is still waiting.
Then every booking's final state is checked against what its transfers should have made of it.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import drop_database, fresh_database, machine, percentile

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/4"
SEPAY_KEY = "bench-sepay-key"
PRICE = 100_000
ACCOUNT = "0123456789"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(database_url, tmp, count):
    """`count` bank-transfer bookings, pending; returns [(id, code)]."""
    from loafy.app import create_core_app
    from loafy.booking.bookings import book_session
    from loafy.db import connection
    from loafy.migrations import upgrade
    from loafy.models import ClubSession, User

    app = create_core_app(
        {"LOAFY_ENV": "testing", "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp), "JOBS_INLINE": "0"}
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    codes = []
    with app.app_context(), connection():
        upgrade()
        sessions = []
        for n in range(count // 50 + 1):
            sessions.append(
                ClubSession.create(
                    title=f"Bench night {n}",
                    starts_at=now + timedelta(days=2),
                    ends_at=now + timedelta(days=2, hours=2),
                    max_slots=60,
                    available_slots=60,
                    price=PRICE,
                    status="published",
                )
            )
        for n in range(count):
            user = User.create(email=f"bench{n}@example.com", name=f"Bench {n}")
            booking = book_session(user, sessions[n // 50], 0, "bank_transfer", now)
            codes.append((booking.id, booking.code))
    return codes


def plan(codes, total):
    """[(body, booking id or None, kind)]: the mixed burst, shuffled."""
    n = len(codes)
    exact, short, over = int(total * 0.6), int(total * 0.1), int(total * 0.1)
    transfers = []
    ids = iter(range(1, 10**9))

    def body(memo, amount):
        return {
            "id": next(ids),
            "gateway": "Vietcombank",
            "transactionDate": "2026-12-03 10:00:00",
            "accountNumber": ACCOUNT,
            "code": None,
            "content": memo,
            "transferType": "in",
            "transferAmount": amount,
            "accumulated": 0,
            "subAccount": None,
            "referenceCode": "FT",
            "description": "",
        }

    for i, (booking_id, code) in enumerate(codes[: exact + short + over]):
        memo = f"MBVCB.{i} {code.replace('-', '').lower()} chuyen khoan"
        if i < exact:
            transfers.append((body(memo, PRICE), booking_id, "exact"))
        elif i < exact + short:
            transfers.append((body(memo, PRICE // 2), booking_id, "short"))
        else:
            transfers.append((body(memo, PRICE + 20_000), booking_id, "over"))
    rest = total - len(transfers)
    duplicates = rest // 2
    for booking_id, code in codes[:duplicates]:
        transfers.append((body(f"lan 2 {code}", PRICE), booking_id, "duplicate"))
    while len(transfers) < total:
        transfers.append((body("chuyen tien san cau long", PRICE), None, "unmatched"))
    assert n >= exact + short + over
    return transfers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--transfers", type=int, default=500)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="RQ worker processes")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loafy-bench-bank-"))
    database_url, handle = fresh_database(args.db, tmp)
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()
    web, workers = None, []
    try:
        codes = seed(database_url, tmp, int(args.transfers * 0.8))
        transfers = plan(codes, args.transfers)
        # Every kind mixed; a booking's second transfer (the duplicates) after its first.
        firsts = [t for t in transfers if t[2] != "duplicate"]
        random.Random(7).shuffle(firsts)
        duplicates = [t for t in transfers if t[2] == "duplicate"]
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "OIDC_", "RATELIMIT_"))}
        env.update(
            LOAFY_ENV="production",
            DATABASE_URL=database_url,
            REDIS_URL=REDIS_URL,
            SECRET_KEY="bench",
            SEPAY_API_KEY=SEPAY_KEY,
            INSTANCE_PATH=str(tmp),
            MAIL_OUTBOX=str(tmp / "outbox"),
            WEB_CONCURRENCY="2",
            WEB_THREADS="4",
            DB_POOL_SIZE="10",
        )
        web = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", str(ROOT / "loafy/gunicorn_conf.py"), "--bind",
             f"127.0.0.1:{port}", "--no-control-socket", "loafy.wsgi:app"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        workers = [
            subprocess.Popen(
                [str(BIN / "rq"), "worker", "-w", "jobs.worker.Worker", "-q", "--url", REDIS_URL, "default", "mail"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)

        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.senders))
        headers = {"Authorization": f"Apikey {SEPAY_KEY}", "Content-Type": "application/json"}

        def send(item):
            started = time.perf_counter()
            response = session.post(base + "/api/webhooks/bank/sepay", data=json.dumps(item[0]),
                                    headers=headers, timeout=30)  # fmt: skip
            return time.perf_counter() - started, response.status_code

        began = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            results = list(pool.map(send, firsts))
            results += list(pool.map(send, duplicates))
        sent = time.perf_counter() - began
        latencies = [r[0] * 1000 for r in results]
        bad = [r[1] for r in results if r[1] != 200]

        checker = create_checker(database_url, tmp)
        while checker("waiting") and time.perf_counter() - began < 600:
            time.sleep(0.2)
        matched = time.perf_counter() - began
        mismatches = checker("verify", transfers)
        print(
            f"Bank webhook burst: {args.transfers} SePay transfers, {args.senders} senders, {args.db}; {machine()}"
        )
        print(f"gunicorn 2x4 + {args.workers} RQ worker(s) (jobs.worker.Worker), no Stripe\n")
        print(
            "| transfers | non-200 | webhook p50 ms | p99 ms | max ms | all sent s | all matched s | wrong states |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {args.transfers} | {len(bad)} | {percentile(latencies, 0.5):.0f} | {percentile(latencies, 0.99):.0f} "
            f"| {max(latencies):.0f} | {sent:.1f} | {matched:.1f} | {len(mismatches)} |"
        )
        for line in mismatches[:10]:
            print("  WRONG", line)
    finally:
        for process in (*workers, web):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        drop_database(handle)


def create_checker(database_url, tmp):
    from loafy.app import create_core_app
    from loafy.db import connection
    from loafy.models import BankTransaction, Booking

    app = create_core_app(
        {"LOAFY_ENV": "testing", "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp), "JOBS_INLINE": "0"}
    )
    expected = {"exact": "matched", "short": "underpaid", "over": "overpaid", "duplicate": "duplicate",
                "unmatched": "unmatched"}  # fmt: skip
    booking_state = {"exact": "confirmed", "short": "pending_payment", "over": "confirmed"}

    def check(what, transfers=None):
        with app.app_context(), connection():
            if what == "waiting":
                return BankTransaction.select().where(BankTransaction.status == "received").exists()
            wrong = []
            statuses = {t.provider_id: t.status for t in BankTransaction.select()}
            for body, booking_id, kind in transfers:
                if statuses.get(str(body["id"])) != expected[kind]:
                    wrong.append(f"transfer {body['id']} ({kind}): {statuses.get(str(body['id']))}")
                if kind in booking_state and Booking.get_by_id(booking_id).status != booking_state[kind]:
                    wrong.append(f"booking {booking_id} ({kind}): {Booking.get_by_id(booking_id).status}")
            return wrong

    return check


if __name__ == "__main__":
    main()
