"""`loafy check` verifies every invariant of DESIGN.md, one line per violation, non-zero exit: the
slots, no lapsed hold left holding slots, the ledger's sums per booking, refunds due not left undone."""

from datetime import timedelta

import pytest

from loafy.booking import bookings, staff
from loafy.checks import find_violations
from loafy.models import Booking, ClubSession, LedgerEntry


def check(app):
    result = app.test_cli_runner().invoke(args=["check"])
    return result.exit_code, [line for line in result.output.splitlines() if line.startswith("VIOLATION")]


@pytest.fixture
def admin(factory):
    return factory.user(role="admin")


def test_a_consistent_club_passes(app, factory, admin, now):
    club_session = factory.club_session(max_slots=8)
    bookings.book_session(factory.user(), club_session, 1, "bank_transfer", now)  # pending, in time
    paid = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    staff.mark_paid(admin, paid.id, "bank_transfer", now)
    bookings.book_session(factory.user(), factory.club_session(price=0), 2, "stripe", now)  # free
    kept = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    staff.mark_paid(admin, kept.id, "cash", now)
    staff.cancel_booking(admin, kept.id, now)  # refund due, just now: not late yet
    assert find_violations(now) == []
    assert check(app) == (0, [])


def test_a_hold_left_long_after_its_deadline_is_reported(app, factory, now):
    club_session = factory.club_session(booking_opens_at=now - timedelta(days=1))
    lapsed = bookings.book_session(factory.user(), club_session, 1, "bank_transfer", now - timedelta(hours=2))
    recent = bookings.book_session(
        factory.user(), club_session, 0, "bank_transfer", now - timedelta(minutes=35)
    )
    code, lines = check(app)
    assert code != 0
    assert len(lines) == 1 and lapsed.code in lines[0] and "2 slot(s)" in lines[0]
    assert recent.code not in "".join(lines)  # lapsed 5 minutes ago: the sweep's next run releases it
    bookings.expire_unpaid(now)
    assert check(app) == (0, [])


def test_a_paid_booking_whose_ledger_disagrees_is_reported(app, factory, admin, now):
    club_session = factory.club_session(price=120_000)
    booking = bookings.book_session(factory.user(), club_session, 1, "bank_transfer", now)
    staff.mark_paid(admin, booking.id, "bank_transfer", now)
    assert check(app) == (0, [])
    LedgerEntry.update(amount=120_000).where(LedgerEntry.booking == booking.id).execute()  # one of two
    code, [line] = check(app)
    assert code != 0 and booking.code in line and "120.000" in line and "240.000" in line


def test_money_kept_on_an_unpaid_booking_and_refunds_beyond_it_are_reported(app, factory, admin, now):
    club_session = factory.club_session()
    unpaid = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    LedgerEntry.create(
        booking=unpaid.id,
        kind="payment",
        provider="bank_transfer",
        provider_id="tx-1",
        amount=100_000,
        status="succeeded",
    )
    overrefunded = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    staff.mark_paid(admin, overrefunded.id, "cash", now)
    LedgerEntry.create(
        booking=overrefunded.id,
        kind="refund",
        provider="cash",
        provider_id="r-1",
        amount=150_000,
        status="succeeded",
    )
    code, lines = check(app)
    assert code != 0 and len(lines) == 2
    assert unpaid.code in lines[0] and "still holds 100.000" in lines[0]
    assert overrefunded.code in lines[1] and "refunded 50.000 ₫ more" in lines[1]


def test_a_card_refund_due_for_more_than_an_hour_is_reported(app, factory, admin, now):
    booking = bookings.book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    bookings.record_payment(
        booking.id, provider="stripe", provider_id="pi_paid", amount=booking.amount, now=now
    )
    Booking.update(refund_due_at=now - timedelta(minutes=59)).where(Booking.id == booking.id).execute()
    assert check(app) == (0, [])  # the settle job is on it
    Booking.update(refund_due_at=now - timedelta(minutes=61)).where(Booking.id == booking.id).execute()
    code, lines = check(app)
    assert code != 0 and any(booking.code in line and "owed back" in line for line in lines)


def test_cash_owed_back_is_for_staff_and_not_a_violation(app, factory, admin, now):
    booking = bookings.book_session(factory.user(), factory.club_session(), 0, "bank_transfer", now)
    staff.mark_paid(admin, booking.id, "cash", now)
    staff.cancel_booking(admin, booking.id, now - timedelta(hours=5))
    assert reload_booking(booking).refund_due_at is not None
    assert check(app) == (0, [])
    staff.record_manual_refund(admin, booking.id, "cash", now)  # given back: the mark is cleared
    assert reload_booking(booking).refund_due_at is None and check(app) == (0, [])


def reload_booking(booking):
    return Booking.get_by_id(booking.id)


def test_every_violation_is_its_own_line(app, factory, now):
    club_session = factory.club_session(max_slots=5, booking_opens_at=now - timedelta(days=1))
    bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now - timedelta(hours=3))
    ClubSession.update(available_slots=5).where(ClubSession.id == club_session.id).execute()
    code, lines = check(app)
    assert code != 0 and len(lines) == 2
    assert any(f"session {club_session.id}" in line for line in lines)
    assert any("expiry sweep" in line for line in lines)
