"""Session templates: a recurring slot (an RFC 5545 rule at a club-local time) and the sessions it
generates for the coming weeks.

Occurrences are computed on the club's wall clock (the rule's DTSTART is the first date at
start_time, naive club time) and each one is converted to UTC through the zone, so a zone with
daylight saving keeps the local time. Generation is an INSERT ... ON CONFLICT DO NOTHING against
the unique (template_id, starts_at) index: any number of generators at once create each session once.
"""

import json
import logging
import re
from datetime import UTC, date, datetime, time, timedelta

from dateutil.rrule import DAILY, rrulestr
from peewee import IntegrityError

from loafy import audit
from loafy.clock import club_tz, to_local
from loafy.db import db
from loafy.errors import NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_row, lock_session
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, SessionTemplate

log = logging.getLogger(__name__)

FIELDS = (
    "title",
    "description",
    "location",
    "rrule",
    "starts_on",
    "start_time",
    "duration_minutes",
    "max_slots",
    "price",
    "weeks_ahead",
    "booking_opens_hours_before",
    "early_access_hours",
    "allow_pay_at_door",
    "active",
)
# Fields whose change moves the sessions' starts: the generated set is recomputed.
SCHEDULE_FIELDS = ("rrule", "starts_on", "start_time")
MAX_OCCURRENCES = 500  # 26 weeks of a daily rule is 182: anything near this is a typo
MAX_PRICE = 99_999_999
TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _require_admin(actor):
    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can manage session templates.")


# --- validation ----------------------------------------------------------------------------------


def _int(name, value, low, high, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number.", field=name)
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low:,} and {high:,}.", field=name)
    return value


def _text(name, value, limit, required=False):
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be text.", field=name)
    text = (value or "").strip()
    if required and not text:
        raise ValidationError(f"{name.capitalize()} is required.", field=name)
    if len(text) > limit:
        raise ValidationError(f"{name.capitalize()} must be at most {limit} characters.", field=name)
    return text


def _clean(name, value):
    if name == "title":
        return _text(name, value, 200, required=True)
    if name == "description":
        return _text(name, value, 5000)
    if name == "location":
        return _text(name, value, 300)
    if name == "rrule":
        return _text(name, value, 500, required=True).upper().removeprefix("RRULE:")
    if name == "starts_on":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            day = date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValidationError("starts_on must be a date (YYYY-MM-DD).", field=name)
        if not 2000 <= day.year <= 2099:
            raise ValidationError("starts_on must be between 2000 and 2099.", field=name)
        return day
    if name == "start_time":
        text = value.strftime("%H:%M") if isinstance(value, time) else str(value or "").strip()
        if not TIME_OF_DAY.fullmatch(text):
            raise ValidationError("start_time must be HH:MM (club time), e.g. 18:30.", field=name)
        return text
    if name == "duration_minutes":
        return _int(name, value, 5, 1440)
    if name == "max_slots":
        return _int(name, value, 1, 10_000)
    if name == "price":
        return _int(name, value, 0, MAX_PRICE)
    if name == "weeks_ahead":
        return _int(name, value, 1, 26)
    if name in ("booking_opens_hours_before", "early_access_hours"):
        return _int(name, value, 0, 24 * 90, allow_none=True)
    if name in ("allow_pay_at_door", "active"):
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false.", field=name)
        return value
    raise AssertionError(name)


def _rule(template_fields):
    """The dateutil rule of these fields, DTSTART on the club's wall clock; ValidationError if bad."""
    hour, minute = (int(part) for part in template_fields["start_time"].split(":"))
    start = datetime.combine(template_fields["starts_on"], time(hour, minute))
    text = template_fields["rrule"]
    if "DTSTART" in text:
        raise ValidationError("Give the first date as starts_on, not DTSTART in the rule.", field="rrule")
    try:
        rule = rrulestr(text, dtstart=start)
    except Exception as exc:  # dateutil raises ValueError, TypeError, AttributeError, KeyError...
        raise ValidationError(f"The rule is not a valid RFC 5545 RRULE: {exc}.", field="rrule")
    if getattr(rule, "_freq", DAILY) > DAILY:
        raise ValidationError(
            "Sessions repeat at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY).", field="rrule"
        )
    return rule


