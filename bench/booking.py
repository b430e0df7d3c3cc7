"""Booking engine benchmark: bookings per second through the service, and the expiry sweep.

    .venv/bin/python bench/booking.py [--seconds 4] [--skip-postgres]

Measures `book_session` on one hot session and on many sessions, with 1 and 32 concurrent worker
threads, on SQLite and PostgreSQL (a fresh database on BENCH_PG_URL, default the local server);
then `expire_unpaid` with 10,000 overdue bookings among 200,000. Prints a table. Notifications
are enqueued to the real Redis on 127.0.0.1:6379 (db 14) as in production.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drop_database, fresh_database, machine, percentile
from loafy import clock
from loafy.app import create_app
from loafy.booking.bookings import book_session, expire_unpaid
from loafy.checks import find_violations
from loafy.db import db
from loafy.errors import LoafyError
from loafy.migrations import upgrade
from loafy.models import Booking, ClubSession, Notification, User

NOW = datetime(2026, 11, 24, 3, 0, 0)
USERS = 20_000


def make_app(url, tmp):
    app = create_app(
        {
            "LOAFY_ENV": "testing",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp),
            "REDIS_URL": "redis://127.0.0.1:6379/14",
            "JOBS_INLINE": "0",
            "DB_POOL_SIZE": "40",
        }
    )
    clock.freeze(NOW)
    return app


def seed_users(count):
    with db.atomic():
        for start in range(0, count, 1000):
            User.insert_many(
                [
                    {
                        "email": f"bench{i}@example.com",
                        "name": f"Bench {i}",
                        "role": "player",
                        "created_at": NOW,
                    }
                    for i in range(start, min(start + 1000, count))
                ]
            ).execute()
    return [u.id for u in User.select(User.id).order_by(User.id)]


def make_sessions(count, slots):
    with db.atomic():
        ClubSession.insert_many(
            [
                {
                    "title": f"Bench session {i}",
                    "starts_at": NOW + timedelta(days=2, minutes=i),
                    "ends_at": NOW + timedelta(days=2, minutes=i + 90),
                    "max_slots": slots,
                    "available_slots": slots,
                    "price": 100_000,
                    "status": "published",
                    "booking_opens_at": NOW - timedelta(hours=1),
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(count)
            ]
        ).execute()
    return [s.id for s in ClubSession.select(ClubSession.id).order_by(ClubSession.id.desc()).limit(count)]


def run_bookings(app, user_ids, session_ids, workers, seconds):
    """Book as fast as possible for `seconds` with `workers` threads; returns (count, latencies, errors)."""
    users_by_id = {u.id: u for u in User.select().where(User.id.in_(user_ids))}
    next_user = iter(user_ids)
    lock = threading.Lock()
    latencies, errors, done = [], [], 0
    stop_at = time.perf_counter() + seconds

    def worker(index):
        nonlocal done
        with app.app_context(), db.connection_context():
            n = index
            while time.perf_counter() < stop_at:
                with lock:
                    user_id = next(next_user, None)
                if user_id is None:
                    return
                session_id = session_ids[n % len(session_ids)]
                n += workers
                started = time.perf_counter()
                try:
                    book_session(users_by_id[user_id], session_id, 0, "stripe", NOW)
                except LoafyError as exc:
                    errors.append(exc.code)
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    done += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done, time.perf_counter() - began, latencies, errors


def bench_throughput(kind, seconds, rows):
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database(kind, tmp)
        try:
            app = make_app(url, Path(tmp))
            with app.app_context(), db.connection_context():
                upgrade()
                user_ids = seed_users(USERS)
                for scenario in ("hot", "many"):
                    for workers in (1, 32):
                        with db.atomic():  # each run starts from empty sessions
                            Notification.delete().execute()
                            Booking.delete().execute()
                            ClubSession.delete().execute()
                        sessions = (
                            make_sessions(1, 1_000_000) if scenario == "hot" else make_sessions(200, 10_000)
                        )
                        done, elapsed, latencies, errors = run_bookings(
                            app, user_ids, sessions, workers, seconds
                        )
                        assert not errors, errors[:5]
                        violations = find_violations()
                        rows.append(
                            (
                                kind,
                                "1 hot session" if scenario == "hot" else "200 sessions",
                                workers,
                                done,
                                done / elapsed,
                                percentile(latencies, 0.5) * 1000,
                                percentile(latencies, 0.99) * 1000,
                                "ok" if not violations else f"{len(violations)} violations",
                            )
                        )
                        print(f"  {rows[-1]}", flush=True)
        finally:
            db.close() if not db.is_closed() else None
            getattr(db.obj, "close_all", lambda: None)()
            drop_database(handle)


def bench_expiry(kind, total=200_000, overdue=10_000):
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database(kind, tmp)
        try:
            app = make_app(url, Path(tmp))
            with app.app_context(), db.connection_context():
                upgrade()
                user_ids = seed_users(200)
                sessions = make_sessions(total // len(user_ids), 400)
                pending_every = total // overdue
                rows, held = [], {}
                n = 0
                for session_id in sessions:
                    for user_id in user_ids:
                        pending = n % pending_every == 0
                        rows.append(
                            {
                                "code": f"B{n:07d}",
                                "user": user_id,
                                "club_session": session_id,
                                "guest_count": 0,
                                "slots": 1,
                                "unit_price": 100_000,
                                "amount": 100_000,
                                "payment_method": "stripe",
                                "status": "pending_payment" if pending else "confirmed",
                                "payment_status": "unpaid" if pending else "paid",
                                "payment_deadline": NOW - timedelta(minutes=1) if pending else None,
                                "created_at": NOW - timedelta(minutes=31),
                                "updated_at": NOW,
                            }
                        )
                        held[session_id] = held.get(session_id, 0) + 1
                        n += 1
                with db.atomic():
                    for start in range(0, len(rows), 2000):
                        Booking.insert_many(rows[start : start + 2000]).execute()
                    for session_id, count in held.items():
                        ClubSession.update(available_slots=400 - count).where(
                            ClubSession.id == session_id
                        ).execute()
                if kind == "postgres":
                    db.execute_sql("ANALYZE")
                started = time.perf_counter()
                released = expire_unpaid(NOW)
                elapsed = time.perf_counter() - started
                violations = find_violations()
                return (kind, len(rows), len(released), elapsed, "ok" if not violations else "VIOLATIONS")
        finally:
            db.close() if not db.is_closed() else None
            getattr(db.obj, "close_all", lambda: None)()
            drop_database(handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each throughput run")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    print(f"machine: {machine()}")

    rows = []
    for kind in kinds:
        print(f"throughput on {kind}…", flush=True)
        bench_throughput(kind, args.seconds, rows)
    expiry = []
    for kind in kinds:
        print(f"expiry on {kind}…", flush=True)
        expiry.append(bench_expiry(kind))

    print("\nbook_session throughput (0 guests, stripe; each booking its own player)")
    print(
        f"{'db':<9}{'sessions':<16}{'workers':>8}{'bookings':>10}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}  check"
    )
    for kind, scenario, workers, done, rate, p50, p99, verdict in rows:
        print(f"{kind:<9}{scenario:<16}{workers:>8}{done:>10}{rate:>9.0f}{p50:>9.1f}{p99:>9.1f}  {verdict}")
    print("\nexpire_unpaid")
    print(f"{'db':<9}{'bookings':>10}{'overdue released':>18}{'seconds':>9}  check")
    for kind, total, released, elapsed, verdict in expiry:
        print(f"{kind:<9}{total:>10}{released:>18}{elapsed:>9.2f}  {verdict}")
    print(f"\nmedian rate across runs: {statistics.median(r[4] for r in rows):.0f} bookings/s")


if __name__ == "__main__":
    main()
