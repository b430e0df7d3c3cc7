"""The staff list pages and the dashboard run a fixed number of queries, with 10 bookings or 100,000."""

from contextlib import contextmanager
from datetime import timedelta

import pytest

from admin.bookings import COUNT_CAP
from loafy.db import db
from loafy.models import Booking, LedgerEntry
from tests.helpers import english, login

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
TOTAL = 100_000
CHUNK = 1_000
PAGES = (
    "/admin/",
    "/admin/bookings/",
    "/admin/bookings/?search=Player",
    "/admin/bookings/?flt0_status_equals=cancelled&sort=1&desc=1",
    "/admin/bookings/?flt0_session_equals={session}",
    "/admin/bookings/details/?id={booking}",
    "/admin/sessions/",
    "/admin/players/",
    "/admin/players/details/?id={user}",
    "/admin/audit/",
)


@contextmanager
def count_queries():
    """Count every statement peewee sends while the block runs: `with count_queries() as n: ...; n[0]`."""
    database = db.obj
    original = database.execute_sql
    counter = [0]

    def counting(sql, params=None, *args, **kwargs):
        counter[0] += 1
        return original(sql, params, *args, **kwargs)

    database.execute_sql = counting
    try:
        yield counter
    finally:
        del database.execute_sql  # back to the class's method


@pytest.fixture(autouse=True)
def _english_staff_area(client):
    """These tests read the staff area's English words (test_admin_vietnamese.py reads its Vietnamese)."""
    english(client)


def code(n):
    chars = []
    for _ in range(5):
        n, digit = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "LB-" + "".join(chars)


def booking_row(n, user, club_session, now, status, payment_status="unpaid"):
    guests = n % 4
    return {
        "code": code(n),
        "user": user.id,
        "club_session": club_session.id,
        "guest_count": guests,
        "slots": 1 + guests,
        "unit_price": club_session.price,
        "amount": (1 + guests) * club_session.price,
        "payment_method": ("stripe", "bank_transfer", "cash")[n % 3],
        "status": status,
        "payment_status": payment_status,
        "payment_deadline": now + timedelta(minutes=n % 60) if status == "pending_payment" else None,
        "created_at": now - timedelta(seconds=n),
        "updated_at": now,
    }


def page_queries(client, values):
    counts = {}
    for page in PAGES:
        path = page.format(**values)
        with count_queries() as n:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        counts[path] = n[0]
    return counts


@pytest.mark.slow
def test_list_pages_keep_a_constant_query_count(client, factory, now):
    admin = factory.user(role="admin")
    users = [factory.user(name=f"Player {i}") for i in range(20)]
    sessions = [factory.club_session(starts_at=now + timedelta(hours=2 + i), max_slots=500) for i in range(5)]
    # Ten bookings: one active booking per (player, session), as the unique index demands.
    small = [
        booking_row(n, users[n], sessions[n % 5], now, ("pending_payment", "confirmed")[n % 2])
        for n in range(10)
    ]
    Booking.insert_many(small).execute()
    first = Booking.select().order_by(Booking.id).first()
    LedgerEntry.create(
        booking=first.id,
        kind="payment",
        provider="cash",
        provider_id="cash:x",
        amount=1000,
        status="succeeded",
        created_at=now,
    )
    login(client, admin)
    values = {"session": sessions[0].id, "booking": first.id, "user": users[0].id}
    before = page_queries(client, values)

    with db.atomic():
        batch = []
        for n in range(10, TOTAL):
            status = ("cancelled", "expired")[n % 2]
            batch.append(
                booking_row(n, users[n % 20], sessions[n % 5], now, status, ("paid", "unpaid")[n % 2])
            )
            if len(batch) == CHUNK:
                Booking.insert_many(batch).execute()
                batch = []
        if batch:
            Booking.insert_many(batch).execute()
        LedgerEntry.insert_many(
            [
                {
                    "booking": None,
                    "kind": "payment",
                    "provider": "bank_transfer",
                    "provider_id": f"bt:{i}",
                    "amount": 50_000,
                    "status": "succeeded",
                    "created_at": now - timedelta(minutes=i),
                }
                for i in range(2_000)
            ]
        ).execute()
    assert Booking.select().count() == TOTAL

    after = page_queries(client, values)
    assert after == before
    page = client.get("/admin/bookings/").get_data(as_text=True)
    assert f"({COUNT_CAP}+)" in page  # the count is of every booking (capped), not of one page
    page = client.get(f"/admin/bookings/?flt0_session_equals={sessions[0].id}&flt1_status_equals=confirmed")
    assert "(1)" in page.get_data(as_text=True)  # a narrow filter still counts exactly