def validate(data, current=None):
    """Cleaned fields of `data` (all of them when creating, the given ones when editing)."""
    fields = {}
    for name in FIELDS:
        if name in data:
            fields[name] = _clean(name, data[name])
    merged = {name: getattr(current, name) for name in FIELDS} if current is not None else {}
    if current is None:
        merged.update({"description": "", "location": "", "price": 0, "weeks_ahead": 4, "active": True})
        merged.update({"booking_opens_hours_before": None, "early_access_hours": None})
        merged.update({"allow_pay_at_door": False, "starts_on": None})
        for required in ("title", "rrule", "start_time", "duration_minutes", "max_slots"):
            if required not in fields:
                raise ValidationError(f"{required} is required.", field=required)
    merged.update(fields)
    early, opens = merged["early_access_hours"], merged["booking_opens_hours_before"]
    if early is not None and (opens is None or early < opens):
        raise ValidationError(
            "Members' early access must open before public booking: early_access_hours must be at least "
            "booking_opens_hours_before.",
            field="early_access_hours",
        )
    return fields, merged


def skipped(template):
    return set(json.loads(template.skipped_dates or "[]"))


# --- the occurrences -----------------------------------------------------------------------------


def _utc(local_naive):
    return local_naive.replace(tzinfo=club_tz()).astimezone(UTC).replace(tzinfo=None)


def occurrences(template, start, end):
    """(starts_at, ends_at) in naive UTC of the template's sessions starting in [start, end),
    skipped dates left out."""
    rule = _rule({name: getattr(template, name) for name in SCHEDULE_FIELDS})
    local_start = to_local(start).replace(tzinfo=None) - timedelta(days=1)
    local_end = to_local(end).replace(tzinfo=None) + timedelta(days=1)
    skip = skipped(template)
    result = []
    for local in rule.between(local_start, local_end, inc=True):
        starts = _utc(local)
        if not start <= starts < end or local.date().isoformat() in skip:
            continue
        result.append((starts, starts + timedelta(minutes=template.duration_minutes)))
        if len(result) > MAX_OCCURRENCES:
            raise ValidationError("This rule makes too many sessions; repeat at most daily.", field="rrule")
    return result


def _session_values(template, starts, ends):
    """The columns a generated session takes from its template."""
    opens = early = None
    if template.booking_opens_hours_before is not None:
        opens = starts - timedelta(hours=template.booking_opens_hours_before)
    if template.early_access_hours is not None:
        early = starts - timedelta(hours=template.early_access_hours)
    return {
        "title": template.title,
        "description": template.description,
        "location": template.location,
        "starts_at": starts,
        "ends_at": ends,
        "max_slots": template.max_slots,
        "price": template.price,
        "booking_opens_at": opens,
        "early_access_opens_at": early,
        "allow_pay_at_door": template.allow_pay_at_door,
    }


def window(template, now):
    return now, now + timedelta(weeks=template.weeks_ahead)


