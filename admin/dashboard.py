"""The staff home: this week's sessions with fill rate, unpaid bookings near their deadline, revenue,
and the job queue's health. A fixed number of queries, however many bookings there are."""

from datetime import UTC, datetime, timedelta

from admin.jobs import queue_health
from loafy.clock import club_tz
from loafy.models import Booking, ClubSession, User
from loafy.money import bank
from loafy.money.ledger import mismatched_payments, net_received_since
from loafy.passes import passes

UNPAID_LIMIT = 20
UNPAID_WINDOW = timedelta(hours=2)
FLAGGED_LIMIT = 20


def _utc(local):
    return local.replace(tzinfo=club_tz()).astimezone(UTC).replace(tzinfo=None)


def periods(now):
    """Today, this week (from Monday) and this month in club time, as naive-UTC bounds."""
    local = now.replace(tzinfo=UTC).astimezone(club_tz()).replace(tzinfo=None)
    today = datetime(local.year, local.month, local.day)
    week = today - timedelta(days=today.weekday())
    month = datetime(local.year, local.month, 1)
    return {
        "today": (_utc(today), _utc(today + timedelta(days=1))),
        "week": (_utc(week), _utc(week + timedelta(days=7))),
        "month_start": _utc(month),
    }


def build(now, viewer):
    bounds = periods(now)
    week_start, week_end = bounds["week"]
    today_start, today_end = bounds["today"]
    sessions = list(
        ClubSession.select()
        .where(
            (ClubSession.starts_at >= week_start)
            & (ClubSession.starts_at < week_end)
            & (ClubSession.status != "cancelled")
        )
        .order_by(ClubSession.starts_at, ClubSession.id)
    )
    for club_session in sessions:
        taken = club_session.max_slots - club_session.available_slots
        club_session.taken = taken
        club_session.fill_rate = round(100 * taken / club_session.max_slots) if club_session.max_slots else 0
    unpaid = (
        Booking.select(Booking, ClubSession, User)
        .join(ClubSession)
        .switch(Booking)
        .join(User)
        .where((Booking.status == "pending_payment") & (Booking.payment_deadline <= now + UNPAID_WINDOW))
        .order_by(Booking.payment_deadline, Booking.id)
        .limit(UNPAID_LIMIT)
    )
    if not viewer.is_admin:
        unpaid = unpaid.where(ClubSession.created_by == viewer.id)
    return {
        "now": now,
        "today": [s for s in sessions if today_start <= s.starts_at < today_end],
        "week": sessions,
        "unpaid": list(unpaid),
        "revenue": revenue(bounds) if viewer.is_admin else None,
        "passes": passes.sales_summary(bounds["month_start"], now) if viewer.is_admin else None,
        # Card payments that did not match what was owed: kept, counted for nothing, to be settled.
        "flagged": list(mismatched_payments().limit(FLAGGED_LIMIT)) if viewer.is_admin else [],
        "jobs": queue_health(),
        "bank_queue": bank.queue_size() if viewer.is_admin else None,
    }


def revenue(bounds):
    """Money in minus money refunded (whole VND), this week and this month: the ledger's own count."""
    week, month = net_received_since(bounds["week"][0], bounds["month_start"])
    return {"week": week, "month": month}
