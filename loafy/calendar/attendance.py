"""The attendance policy: who came, who did not, and when too many strikes block online booking.

After a session ends (+ no_show_grace_hours), its confirmed bookings become `attended` (checked in)
or `no_show`. A no-show and a late cancel (after the cancellation cutoff, the session itself not
cancelled) are strikes, one per booking (unique in the database). strike_limit strikes within
strike_window_days block online booking for strike_block_days from the strike that reached the
limit. Staff can forgive a strike (audited); forgiven strikes no longer count. With the policy
off, attendance is still recorded but nobody is blocked and no strike is written.
"""

import logging
from datetime import timedelta

from peewee import fn

from loafy import audit
from loafy.booking.club_sessions import can_handle_session
from loafy.clock import format_local
from loafy.db import db, raw_sql
from loafy.errors import Conflict, NotFound, PermissionDenied, parse_id
from loafy.models import Booking, ClubSession, Strike, User
from loafy.settings import get_settings, recent_settings

log = logging.getLogger(__name__)

BATCH = 500


class BookingBlocked(Conflict):
    code = "blocked"
    message = "Online booking is paused for your account because of missed sessions."


# --- marking -------------------------------------------------------------------------------------


def mark_attendance(now, settings=None):
    """Mark the confirmed bookings of sessions ended more than no_show_grace_hours ago (and within
    the strike window: older ones can no longer count). Idempotent: only unmarked rows change, each
    change conditional on still being unmarked, and a strike is unique per booking."""
    settings = settings or get_settings()
    ended_before = now - timedelta(hours=settings["no_show_grace_hours"])
    ended_after = now - timedelta(days=settings["strike_window_days"])
    counts = {"attended": 0, "no_show": 0}
    while True:
        rows = list(
            Booking.select(Booking.id, Booking.user, Booking.checked_in_at, ClubSession.ends_at)
            .join(ClubSession)
            .where(
                (Booking.status == "confirmed")
                & Booking.attendance.is_null()
                & (ClubSession.ends_at <= ended_before)
                & (ClubSession.ends_at > ended_after)
                & (ClubSession.status != "cancelled")
            )
            .order_by(Booking.id)
            .limit(BATCH)
        )
        if not rows:
            return counts
        with db.atomic():
            attended = [b.id for b in rows if b.checked_in_at is not None]
            missed = [b for b in rows if b.checked_in_at is None]
            if attended:
                counts["attended"] += (
                    Booking.update(attendance="attended")
                    .where(Booking.id.in_(attended) & Booking.attendance.is_null())
                    .execute()
                )
            if missed:
                marked = {
                    row.id
                    for row in Booking.update(attendance="no_show")
                    .where(
                        Booking.id.in_([b.id for b in missed])
                        & Booking.attendance.is_null()
                        & Booking.checked_in_at.is_null()
                    )
                    .returning(Booking.id)
                    .execute()
                }
                counts["no_show"] += len(marked)
                if settings["attendance_policy"]:
                    strikes = [
                        {
                            "user": b.user_id,
                            "booking": b.id,
                            "kind": "no_show",
                            "occurred_at": b.club_session.ends_at,
                        }
                        for b in missed
                        if b.id in marked
                    ]
                    if strikes:
                        Strike.insert_many(strikes).on_conflict_ignore().execute()
        if len(rows) < BATCH:
            if counts["no_show"] or counts["attended"]:
                log.info("attendance: %(attended)d attended, %(no_show)d no-show(s)", counts)
            return counts


def booking_cancelled(booking, now, settings):
    """A hook for cancel_booking, inside its transaction: a confirmed booking cancelled after the
    cutoff, its session still on, is a late cancel (a strike)."""
    if not settings.get("attendance_policy", True) or booking.status != "confirmed":
        return None
    club_session = ClubSession.get_by_id(booking.club_session_id)
    cutoff = club_session.starts_at - timedelta(hours=settings["cancellation_cutoff_hours"])
    if club_session.status == "cancelled" or not cutoff < now < club_session.ends_at:
        return None
    Strike.insert(
        user=booking.user_id, booking=booking.id, kind="late_cancel", occurred_at=now
    ).on_conflict_ignore().execute()
    return True


# --- blocking ------------------------------------------------------------------------------------

ACTIVE_STRIKES_SQL = """
SELECT occurred_at FROM strikes
WHERE user_id = ? AND forgiven_at IS NULL AND occurred_at > ?
ORDER BY occurred_at
"""


