"""Calendar feeds (RFC 5545, with icalendar): the club's published sessions, a player's own bookings,
and the one-event file a confirmation e-mail attaches.

UIDs are stable (`session-<id>@<host>`, `booking-<code>@<host>`), SEQUENCE is the session's
revision (bumped when its time, place, title or status changes; +1 once a booking is cancelled),
and cancelled ones stay in the feed as STATUS:CANCELLED so calendars remove them. A player's
private feed is reached by an unguessable token (256 bits, only its SHA-256 stored), revocable.
"""

import hashlib
import logging
import secrets
from datetime import UTC, timedelta
from urllib.parse import urlsplit

from icalendar import Calendar, Event
from peewee import IntegrityError

from loafy.db import db
from loafy.errors import NotFound
from loafy.mail import mail_setting
from loafy.models import Booking, CalendarToken, ClubSession, User
from loafy.settings import get_settings

log = logging.getLogger(__name__)

PRODID = "-//Loafy//Club sessions//EN"
PAST_DAYS = 30  # feeds keep a month of history (cancelled sessions included) so calendars update
MAX_EVENTS = 2000
TOKEN_BYTES = 32


def _host():
    return urlsplit(mail_setting("BASE_URL") or "http://loafy.local").hostname or "loafy.local"


def _base_url():
    return (mail_setting("BASE_URL") or "http://127.0.0.1:5000").rstrip("/")


def _utc(value):
    return value.replace(tzinfo=UTC)


def _calendar(name):
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    return calendar


def session_uid(club_session):
    return f"session-{club_session.id}@{_host()}"


def booking_uid(booking):
    return f"booking-{booking.code.lower()}@{_host()}"


def _event(uid, club_session, sequence, cancelled, summary, url, description, tentative=False):
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(club_session.updated_at or club_session.created_at))
    event.add("dtstart", _utc(club_session.starts_at))
    event.add("dtend", _utc(club_session.ends_at))
    event.add("summary", summary)
    if club_session.location:
        event.add("location", club_session.location)
    if description:
        event.add("description", description)
    event.add("url", url)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if cancelled else "TENTATIVE" if tentative else "CONFIRMED")
    event.add("last-modified", _utc(club_session.updated_at or club_session.created_at))
    return event


def session_event(club_session):
    url = f"{_base_url()}/sessions/{club_session.id}"
    return _event(
        session_uid(club_session),
        club_session,
        club_session.revision or 0,
        club_session.status == "cancelled",
        club_session.title,
        url,
        f"{club_session.description}\n\n{url}".strip(),
    )


def booking_event(booking, club_session):
    """A player's booking: cancelled (or expired) bookings and sessions are STATUS:CANCELLED."""
    cancelled = booking.status in ("cancelled", "expired") or club_session.status == "cancelled"
    sequence = (club_session.revision or 0) + (1 if booking.status in ("cancelled", "expired") else 0)
    url = f"{_base_url()}/bookings/{booking.id}"
    people = f" (+{booking.guest_count})" if booking.guest_count else ""
    return _event(
        booking_uid(booking),
        club_session,
        sequence,
        cancelled,
        f"{club_session.title}{people}",
        url,
        f"{booking.code}\n{url}",
        tentative=booking.status == "pending_payment",  # not paid yet: the spot is held, not sure
    )


def public_feed(now):
    """The club's published sessions from a month ago on, and the cancelled ones of that span."""
    rows = (
        ClubSession.select()
        .where(
            ClubSession.status.in_(("published", "completed", "cancelled"))
            & (ClubSession.starts_at > now - timedelta(days=PAST_DAYS))
        )
        .order_by(ClubSession.starts_at, ClubSession.id)
        .limit(MAX_EVENTS)
    )
    calendar = _calendar(get_settings()["club_name"])
    for club_session in rows:
        calendar.add_component(session_event(club_session))
    return calendar.to_ical()


def player_feed(user, now):
    """One player's bookings (active, and cancelled ones that had been confirmed or paid) from a
    month ago on. Nobody else's booking is ever in it."""
    rows = (
        Booking.select(Booking, ClubSession)
        .join(ClubSession)
        .where(
            (Booking.user == user.id)
            & (ClubSession.starts_at > now - timedelta(days=PAST_DAYS))
            & (Booking.status.in_(("pending_payment", "confirmed")) | Booking.confirmed_at.is_null(False))
        )
        .order_by(ClubSession.starts_at, Booking.id)
        .limit(MAX_EVENTS)
    )
    calendar = _calendar(f"{get_settings()['club_name']} – {user.name}")
    for booking in rows:
        calendar.add_component(booking_event(booking, booking.club_session))
    return calendar.to_ical()


def booking_ics(booking):
    """The single-event file attached to a confirmation e-mail (same UID as in the player's feed)."""
    calendar = _calendar(get_settings()["club_name"])
    calendar.add_component(booking_event(booking, booking.club_session))
    return calendar.to_ical()


def google_calendar_link(club_session):
    """Google Calendar's "add this event" link for a session (no account data in it)."""
    from urllib.parse import urlencode

    def stamp(value):
        return value.strftime("%Y%m%dT%H%M%SZ")

    query = urlencode(
        {
            "action": "TEMPLATE",
            "text": club_session.title,
            "dates": f"{stamp(club_session.starts_at)}/{stamp(club_session.ends_at)}",
            "location": club_session.location or "",
            "details": f"{_base_url()}/sessions/{club_session.id}",
        }
    )
    return f"https://calendar.google.com/calendar/render?{query}"


# --- the private feed's token ---------------------------------------------------------------------


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def create_feed_token(user, now):
    """A new private feed URL for `user` (shown once); the previous one stops working."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    for _attempt in range(3):
        try:
            with db.atomic():
                CalendarToken.update(revoked_at=now).where(
                    (CalendarToken.user == user.id) & CalendarToken.revoked_at.is_null()
                ).execute()
                CalendarToken.create(user=user.id, token_hash=_hash(raw), created_at=now)
            break
        except IntegrityError:  # two clicks at once: one live token per player, the index says
            continue
    log.info("calendar feed token made for user %s", user.id)
    return raw


def revoke_feed_token(user, now):
    """The private feed URL stops working; returns whether there was one."""
    return bool(
        CalendarToken.update(revoked_at=now)
        .where((CalendarToken.user == user.id) & CalendarToken.revoked_at.is_null())
        .execute()
    )


def live_feed_token(user):
    """The player's live token row (its creation time; the URL itself is not stored), or None."""
    return CalendarToken.get_or_none((CalendarToken.user == user.id) & CalendarToken.revoked_at.is_null())


def user_for_feed_token(raw):
    """The active player whose live token this is; NotFound otherwise (revoked, unknown, malformed)."""
    if not isinstance(raw, str) or not 20 <= len(raw) <= 100:
        raise NotFound("That calendar link does not work any more.")
    user = (
        User.select()
        .join(CalendarToken)
        .where((CalendarToken.token_hash == _hash(raw)) & CalendarToken.revoked_at.is_null() & User.active)
        .first()
    )
    if user is None:
        raise NotFound("That calendar link does not work any more.")
    return user


def feed_url(raw):
    return f"{_base_url()}/calendar/{raw}.ics"
