"""Every public page is a constant number of queries however many sessions and bookings exist.

The pages are counted on a tiny club, then again after 1,000 sessions and 50,000 bookings are added
in bulk: the counts must not change (and stay small), so no page queries per row.
"""

import logging
from contextlib import contextmanager
from datetime import timedelta

import pytest

from loafy.booking.bookings import book_session
from loafy.db import db
from loafy.models import Booking, ClubSession
from tests.helpers import login

SESSIONS = 1_000
PLAYERS = 50  # one booking per player per session: 50,000 bookings
CHUNK = 1_000
MAX_QUERIES = 6
STATUSES = ("confirmed", "pending_payment", "cancelled", "expired")


class _Counter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.statements = []

    def emit(self, record):
        self.statements.append(record.getMessage())


@contextmanager
def counting_queries():
    """Every SQL statement peewee sends while the block runs (peewee logs each one at DEBUG)."""
    logger = logging.getLogger("peewee")
    handler, level = _Counter(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def bulk_club(now, players):
    """1,000 sessions (past and upcoming) and a booking by every player in each, in one transaction."""
    with db.atomic():
        rows = []
        for i in range(SESSIONS):
            starts = now + timedelta(hours=i - 200)
            rows.append(
                {
                    "title": f"Bulk session {i}",
                    "location": "Sân Phú Thọ",
                    "starts_at": starts,
                    "ends_at": starts + timedelta(hours=2),
                    "max_slots": 200,
                    "available_slots": 100,
                    "price": 100_000,
                    "status": "published" if i % 10 else "cancelled",
                    "booking_opens_at": now - timedelta(days=30),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for start in range(0, len(rows), CHUNK):
            ClubSession.insert_many(rows[start : start + CHUNK]).execute()
        session_ids = [
            sid
            for (sid,) in ClubSession.select(ClubSession.id)
            .where(ClubSession.title.startswith("Bulk"))
            .tuples()
        ]
        bookings, n = [], 0
        for sid in session_ids:
            for p, player in enumerate(players):
                n += 1
                status = STATUSES[(sid + p) % len(STATUSES)]
                guests = n % 4
                bookings.append(
                    {
                        "code": f"LB-{n:05d}",
                        "user": player.id,
                        "club_session": sid,
                        "guest_count": guests,
                        "slots": 1 + guests,
                        "unit_price": 100_000,
                        "amount": (1 + guests) * 100_000,
                        "payment_method": "stripe",
                        "status": status,
                        "payment_status": "paid" if status == "confirmed" else "unpaid",
                        "payment_deadline": now + timedelta(minutes=20)
                        if status == "pending_payment"
                        else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                if len(bookings) == CHUNK:
                    Booking.insert_many(bookings).execute()
                    bookings = []
        if bookings:
            Booking.insert_many(bookings).execute()


def measure(client, paths):
    counts = {}
    for path in paths:
        with counting_queries() as statements:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        counts[path] = len(statements)
    return counts


@pytest.mark.slow
def test_list_pages_are_a_constant_number_of_queries(client, factory, now):
    player = factory.user(name="Counted")
    others = [factory.user() for _ in range(PLAYERS - 1)]
    first = factory.club_session(title="The first session", max_slots=20)
    booking = book_session(player, first, 1, "stripe", now)
    login(client, player)
    paths = [
        "/",
        "/sessions",
        "/sessions?when=all&page=3",
        "/sessions?from=2026-11-25&to=2026-12-31",
        f"/sessions/{first.id}",
        "/bookings",
        "/bookings?page=2",
        f"/bookings/{booking.id}",
    ]
    tiny = measure(client, paths)

    bulk_club(now, [player, *others])
    assert ClubSession.select().count() == SESSIONS + 1
    assert Booking.select().count() == SESSIONS * PLAYERS + 1
    big = measure(client, paths)

    assert big == tiny, f"query counts grew with the data: tiny={tiny} big={big}"
    assert max(big.values()) <= MAX_QUERIES, big
    page = client.get("/bookings").get_data(as_text=True)
    assert "1001" in page  # the player's 1,001 bookings are counted, 12 of them shown
