"""The staff reports: per club-local week (from Monday) and month, over a date range, optionally one
location. Money comes from the ledger alone (the dashboard's rule: succeeded payments in, refunds
that did not fail out), dated when it moved; bookings, fill and attendance from the sessions that
start in the period (cancelled sessions and drafts left out); new members are accounts created in
the period; passes sold are the passes paid for in the period.
"""

import csv
import io
from datetime import UTC, date, datetime, timedelta

from loafy.clock import club_tz, to_local
from loafy.errors import ValidationError
from loafy.models import Booking, ClubSession, LedgerEntry, Pass, User

KINDS = ("week", "month")
COLUMNS = (
    "period",
    "sessions",
    "capacity",
    "booked_slots",
    "bookings",
    "fill_rate",
    "received",
    "refunded",
    "net",
    "attended",
    "no_show",
    "attendance_rate",
    "no_show_rate",
    "new_members",
    "passes_sold",
)
MAX_DAYS = 3 * 366


def _utc(day):
    """Midnight of a club-local date as naive UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=club_tz()).astimezone(UTC).replace(tzinfo=None)


def _parse_day(name, value, default):
    if value in (None, ""):
        return default
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValidationError(f"{name} must be a date (YYYY-MM-DD).", field=name)


def clean_range(starts, ends, now):
    """(first day, last day) club-local, inclusive; by default the last three months to today."""
    today = to_local(now).date()
    default_start = (today.replace(day=1) - timedelta(days=62)).replace(day=1)
    first = _parse_day("from", starts, default_start)
    last = _parse_day("to", ends, today)
    if last < first:
        raise ValidationError("The end date must not be before the start date.", field="to")
    if (last - first).days > MAX_DAYS:
        raise ValidationError("Choose at most three years.", field="from")
    return first, last


def period_of(kind, moment):
    """The period key of a naive-UTC time: the club-local Monday (week) or YYYY-MM (month)."""
    day = to_local(moment).date()
    if kind == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


def _periods(kind, first, last):
    keys, day = [], first
    while day <= last:
        key = period_of(kind, _utc(day) + timedelta(hours=12))
        if not keys or keys[-1] != key:
            keys.append(key)
        day += timedelta(days=1)
    return keys


def locations():
    """Every location a session has had, for the filter."""
    return [
        row[0]
        for row in ClubSession.select(ClubSession.location)
        .where(ClubSession.location != "")
        .distinct()
        .order_by(ClubSession.location)
        .tuples()
    ]


def _session_rows(low, high, location):
    """(starts_at, max_slots) of the sessions that count in [low, high)."""
    query = ClubSession.select(ClubSession.starts_at, ClubSession.max_slots).where(
        (ClubSession.starts_at >= low)
        & (ClubSession.starts_at < high)
        & ClubSession.status.in_(("published", "completed"))
    )
    if location:
        query = query.where(ClubSession.location == location)
    return list(query.tuples())


def _booking_rows(low, high, location):
    """(session start, slots, attendance) of the confirmed bookings of those sessions."""
    query = (
        Booking.select(ClubSession.starts_at, Booking.slots, Booking.attendance)
        .join(ClubSession)
        .where(
            (ClubSession.starts_at >= low)
            & (ClubSession.starts_at < high)
            & ClubSession.status.in_(("published", "completed"))
            & (Booking.status == "confirmed")
        )
    )
    if location:
        query = query.where(ClubSession.location == location)
    return list(query.tuples())


def counted_ledger():
    """The ledger rows that are money moved (the dashboard's revenue rule)."""
    return ((LedgerEntry.kind == "payment") & (LedgerEntry.status == "succeeded")) | (
        (LedgerEntry.kind == "refund") & (LedgerEntry.status != "failed")
    )


def _ledger_rows(low, high, location):
    """(created_at, kind, amount) of money moved in [low, high); with a location, only the
    bookings of that location's sessions."""
    query = LedgerEntry.select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.amount).where(
        counted_ledger() & (LedgerEntry.created_at >= low) & (LedgerEntry.created_at < high)
    )
    if location:
        query = (
            query.join(Booking, on=(LedgerEntry.booking == Booking.id))
            .join(ClubSession, on=(Booking.club_session == ClubSession.id))
            .where(ClubSession.location == location)
        )
    return list(query.tuples())


def _new_member_rows(low, high):
    return [
        row[0]
        for row in User.select(User.created_at)
        .where((User.created_at >= low) & (User.created_at < high))
        .tuples()
    ]


def _pass_rows(low, high):
    """When each pass sold in [low, high) was paid (granted passes without payment are not sold)."""
    return [
        row[0]
        for row in Pass.select(Pass.paid_at)
        .where((Pass.paid_at >= low) & (Pass.paid_at < high) & (Pass.amount > 0))
        .tuples()
    ]


def _rate(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


def build(now, starts=None, ends=None, location=None):
    """{"from", "to", "location", "week": [row], "month": [row], "totals": row}: every COLUMN per
    period, oldest first."""
    first, last = clean_range(starts, ends, now)
    location = (location or "").strip() or None
    low, high = _utc(first), _utc(last + timedelta(days=1))
    sessions = _session_rows(low, high, location)
    bookings = _booking_rows(low, high, location)
    ledger = _ledger_rows(low, high, location)
    members = _new_member_rows(low, high)
    passes = _pass_rows(low, high)
    result = {"from": first, "to": last, "location": location}
    for kind in (*KINDS, "total"):
        keys = _periods(kind, first, last) if kind != "total" else ["total"]

        def key(moment, kind=kind):
            return "total" if kind == "total" else period_of(kind, moment)

        rows = {k: dict.fromkeys(COLUMNS, 0) | {"period": k} for k in keys}
        for starts_at, max_slots in sessions:
            row = rows[key(starts_at)]
            row["sessions"] += 1
            row["capacity"] += max_slots
        for starts_at, slots, attendance in bookings:
            row = rows[key(starts_at)]
            row["bookings"] += 1
            row["booked_slots"] += slots
            if attendance == "attended":
                row["attended"] += 1
            elif attendance == "no_show":
                row["no_show"] += 1
        for created_at, kind_of_money, amount in ledger:
            row = rows[key(created_at)]
            row["received" if kind_of_money == "payment" else "refunded"] += amount
        for created_at in members:
            rows[key(created_at)]["new_members"] += 1
        for created_at in passes:
            rows[key(created_at)]["passes_sold"] += 1
        for row in rows.values():
            row["net"] = row["received"] - row["refunded"]
            row["fill_rate"] = _rate(row["booked_slots"], row["capacity"])
            marked = row["attended"] + row["no_show"]
            row["attendance_rate"] = _rate(row["attended"], marked)
            row["no_show_rate"] = _rate(row["no_show"], marked)
        if kind == "total":
            result["totals"] = rows["total"]
        else:
            result[kind] = [rows[k] for k in keys]
    return result


def to_csv(report):
    """The same numbers as the charts, one line per period (weeks, then months, then the total)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("kind", *COLUMNS))
    for kind in KINDS:
        for row in report[kind]:
            writer.writerow((kind, *(row[c] for c in COLUMNS)))
    writer.writerow(("total", *(report["totals"][c] for c in COLUMNS)))
    return out.getvalue()
