"""Waitlist benchmark: 1,000 waiting parties, 100 cancellations at once.

    .venv/bin/python bench/waitlist.py [--skip-postgres] [--threads 32]

A session of 100 slots is held by 100 one-person bookings; 1,000 parties of 1 to 4 (each taking at
least 1 to its size) wait. 100 threads cancel the 100 bookings at the same moment. The offer is made
inside the cancelling transaction, so "cancel to offer committed" is each cancel call's time; the
run then checks that no slot was offered twice (offered + free = freed, one offer per entry, the
invariants of `loafy check`). SQLite and PostgreSQL (BENCH_PG_URL, default the local server).
Notifications go to the real Redis on 127.0.0.1:6379, db 6.
"""

import argparse
import random
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
from loafy.booking import waitlist
from loafy.booking.bookings import cancel_booking
from loafy.checks import find_violations
from loafy.db import db
from loafy.migrations import upgrade
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, User, WaitlistEntry

NOW = datetime(2026, 11, 24, 3, 0, 0)
SLOTS, WAITING = 100, 1000


def seed():
    with db.atomic():
        club_session = ClubSession.create(
            title="Bench waitlist",
            starts_at=NOW + timedelta(days=2),
            ends_at=NOW + timedelta(days=2, hours=2),
            max_slots=SLOTS,
            available_slots=0,
            price=100_000,
            status="published",
            booking_opens_at=NOW - timedelta(hours=1),
            created_at=NOW,
            updated_at=NOW,
        )
        User.insert_many(
            [
                {"email": f"w{i}@example.com", "name": f"W {i}", "role": "player", "created_at": NOW}
                for i in range(SLOTS + WAITING)
            ]
        ).execute()
        ids = [u.id for u in User.select(User.id).order_by(User.id)]
        Booking.insert_many(
            [
                {
                    "code": f"LB-B{i:04d}"[:8],
                    "user": ids[i],
                    "club_session": club_session.id,
                    "guest_count": 0,
                    "slots": 1,
                    "unit_price": 100_000,
                    "amount": 100_000,
                    "payment_method": "cash",
                    "status": "confirmed",
                    "payment_status": "paid",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(SLOTS)
            ]
        ).execute()
        rng = random.Random(1)
        rows = []
        for i in range(WAITING):
            party = rng.randint(1, 4)
            rows.append(
                {
                    "user": ids[SLOTS + i],
                    "club_session": club_session.id,
                    "party_size": party,
                    "min_party": rng.randint(1, party),
                    "payment_method": "bank_transfer",
                    "created_at": NOW + timedelta(seconds=i),
                    "updated_at": NOW,
                }
            )
        WaitlistEntry.insert_many(rows).execute()
    return club_session


def run(kind, threads):
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database(kind, tmp)
        try:
            app = create_app(
                {
                    "LOAFY_ENV": "testing",
                    "DATABASE_URL": url,
                    "INSTANCE_PATH": tmp,
                    "REDIS_URL": "redis://127.0.0.1:6379/6",
                    "JOBS_INLINE": "0",
                    "DB_POOL_SIZE": str(threads + 4),
                }
            )
            clock.freeze(NOW)
            with app.app_context(), db.connection_context():
                upgrade()
                club_session = seed()
                holders = list(Booking.select(Booking, User).join(User))
            later = NOW + timedelta(minutes=1)
            barrier = threading.Barrier(len(holders))
            timings, errors = [], []

            def cancel(booking):
                barrier.wait()
                started = time.perf_counter()
                try:
                    with app.app_context(), db.connection_context():
                        cancel_booking(booking.user, booking.id, later)
                    timings.append(time.perf_counter() - started)
                except Exception as exc:  # reported below
                    errors.append(repr(exc))

            # `threads` at a time would queue the rest behind the pool anyway: all 100 start at once.
            workers = [threading.Thread(target=cancel, args=(b,)) for b in holders]
            wall = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            wall = time.perf_counter() - wall
            with app.app_context(), db.connection_context():
                offers = list(Booking.select().where(Booking.source == "waitlist"))
                entries = {e.booking_id: e for e in WaitlistEntry.select() if e.booking_id}
                free = ClubSession.get_by_id(club_session.id).available_slots
                active = (
                    Booking.select()
                    .where(
                        (Booking.club_session == club_session.id)
                        & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
                    )
                    .count()
                )
                offered = sum(o.slots for o in offers)
                ok = (
                    not errors
                    and offered + free == SLOTS
                    and len(entries) == len(offers)
                    and active == len(offers)
                    and find_violations(later) == []
                    and not waitlist.offer_everywhere(later)  # nothing the cancels left behind
                )
            ms = sorted(t * 1000 for t in timings)
            print(
                f"{kind:10} cancels {len(ms):3}  p50 {percentile(ms, 0.5):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms"
                f"  all in {wall * 1000:7.0f} ms  offers {len(offers):3} ({offered} slots, {free} free)"
                f"  {'no slot offered twice' if ok else 'INCONSISTENT ' + str(errors[:3])}"
            )
            db.close()
            close_all = getattr(db.obj, "close_all", None)
            if close_all:
                close_all()
        finally:
            drop_database(handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    print(machine())
    run("sqlite", args.threads)
    if not args.skip_postgres:
        run("postgresql", args.threads)


if __name__ == "__main__":
    main()
