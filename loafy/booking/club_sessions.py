"""Club sessions: create, edit, publish, list."""

import logging
from datetime import UTC, date, datetime, timedelta

from peewee import IntegrityError

from loafy.booking import sold_out
from loafy.clock import club_tz
from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_session
from loafy.models import ACTIVE_BOOKING_STATUSES, SESSION_STATUSES, Booking, ClubSession
from loafy.paging import Page

log = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "title",
    "description",
    "location",
    "starts_at",
    "ends_at",
    "max_slots",
    "price",
    "status",
    "booking_opens_at",
    "early_access_opens_at",
    "allow_pay_at_door",
)
# calendar: a change to one of these is a new revision of the session's calendar event (SEQUENCE).
CALENDAR_FIELDS = ("title", "description", "location", "starts_at", "ends_at", "status")
MAX_SLOTS_LIMIT = 10_000
MAX_PRICE = 99_999_999  # Stripe's cap for one VND charge


def sees_drafts(viewer):
    """Drafts are for staff only; anyone else (a visitor, a player, an API client) never sees one."""
    return bool(viewer is not None and getattr(viewer, "is_authenticated", False) and viewer.is_staff)


def can_handle_session(actor, club_session):
    """Admins handle every session; organizers the sessions they created (and their bookings)."""
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_staff:
        return False
    return actor.is_admin or club_session.created_by_id == actor.id


def get_session(session_id, viewer=None):
    """A session by id; drafts are visible to staff only (404 for anyone else)."""
    club_session = ClubSession.get_or_none(ClubSession.id == _as_id(session_id))
    if club_session is None or (club_session.status == "draft" and not sees_drafts(viewer)):
        raise NotFound("That session does not exist.")
    return club_session


