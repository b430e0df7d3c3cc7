"""Concurrency: many threads and processes racing for the same slots, expiry racing payment.

These run against whichever database the suite runs on (SQLite and PostgreSQL in CI).
"""

import multiprocessing
import random
import threading
from datetime import timedelta

import pytest

from loafy.booking.bookings import book_session, expire_unpaid, record_payment
from loafy.checks import find_violations
from loafy.db import db
from loafy.errors import LoafyError
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, User
from tests.helpers import reload

ATTEMPTS = 200
SLOTS = 20


def _race(app, jobs):
    """Run each callable in its own thread, all released at once; returns their results."""
    barrier = threading.Barrier(len(jobs), timeout=60)
    results = [None] * len(jobs)

    def run(index, job):
        # Wait before taking a connection: a pool smaller than the crowd must not deadlock the start.
        barrier.wait()
        try:
            with app.app_context(), db.connection_context():
                results[index] = ("ok", job())
        except LoafyError as exc:
            results[index] = ("refused", exc.code)
        except Exception as exc:  # anything else is a failure the test reports
            results[index] = ("error", repr(exc))

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _assert_never_oversold(club_session, requested, results):
    active = list(
        Booking.select().where(
            (Booking.club_session == club_session.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
        )
    )
    taken = sum(b.slots for b in active)
    available = reload(club_session).available_slots
    assert taken <= SLOTS
    assert available == SLOTS - taken
    assert find_violations() == []
    errors = [r for r in results if r[0] == "error"]
    assert errors == [], errors[:5]
    refusals = [(requested[i], r[1]) for i, r in enumerate(results) if r[0] == "refused"]
    assert {code for _, code in refusals} <= {"full"}, refusals[:5]
    # Slots only ever go down here, so every loser asked for more than what is left at the end.
    assert all(slots > available for slots, _ in refusals)
    assert len(active) == sum(1 for r in results if r[0] == "ok")


@pytest.mark.slow
def test_200_threads_never_oversell(app, factory, now):
    club_session = factory.club_session(max_slots=SLOTS)
    rng = random.Random(20261124)
    players = [factory.user() for _ in range(ATTEMPTS)]
    guests = [rng.randint(0, 3) for _ in range(ATTEMPTS)]
    jobs = [
        (lambda p=p, g=g: book_session(p, club_session.id, g, "stripe", now))
        for p, g in zip(players, guests, strict=True)
    ]
    results = _race(app, jobs)
    _assert_never_oversold(club_session, [1 + g for g in guests], results)


def _book_in_process(config, session_id, user_ids, guests, now, start, out):
    """A separate process: its own app, its own connections, threads racing inside it too."""
    from loafy.app import create_app

    app = create_app(config)
    barrier = threading.Barrier(len(user_ids), timeout=60)
    with db.connection_context():
        users = {u.id: u for u in User.select().where(User.id.in_(user_ids))}
    local = []

    def run(user_id, guest_count):
        user = users[user_id]
        barrier.wait()
        start.wait(timeout=60)
        try:
            with app.app_context(), db.connection_context():
                book_session(user, session_id, guest_count, "stripe", now)
            local.append((user_id, "ok"))
        except LoafyError as exc:
            local.append((user_id, exc.code))
        except Exception as exc:
            local.append((user_id, f"error {exc!r}"))

    threads = [threading.Thread(target=run, args=a) for a in zip(user_ids, guests, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    out.put(local)


@pytest.mark.slow
def test_200_attempts_from_separate_processes_never_oversell(app, app_config, factory, now):
    club_session = factory.club_session(max_slots=SLOTS)
    rng = random.Random(7)
    players = [factory.user() for _ in range(ATTEMPTS)]
    guests = {p.id: rng.randint(0, 3) for p in players}
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    # 4 processes × 10 connections stays well under PostgreSQL's default max_connections (100).
    config = dict(app_config, JOBS_INLINE="1", DB_POOL_SIZE="10")
    processes = []
    per_process = ATTEMPTS // 4
    for i in range(4):
        ids = [p.id for p in players[i * per_process : (i + 1) * per_process]]
        args = (config, club_session.id, ids, [guests[u] for u in ids], now, start, out)
        processes.append(ctx.Process(target=_book_in_process, args=args))
    for process in processes:
        process.start()
    start.set()
    outcomes = []
    for _ in processes:
        outcomes.extend(out.get(timeout=180))
    for process in processes:
        process.join(timeout=30)
    assert len(outcomes) == ATTEMPTS
    results = [
        ("ok", None) if o == "ok" else ("refused", o) if not o.startswith("error") else ("error", o)
        for _, o in outcomes
    ]
    _assert_never_oversold(club_session, [1 + guests[u] for u, _ in outcomes], results)


@pytest.mark.slow
def test_expiry_racing_payment_exactly_one_wins(app, factory, now):
    for round_number in range(10):
        club_session = factory.club_session(max_slots=4)
        booking = book_session(factory.user(), club_session, 1, "stripe", now)
        at = booking.payment_deadline + timedelta(seconds=1)
        results = _race(
            app,
            [
                lambda at=at: expire_unpaid(at),
                lambda b=booking, at=at, n=round_number: record_payment(
                    b.id, provider="stripe", provider_id=f"pi_race_{n}", amount=b.amount, now=at
                ),
            ],
        )
        assert [r[0] for r in results] == ["ok", "ok"], results
        expired_codes, outcome = results[0][1], results[1][1]
        final = reload(booking)
        if outcome == "confirmed":  # payment first: expiry found nothing to release
            assert expired_codes == [] and final.status == "confirmed"
        else:  # expiry first: the late payment re-took the spot (slots were free)
            assert expired_codes == [booking.code] and outcome == "reconfirmed"
            assert final.status == "confirmed"
        assert final.payment_status == "paid"
        assert reload(club_session).available_slots == 2
        assert find_violations() == []


@pytest.mark.slow
def test_concurrent_expiry_runs_release_each_booking_once(app, factory, now):
    sessions = [factory.club_session(max_slots=10) for _ in range(3)]
    booked = [book_session(factory.user(), s, i % 3, "stripe", now) for s in sessions for i in range(4)]
    later = now + timedelta(hours=1)
    results = _race(app, [lambda: expire_unpaid(later) for _ in range(6)])
    assert all(r[0] == "ok" for r in results), results
    released = [code for r in results for code in r[1]]
    assert sorted(released) == sorted(b.code for b in booked)  # each exactly once
    assert all(reload(s).available_slots == 10 for s in sessions)
    assert find_violations() == []


@pytest.mark.slow
def test_concurrent_cancellations_return_slots_once(app, factory, now):
    from loafy.booking.bookings import cancel_booking

    club_session = factory.club_session(max_slots=6)
    player = factory.user()
    booking = book_session(player, club_session, 3, "stripe", now)
    results = _race(app, [lambda: cancel_booking(player, booking.id, now) for _ in range(8)])
    assert sorted(r[0] for r in results) == ["ok"] + ["refused"] * 7
    assert {r[1] for r in results if r[0] == "refused"} == {"not_active"}
    assert reload(club_session).available_slots == 6
    assert find_violations() == []