def generate_for_template(template, now):
    """Create the template's missing sessions of the next weeks_ahead weeks; returns the new ones.

    Safe to run twice, or from two processes at once: the unique (template_id, starts_at) index
    keeps one row per start, the loser's INSERT doing nothing.
    """
    if not template.active or template.deleted_at is not None:
        return []
    start, end = window(template, now)
    wanted = occurrences(template, start, end)
    if not wanted:
        return []
    existing = {
        row.starts_at
        for row in ClubSession.select(ClubSession.starts_at).where(
            (ClubSession.template_id == template.id) & (ClubSession.starts_at >= start)
        )
    }
    created = []
    for starts, ends in wanted:
        if starts in existing:
            continue
        values = _session_values(template, starts, ends)
        values.update(
            available_slots=template.max_slots,
            status="published",
            template_id=template.id,
            created_by=template.created_by_id,
            created_at=now,
            updated_at=now,
        )
        with db.atomic():
            # RETURNING gives the row only when this INSERT made it (never the other generator's).
            rows = list(ClubSession.insert(**values).on_conflict_ignore().returning(ClubSession.id).execute())
        if rows:
            created.append(ClubSession.get_by_id(rows[0].id))
    if created:
        log.info("template %s: %d session(s) generated", template.id, len(created))
    return created


def generate_sessions(now, template_id=None):
    """Every active template's coming sessions (or one template's); returns the new sessions."""
    query = SessionTemplate.select().where(SessionTemplate.active & SessionTemplate.deleted_at.is_null())
    if template_id is not None:
        query = query.where(SessionTemplate.id == template_id)
    created = []
    for template in query.order_by(SessionTemplate.id):
        created.extend(generate_for_template(template, now))
    return created


# --- CRUD ----------------------------------------------------------------------------------------


def get_template(template_id):
    template = SessionTemplate.get_or_none(
        (SessionTemplate.id == parse_id(template_id, "That template does not exist."))
        & SessionTemplate.deleted_at.is_null()
    )
    if template is None:
        raise NotFound("That template does not exist.")
    return template


def list_templates():
    return list(
        SessionTemplate.select().where(SessionTemplate.deleted_at.is_null()).order_by(SessionTemplate.id)
    )


def create_template(actor, data, now):
    """A new template (admins); its sessions are generated at once."""
    _require_admin(actor)
    fields, merged = validate(data)
    if merged.get("starts_on") is None:
        merged["starts_on"] = to_local(now).date()
    _rule(merged)
    try:
        with db.atomic():
            template = SessionTemplate.create(**merged, created_by=actor.id, created_at=now, updated_at=now)
            audit.record(actor, "template.create", "session_template", template.id, fields, now)
    except IntegrityError as exc:
        log.warning("template rejected by the database: %s", exc)
        raise ValidationError("These template details are not consistent.")
    created = generate_for_template(template, now)
    return template, created