def blocked_until(user_id, now, settings=None):
    """When online booking opens again for this player, or None when they are not blocked.

    A block starts at a strike that makes strike_limit unforgiven strikes within strike_window_days
    (counting back from it) and lasts strike_block_days from that strike."""
    settings = settings or recent_settings()
    if not settings["attendance_policy"]:
        return None
    window = timedelta(days=settings["strike_window_days"])
    block = timedelta(days=settings["strike_block_days"])
    limit = settings["strike_limit"]
    rows = db.execute_sql(raw_sql(ACTIVE_STRIKES_SQL), (user_id, now - window - block)).fetchall()
    times = [Strike.occurred_at.python_value(row[0]) for row in rows]
    until = None
    for index, moment in enumerate(times):
        if moment + block <= now or moment > now:
            continue
        in_window = [t for t in times[: index + 1] if t > moment - window]
        if len(in_window) >= limit:
            until = max(until or moment + block, moment + block)
    return until


def check_can_book(actor, now, settings=None):
    """Refuse online booking to a blocked player, saying until when and why (staff never are)."""
    if actor is None or getattr(actor, "is_staff", False):
        return
    settings = settings or recent_settings()
    until = blocked_until(actor.id, now, settings)
    if until is not None:
        refusal = BookingBlocked(
            f"Online booking is paused for your account until {format_local(until)}: "
            f"{settings['strike_limit']} missed sessions or late cancellations within "
            f"{settings['strike_window_days']} days. Please contact the club if this is a mistake."
        )
        # For the page's translation (public/i18n.error_text): the same facts, not parsed back out.
        refusal.until = until
        refusal.limit, refusal.days = settings["strike_limit"], settings["strike_window_days"]
        raise refusal


# --- staff ---------------------------------------------------------------------------------------


def strikes_for(user_id, now, settings=None):
    """A player's strikes, newest first, with their booking and session; and their block, if any."""
    settings = settings or get_settings()
    strikes = list(
        Strike.select(Strike, Booking, ClubSession)
        .join(Booking)
        .join(ClubSession)
        .where(Strike.user == user_id)
        .order_by(Strike.occurred_at.desc(), Strike.id.desc())
    )
    window_start = now - timedelta(days=settings["strike_window_days"])
    for strike in strikes:
        strike.counts = strike.forgiven_at is None and strike.occurred_at > window_start
    return strikes, blocked_until(user_id, now, settings)


def players_with_strikes(now, settings=None):
    """Players with strikes in the window: (user, strikes counted, blocked until), most strikes first."""
    settings = settings or get_settings()
    window_start = now - timedelta(days=settings["strike_window_days"])
    rows = (
        User.select(User, fn.COUNT(Strike.id).alias("strike_count"))
        .join(Strike, on=(Strike.user == User.id))
        .where(Strike.forgiven_at.is_null() & (Strike.occurred_at > window_start))
        .group_by(User.id)
        .order_by(fn.COUNT(Strike.id).desc(), User.id)
    )
    return [(user, user.strike_count, blocked_until(user.id, now, settings)) for user in rows]


def forgive_strike(actor, strike_id, now, reason=""):
    """Staff forgive one strike (audited): it no longer counts toward a block."""
    if actor is None or not actor.is_staff:
        raise PermissionDenied("Only staff can forgive a strike.")
    strike = (
        Strike.select(Strike, Booking, ClubSession)
        .join(Booking)
        .join(ClubSession)
        .where(Strike.id == parse_id(strike_id, "That strike does not exist."))
        .first()
    )
    if strike is None:
        raise NotFound("That strike does not exist.")
    if not can_handle_session(actor, strike.booking.club_session):
        raise PermissionDenied("Organizers can only forgive strikes from their own sessions.")
    reason = str(reason or "").strip()[:500]
    with db.atomic():
        changed = (
            Strike.update(forgiven_at=now, forgiven_by=actor.id, forgive_reason=reason)
            .where((Strike.id == strike.id) & Strike.forgiven_at.is_null())
            .execute()
        )
        if not changed:
            raise Conflict("This strike was already forgiven.", code="already_forgiven")
        audit.record(
            actor,
            "strike.forgive",
            "strike",
            strike.id,
            {
                "user_id": strike.user_id,
                "booking": strike.booking.code,
                "kind": strike.kind,
                "reason": reason,
            },
            now,
        )
    log.info("strike %s of user %s forgiven by %s", strike.id, strike.user_id, actor.id)
    return Strike.get_by_id(strike.id)
