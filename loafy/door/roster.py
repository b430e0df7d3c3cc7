"""What the door screen shows: today's sessions of this staff member, a session's people in and
expected, and a search by name (accents and case ignored: "nguyen" finds "Nguyễn")."""

import unicodedata
from datetime import UTC, datetime, timedelta

from loafy.booking.club_sessions import can_handle_session
from loafy.clock import club_tz, to_local
from loafy.door.checkin import session_people
from loafy.errors import NotFound, PermissionDenied, ValidationError, parse_id
from loafy.models import Booking, ClubSession, User

MIN_SEARCH = 3
MAX_RESULTS = 20


def _day_bounds(now):
    """The club-local day around `now`, as naive UTC."""
    day = to_local(now).date()
    start = datetime(day.year, day.month, day.day, tzinfo=club_tz()).astimezone(UTC).replace(tzinfo=None)
    return start, start + timedelta(days=1)


def door_sessions(actor, now):
    """(today's published sessions this staff member runs, soonest first; the one to pick by
    default: the first not yet ended, else the last)."""
    if actor is None or not actor.is_staff:
        raise PermissionDenied("Only organizers and admins work the door.")
    start, end = _day_bounds(now)
    query = ClubSession.select().where(
        (ClubSession.status.in_(("published", "completed")))
        & (ClubSession.starts_at >= start)
        & (ClubSession.starts_at < end)
    )
    if not actor.is_admin:
        query = query.where(ClubSession.created_by == actor.id)
    sessions = list(query.order_by(ClubSession.starts_at, ClubSession.id))
    chosen = next((s for s in sessions if s.ends_at > now), sessions[-1] if sessions else None)
    return sessions, chosen


def door_session(actor, session_id, now):
    """A session the staff member may work the door of (404 for anyone else)."""
    number = parse_id(session_id, "That session does not exist.")
    club_session = ClubSession.get_or_none(ClubSession.id == number)
    if club_session is None or not can_handle_session(actor, club_session):
        raise NotFound("That session does not exist.")
    return club_session


def _live(booking, now):
    return booking.status == "confirmed" or (
        booking.status == "pending_payment"
        and (booking.payment_deadline is None or booking.payment_deadline > now)
    )


def _bookings(session_id):
    return list(
        Booking.select(Booking, User)
        .join(User)
        .where(Booking.club_session == session_id)
        .order_by(User.name, Booking.id)
    )


def roster(actor, session_id, now):
    """The session, its people in and expected, and who is still expected (by name)."""
    club_session = door_session(actor, session_id, now)
    inside, expected = session_people(club_session.id, now)
    waiting = [b for b in _bookings(club_session.id) if _live(b, now) and b.checked_in_people < b.slots]
    return {"session": club_session, "people_in": inside, "people_total": expected, "expected": waiting}


def fold(text):
    """Lower case without accents (đ as d), for matching names typed on any keyboard."""
    text = unicodedata.normalize("NFD", (text or "").replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def search(actor, session_id, query, now):
    """Bookings of the session whose player's name (or code) holds `query`, from 3 letters."""
    club_session = door_session(actor, session_id, now)
    needle = fold(query).strip()
    if len(needle) < MIN_SEARCH:
        raise ValidationError(f"Type at least {MIN_SEARCH} letters.", field="q")
    found = [
        b
        for b in _bookings(club_session.id)
        if (b.status != "expired" or b.checked_in_people)
        and (needle in fold(b.user.name) or needle in b.code.casefold())
    ]
    return club_session, found[:MAX_RESULTS]