def _has_active_bookings(session_id):
    return (
        Booking.select()
        .where((Booking.club_session == session_id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
        .exists()
    )


def _future_sessions(template, now):
    return list(
        ClubSession.select()
        .where(
            (ClubSession.template_id == template.id)
            & (ClubSession.starts_at > now)
            & (ClubSession.status != "cancelled")
        )
        .order_by(ClubSession.starts_at)
    )


def _withdraw(club_session, now):
    """Take an unbooked generated session off the calendar: deleted if it never had a booking,
    else cancelled (its old bookings are all cancelled or expired). Caller holds its lock."""
    if Booking.select().where(Booking.club_session == club_session.id).exists():
        ClubSession.update(
            status="cancelled", cancelled_at=now, updated_at=now, revision=ClubSession.revision + 1
        ).where(ClubSession.id == club_session.id).execute()
    else:
        ClubSession.delete().where(ClubSession.id == club_session.id).execute()


def _left_alone(club_session, reason):
    return {"id": club_session.id, "starts_at": club_session.starts_at, "reason": reason}


def apply_to_future(template, now, withdraw_all=False):
    """Bring the template's future sessions without active bookings in line with it; sessions with
    bookings are left as they are and reported. Returns {updated, removed, left_alone, created}."""
    result = {"updated": [], "removed": [], "left_alone": [], "created": []}
    wanted = {} if withdraw_all else dict(occurrences(template, *window(template, now)))
    wanted_starts = set(wanted)
    for club_session in _future_sessions(template, now):
        with db.atomic():
            current = lock_session(club_session.id)
            if current.status == "cancelled":
                continue
            if _has_active_bookings(current.id):
                reason = "has bookings"
                if current.starts_at not in wanted_starts:
                    reason = "has bookings; no longer on the schedule, cancel it by hand if it should go"
                result["left_alone"].append(_left_alone(current, reason))
                continue
            if current.starts_at not in wanted_starts:
                _withdraw(current, now)
                result["removed"].append(current.id)
                continue
            values = _session_values(template, current.starts_at, wanted[current.starts_at])
            changed = {k: v for k, v in values.items() if getattr(current, k) != v}
            if not changed:
                continue
            updates = {getattr(ClubSession, k): v for k, v in changed.items()}
            updates[ClubSession.available_slots] = values["max_slots"]  # no active booking holds one
            updates[ClubSession.updated_at] = now
            if set(changed) & {"title", "location", "description", "ends_at"}:
                updates[ClubSession.revision] = ClubSession.revision + 1
            ClubSession.update(updates).where(ClubSession.id == current.id).execute()
            result["updated"].append(current.id)
    if not withdraw_all:
        result["created"] = [s.id for s in generate_for_template(template, now)]
    return result


def update_template(actor, template_id, data, now):
    """Edit a template: its future sessions without bookings follow, the others are reported."""
    _require_admin(actor)
    template = get_template(template_id)
    fields, merged = validate(data, current=template)
    _rule(merged)
    try:
        with db.atomic():
            SessionTemplate.update(**fields, updated_at=now).where(
                SessionTemplate.id == template.id
            ).execute()
            audit.record(actor, "template.update", "session_template", template.id, fields, now)
    except IntegrityError as exc:
        log.warning("template update rejected by the database: %s", exc)
        raise ValidationError("These template details are not consistent.")
    template = SessionTemplate.get_by_id(template.id)
    if not template.active:
        return template, {"updated": [], "removed": [], "left_alone": [], "created": []}
    return template, apply_to_future(template, now)


def delete_template(actor, template_id, now):
    """Stop a template: its future sessions without bookings go, the booked ones stay (reported)."""
    _require_admin(actor)
    template = get_template(template_id)
    with db.atomic():
        SessionTemplate.update(deleted_at=now, active=False, updated_at=now).where(
            SessionTemplate.id == template.id
        ).execute()
        audit.record(actor, "template.delete", "session_template", template.id, {}, now)
    return apply_to_future(SessionTemplate.get_by_id(template.id), now, withdraw_all=True)


def skip_date(actor, template_id, day, now):
    """Leave one club-local date out (a holiday). An unbooked session on it goes; one with bookings
    is left alone and reported (cancel it by hand: that refunds its players)."""
    _require_admin(actor)
    template = get_template(template_id)
    day = _clean("starts_on", day)
    with db.atomic():
        current = lock_row(SessionTemplate, template.id)  # two skips at once add both dates
        days = sorted(skipped(current) | {day.isoformat()})
        SessionTemplate.update(skipped_dates=json.dumps(days), updated_at=now).where(
            SessionTemplate.id == template.id
        ).execute()
        audit.record(
            actor, "template.skip_date", "session_template", template.id, {"date": day.isoformat()}, now
        )
    return apply_to_future(SessionTemplate.get_by_id(template.id), now)


def unskip_date(actor, template_id, day, now):
    """Put a skipped date back; its session is generated again."""
    _require_admin(actor)
    template = get_template(template_id)
    day = _clean("starts_on", day)
    with db.atomic():
        days = sorted(skipped(SessionTemplate.get_by_id(template.id)) - {day.isoformat()})
        SessionTemplate.update(skipped_dates=json.dumps(days), updated_at=now).where(
            SessionTemplate.id == template.id
        ).execute()
        audit.record(
            actor, "template.unskip_date", "session_template", template.id, {"date": day.isoformat()}, now
        )
    return apply_to_future(SessionTemplate.get_by_id(template.id), now)