def create_session(actor, data, now):
    """A new session by an organizer or admin; validated, then stored with all slots available."""
    if actor is None or not actor.is_staff:
        raise PermissionDenied("Only organizers and admins can create sessions.")
    fields = validate_session_fields(data, partial=False)
    fields.setdefault("status", "draft")
    # Whole minutes: the staff form edits minutes only and would otherwise rewrite the seconds.
    fields.setdefault("booking_opens_at", now.replace(second=0, microsecond=0))
    _check_dates(fields)
    try:
        with db.atomic():
            return ClubSession.create(
                **fields,
                available_slots=fields["max_slots"],
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError as exc:
        log.warning("session rejected by the database: %s", exc)
        raise ValidationError("These session details are not consistent.")


def validate_session_fields(data, partial):
    """Clean the editable fields of `data`; unknown keys are ignored, bad values named."""
    fields = {}
    for name in EDITABLE_FIELDS:
        if name not in data:
            continue
        fields[name] = _clean(name, data[name])
    if not partial:
        for required in ("title", "starts_at", "ends_at", "max_slots"):
            if fields.get(required) in (None, ""):
                raise ValidationError(
                    f"{required.replace('_', ' ').capitalize()} is required.", field=required
                )
    return fields


def _clean(name, value):
    if name in ("title", "description", "location"):
        if value is not None and not isinstance(value, str):  # str() would store "['a', 'b']"
            raise ValidationError(f"{name.capitalize()} must be text.", field=name)
        text = "" if value is None else value.strip()
        limit = {"title": 200, "location": 300, "description": 5000}[name]
        if len(text) > limit:
            raise ValidationError(f"{name.capitalize()} must be at most {limit} characters.", field=name)
        return text
    if name in ("starts_at", "ends_at", "booking_opens_at", "early_access_opens_at"):
        return _as_datetime(name, value)
    if name == "max_slots":
        return _as_int(name, value, 1, MAX_SLOTS_LIMIT)
    if name == "price":
        return _as_int(name, value, 0, MAX_PRICE)
    if name == "status":
        if value not in SESSION_STATUSES:
            raise ValidationError(f"Status must be one of: {', '.join(SESSION_STATUSES)}.", field=name)
        if value == "cancelled":
            raise ValidationError(  # cancelling is its own action: bookings are cancelled and refunded
                "A session is cancelled with the cancel action, not by setting its status.", field=name
            )
        return value
    if name == "allow_pay_at_door":
        if not isinstance(value, bool):  # bool("false") is True
            raise ValidationError(f"{name} must be true or false.", field=name)
        return value
    raise AssertionError(name)


def _check_dates(fields):
    starts, ends = fields.get("starts_at"), fields.get("ends_at")
    if starts and ends and ends <= starts:
        raise ValidationError("The session must end after it starts.", field="ends_at")
    early, public = fields.get("early_access_opens_at"), fields.get("booking_opens_at")
    if early and not public:
        raise ValidationError(
            "Members' early access needs a public booking time to come before: set when everyone can book.",
            field="booking_opens_at",
        )
    if early and public and early > public:
        raise ValidationError(
            "Early access for members must open before public booking.",
            field="early_access_opens_at",
        )


def _as_int(name, value, low, high):
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a whole number.", field=name)
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise ValidationError(f"{name} must be a whole number.", field=name)
    if not low <= number <= high:
        raise ValidationError(f"{name} must be between {low:,} and {high:,}.", field=name)
    return number


EARLIEST_YEAR, LATEST_YEAR = 2000, 2099


def _as_datetime(name, value):
    """Accept a datetime or ISO-8601 text; aware times are converted to naive UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{name} must be an ISO-8601 date and time.", field=name)
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a date and time.", field=name)
    out_of_range = ValidationError(f"{name} must be between {EARLIEST_YEAR} and {LATEST_YEAR}.", field=name)
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999, pushed past datetime's range by its offset
            raise out_of_range
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        # A typo, not a session: and before 1900 the club's zone has no whole-minute offset.
        raise out_of_range
    return value


def _as_id(value):
    return parse_id(value, "That session does not exist.")


def can_edit(actor, club_session):
    """Admins edit any session; organizers their own drafts (and publish them)."""
    if actor is None or not actor.is_staff:
        return False
    if actor.is_admin:
        return True
    return club_session.created_by_id == actor.id and club_session.status == "draft"


def update_session(actor, club_session, data, now):
    """Change a session's details. Capacity changes move available_slots by the same amount, in
    the same transaction, and are refused below what is already booked."""
    fields = validate_session_fields(data, partial=True)
    with db.atomic():
        current = lock_session(_as_id(getattr(club_session, "id", club_session)))
        if not can_edit(actor, current):
            raise PermissionDenied("You cannot edit this session.")
        if current.status == "cancelled":
            raise Conflict("This session was cancelled and cannot be edited.", code="cancelled")
        if fields.get("status") == "draft" and current.status != "draft" and _has_active_bookings(current.id):
            # Players hold (and may have paid for) spots in it: a draft is hidden and unbookable.
            raise Conflict(
                "This session has bookings: it cannot go back to draft. Cancel it instead.",
                code="has_bookings",
                field="status",
            )
        merged = {name: getattr(current, name) for name in EDITABLE_FIELDS}
        merged.update(fields)
        _check_dates(merged)
        updates = {getattr(ClubSession, k): v for k, v in fields.items()}
        if "max_slots" in fields and fields["max_slots"] != current.max_slots:
            held = current.max_slots - current.available_slots
            if fields["max_slots"] < held:
                raise Conflict(
                    f"{held} spots are already booked: capacity cannot go below {held}.",
                    code="capacity_below_booked",
                    field="max_slots",
                )
            delta = fields["max_slots"] - current.max_slots
            updates[ClubSession.available_slots] = ClubSession.available_slots + delta
        if "price" in fields and fields["price"] != current.price:
            # Existing bookings keep the price they were made at (Booking.unit_price).
            log.info("price of session %s changes from %s to %s", current.id, current.price, fields["price"])
        updates[ClubSession.updated_at] = now
        if any(fields.get(k, getattr(current, k)) != getattr(current, k) for k in CALENDAR_FIELDS):
            updates[ClubSession.revision] = ClubSession.revision + 1  # calendar feeds' SEQUENCE
        try:
            with db.atomic():
                ClubSession.update(updates).where(ClubSession.id == current.id).execute()
            sold_out.forget([current.id])  # more capacity, or other rules: no longer known full
        except IntegrityError as exc:
            log.warning("session update rejected by the database: %s", exc)
            raise ValidationError("These session details are not consistent.")
    return ClubSession.get_by_id(current.id)


def _has_active_bookings(session_id):
    return (
        Booking.select()
        .where((Booking.club_session == session_id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
        .exists()
    )


def cancel_session(actor, club_session, now, reason=""):
    """Cancel a session (admins): every active booking is cancelled and paid ones refunded."""
    from loafy.booking.bookings import cancel_session_bookings  # bookings imports this module

    if actor is None or not actor.is_admin:
        raise PermissionDenied("Only an admin can cancel a session.")
    with db.atomic():
        current = lock_session(_as_id(getattr(club_session, "id", club_session)))
        if current.status == "cancelled":
            raise Conflict("This session is already cancelled.", code="cancelled")
        ClubSession.update(
            status="cancelled", cancelled_at=now, updated_at=now, revision=ClubSession.revision + 1
        ).where(ClubSession.id == current.id).execute()
        count = cancel_session_bookings(actor, current.id, now, reason or "session cancelled")
    log.info("session %s cancelled by %s; %d booking(s) cancelled", current.id, actor.id, count)
    return ClubSession.get_by_id(current.id)


def delete_session(actor, club_session):
    """Delete a session that never had a booking (admins); otherwise cancel it instead."""
    if actor is None or not actor.is_admin:
        raise PermissionDenied("Only an admin can delete a session.")
    with db.atomic():
        current = lock_session(_as_id(getattr(club_session, "id", club_session)))
        if Booking.select().where(Booking.club_session == current.id).exists():
            raise Conflict(
                "This session has bookings: cancel it instead of deleting it.", code="has_bookings"
            )
        current.delete_instance()


MAX_PER_PAGE = 100


def list_sessions(viewer, *, starts_from=None, starts_to=None, status=None, page=1, per_page=20):
    """One `Page` of sessions by start time; drafts only for staff. Two queries.

    `starts_from` / `starts_to` are ISO-8601 dates or date-times (a date or a time without offset is
    the club's local time; a date as `starts_to` includes that whole day); bad values are named.
    """
    query = ClubSession.select()
    if not sees_drafts(viewer):
        query = query.where(ClubSession.status != "draft")
    if status not in (None, ""):
        if status not in SESSION_STATUSES:
            raise ValidationError(f"Status must be one of: {', '.join(SESSION_STATUSES)}.", field="status")
        query = query.where(ClubSession.status == status)
    low = _time_filter("from", starts_from, end_of_day=False)
    high = _time_filter("to", starts_to, end_of_day=True)
    if low is not None:
        query = query.where(ClubSession.starts_at >= low)
    if high is not None:
        query = query.where(ClubSession.starts_at < high)
    page, per_page = clean_page(page, per_page)
    total = query.count()
    items = list(query.order_by(ClubSession.starts_at, ClubSession.id).paginate(page, per_page))
    return Page(items, total, page, per_page)


def clean_page(page, per_page, max_per_page=MAX_PER_PAGE):
    """`page` from 1, `per_page` from 1 to `max_per_page`; anything else is a named 422."""
    page = _as_int("page", 1 if page in (None, "") else page, 1, 1_000_000)
    per_page = _as_int("per_page", 20 if per_page in (None, "") else per_page, 1, max_per_page)
    return page, per_page


def _time_filter(name, value, end_of_day):
    """An ISO date or date-time as naive UTC; dates and offset-less times are club-local.

    As an upper bound (`end_of_day`) a date means "through that day" and a time is inclusive.
    """
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day) + timedelta(days=1 if end_of_day else 0)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment += timedelta(microseconds=1 if end_of_day else 0)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=club_tz())
        return moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise ValidationError(f"{name} must be an ISO-8601 date or date and time.", field=name)
