"""The waitlist under concurrency: many holders cancel at once while many wait, direct bookers and
joiners racing them, in threads and in separate processes. Offers never exceed the slots freed, no
entry is offered twice, and nothing that fits is left waiting. On SQLite and PostgreSQL."""

import multiprocessing
import random
import threading
from datetime import timedelta

import pytest

from loafy.booking import waitlist
from loafy.booking.bookings import book_session, cancel_booking, expire_unpaid, record_payment
from loafy.checks import find_violations
from loafy.db import db
from loafy.errors import LoafyError
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, User, WaitlistEntry
from tests.helpers import reload
from tests.test_booking_concurrency import _race

SLOTS = 20


def _crowded_session(factory, now, waiting=40, seed=1):
    """A session whose SLOTS are held by confirmed one-person bookings, and `waiting` parties."""
    club_session = factory.club_session(max_slots=SLOTS, starts_at=now + timedelta(days=2))
    holders = []
    for _ in range(SLOTS):
        booking = book_session(factory.user(), club_session, 0, "bank_transfer", now)
        record_payment(
            booking.id,
            provider="bank_transfer",
            provider_id=f"t-{booking.code}",
            amount=booking.amount,
            now=now,
        )
        holders.append(booking)
    rng = random.Random(seed)
    entries = []
    for i in range(waiting):
        party = rng.randint(1, 4)
        entries.append(
            waitlist.join_waitlist(
                factory.user(),
                club_session.id,
                party,
                now + timedelta(seconds=i),
                min_party=rng.randint(1, party),
            )
        )
    return club_session, holders, entries


def _assert_consistent(club_session, now):
    club_session = reload(club_session)
    active = list(
        Booking.select().where(
            (Booking.club_session == club_session.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
        )
    )
    assert sum(b.slots for b in active) + club_session.available_slots == SLOTS
    assert 0 <= club_session.available_slots <= SLOTS
    offers = list(
        Booking.select().where((Booking.club_session == club_session.id) & (Booking.source == "waitlist"))
    )
    entries = list(WaitlistEntry.select().where(WaitlistEntry.club_session == club_session.id))
    by_booking = {e.booking_id: e for e in entries if e.booking_id}
    assert len(by_booking) == len(offers)  # one offer per entry, never two
    assert all(by_booking[o.id].min_party <= o.slots <= by_booking[o.id].party_size for o in offers)
    waiting = [e for e in entries if e.status == "waiting"]
    assert all(e.min_party > club_session.available_slots for e in waiting)  # nothing that fits waits
    assert find_violations(now) == []
    return offers


@pytest.mark.slow
def test_many_cancellations_at_once_offer_exactly_what_was_freed(app, factory, now):
    club_session, holders, entries = _crowded_session(factory, now)
    later = now + timedelta(minutes=1)
    results = _race(app, [lambda b=b: cancel_booking(b.user, b.id, later) for b in holders])
    assert [r[0] for r in results] == ["ok"] * SLOTS, results[:3]
    offers = _assert_consistent(club_session, later)
    offered = sum(o.slots for o in offers)
    assert offered + reload(club_session).available_slots == SLOTS
    # The head of the line was served: the first entry that fits a whole freed session is offered.
    assert reload(entries[0]).status == "offered"


@pytest.mark.slow
def test_cancellations_direct_bookers_joiners_and_expiry_racing(app, factory, now):
    club_session, holders, entries = _crowded_session(factory, now, waiting=30, seed=2)
    later = now + timedelta(minutes=1)
    rng = random.Random(3)
    bookers = [factory.user() for _ in range(15)]
    joiners = [factory.user() for _ in range(10)]
    jobs = [lambda b=b: cancel_booking(b.user, b.id, later) for b in holders]
    jobs += [
        lambda u=u: book_session(u, club_session.id, rng.randint(0, 3), "stripe", later) for u in bookers
    ]
    jobs += [lambda u=u: waitlist.join_waitlist(u, club_session.id, 2, later, min_party=1) for u in joiners]
    jobs += [lambda e=e: waitlist.leave_waitlist(e.user, e.id, later) for e in entries[::5]]
    jobs += [lambda: expire_unpaid(later), lambda: waitlist.offer_everywhere(later)]
    random.Random(4).shuffle(jobs)
    results = _race(app, jobs)
    errors = [r for r in results if r[0] == "error"]
    assert errors == [], errors[:5]
    refused = {r[1] for r in results if r[0] == "refused"}
    assert refused <= {"full", "not_full", "duplicate"}, refused
    _assert_consistent(club_session, later)
    # Then every offer lapses at once: each goes on to the next, still never past capacity.
    much_later = later + timedelta(hours=3)
    results = _race(app, [lambda: expire_unpaid(much_later) for _ in range(4)])
    assert all(r[0] == "ok" for r in results), results
    _assert_consistent(club_session, much_later)


def _cancel_in_process(config, booking_ids, now, start, out):
    """A separate process: its own app and connections, threads racing inside it too."""
    from loafy.app import create_app

    app = create_app(config)
    with db.connection_context():
        rows = list(Booking.select(Booking, User).join(User).where(Booking.id.in_(booking_ids)))
    barrier = threading.Barrier(len(rows), timeout=60)
    local = []

    def run(booking):
        barrier.wait()
        start.wait(timeout=60)
        try:
            with app.app_context(), db.connection_context():
                cancel_booking(booking.user, booking.id, now)
            local.append("ok")
        except LoafyError as exc:
            local.append(exc.code)
        except Exception as exc:
            local.append(f"error {exc!r}")

    threads = [threading.Thread(target=run, args=(b,)) for b in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    out.put(local)


@pytest.mark.slow
def test_cancellations_from_separate_processes_never_offer_a_slot_twice(app, app_config, factory, now):
    club_session, holders, _entries = _crowded_session(factory, now, seed=5)
    later = now + timedelta(minutes=1)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    config = dict(app_config, JOBS_INLINE="1", DB_POOL_SIZE="6")
    processes = []
    for i in range(4):
        ids = [b.id for b in holders[i * 5 : (i + 1) * 5]]
        processes.append(ctx.Process(target=_cancel_in_process, args=(config, ids, later, start, out)))
    for process in processes:
        process.start()
    start.set()
    outcomes = []
    for _ in processes:
        outcomes.extend(out.get(timeout=180))
    for process in processes:
        process.join(timeout=30)
    assert outcomes == ["ok"] * SLOTS, outcomes
    offers = _assert_consistent(club_session, later)
    assert sum(o.slots for o in offers) + reload(club_session).available_slots == SLOTS
