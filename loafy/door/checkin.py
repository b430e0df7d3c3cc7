"""Checking players in at the door (after pretix's perform_checkin): one answer per scan, with a
reason for every refusal, and a nonce that makes a retry safe.

Every answer is kept in the scan log (`checkins`) under its nonce, inside the transaction that acts
on it: the same nonce always gets the stored answer back and checks no one in twice (the nonce's
unique index decides between two racing requests). A booking's people checked in are counted on
the booking by a conditional update, never past its slots (a CHECK in the database), under the
session's lock like every other change to its bookings. A party may arrive apart: `people` says how
many of it are in now. Undo is for the last few minutes' mistakes.
"""

import hashlib
import json
import logging
import re
import secrets
from datetime import timedelta

from peewee import IntegrityError, fn

from loafy import audit
from loafy.booking import staff
from loafy.booking.club_sessions import can_handle_session
from loafy.clock import format_local, format_vnd
from loafy.db import db
from loafy.door import tickets
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_session
from loafy.models import Booking, Checkin, ClubSession, User
from loafy.settings import get_settings
from loafy.web.formatting import iso_utc

log = logging.getLogger(__name__)

UNDO_WINDOW = timedelta(minutes=2)
MAX_NONCE = 100
MAX_CODE = 500
BOOKING_CODE = re.compile(r"LB-?([A-Z0-9]{5})", re.IGNORECASE)
COLLECT_METHODS = ("cash",)


def _require_staff(actor):
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_staff:
        raise PermissionDenied("Only organizers and admins check players in.")


def _clean_nonce(nonce):
    if nonce is None:
        return secrets.token_hex(16)  # no retry protection asked for: this answer's own
    if not isinstance(nonce, str) or not 1 <= len(nonce.strip()) <= MAX_NONCE:
        raise ValidationError(f"nonce must be text of 1 to {MAX_NONCE} characters.", field="nonce")
    return nonce.strip()


def _clean_people(people):
    if people is None:
        return None
    if isinstance(people, float) and people.is_integer():
        people = int(people)
    if isinstance(people, bool) or not isinstance(people, int) or people < 1:
        raise ValidationError("people must be a whole number of at least 1.", field="people")
    return people


def _clean_code(code):
    if not isinstance(code, str) or not code.strip():
        raise ValidationError("Scan a ticket or type a booking code.", field="code")
    if len(code) > MAX_CODE:
        raise ValidationError("That is not a ticket.", field="code")
    return code.strip()


def find_booking(code):
    """The booking a scanned or typed code names: a ticket URL, its secret, or a booking code
    (LB-XXXXX, any case, dash optional). None when it names none."""
    query = Booking.select(Booking, ClubSession, User).join(ClubSession).switch(Booking).join(User)
    match = BOOKING_CODE.fullmatch(code.strip())
    if match:
        return query.where(Booking.code == "LB-" + match.group(1).upper()).first()
    secret = tickets.secret_from(code)
    return query.where(Booking.ticket_secret == secret).first() if secret else None


def _code_hash(code):
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _replay(nonce, actor, code_hash):
    """The stored answer for this nonce, if any. A nonce is one request's: another person or code
    under it is refused rather than answered with someone else's result."""
    row = Checkin.get_or_none(Checkin.nonce == nonce)
    if row is None:
        return None
    if row.actor_id != actor.id or row.code_hash != code_hash:
        raise Conflict("That nonce was already used for another scan.", code="nonce_reused")
    answer = json.loads(row.answer)
    answer["replayed"] = True
    return answer


def session_people(session_id, now):
    """(people checked in, people expected) of a session: its confirmed and live unpaid bookings."""
    rows = Booking.select(
        Booking.slots, Booking.checked_in_people, Booking.status, Booking.payment_deadline
    ).where((Booking.club_session == session_id) & Booking.status.in_(("confirmed", "pending_payment")))
    inside = expected = 0
    for row in rows:
        if (
            row.status == "pending_payment"
            and row.payment_deadline is not None
            and row.payment_deadline <= now
        ):
            continue
        inside += row.checked_in_people
        expected += row.slots
    return inside, expected


def _last_checkin(booking_id):
    return (
        Checkin.select(Checkin, User)
        .join(User, on=Checkin.actor)
        .where((Checkin.booking == booking_id) & (Checkin.status == "ok") & Checkin.undone_at.is_null())
        .order_by(Checkin.created_at.desc(), Checkin.id.desc())
        .first()
    )


def _person(user):
    return {"id": user.id, "name": user.name} if user is not None else None


def _answer(status, message, booking=None, now=None, **extra):
    answer = {
        "status": status,
        "message": message,
        "booking_id": booking.id if booking is not None else None,
        "session_id": booking.club_session_id if booking is not None else None,
        "checked_in_at": None,
        "checked_in_by": None,
        "amount_due": 0,
        "people": 0,
        "people_in": booking.checked_in_people if booking is not None else 0,
        "people_total": booking.slots if booking is not None else 0,
    }
    answer.update(extra)
    return answer


def _window(club_session, settings):
    opens = club_session.starts_at - timedelta(hours=settings["checkin_opens_hours"])
    return opens, club_session.ends_at


def _decide(actor, booking, session_id, collect, people, nonce, now):
    """The answer for one scan, acting on it (inside the caller's transaction, under the lock)."""
    if booking is None:
        return _answer("invalid", "This is not a ticket of ours.")
    club_session = booking.club_session
    if not can_handle_session(actor, club_session):
        # Another organizer's session: say so, and nothing about the booking.
        return {
            **_answer("wrong_session", f"This ticket is for another session: {club_session.title}."),
            "session_id": club_session.id,
        }
    if session_id is not None and session_id != club_session.id:
        when = format_local(club_session.starts_at)
        return _answer(
            "wrong_session", f"This ticket is for another session: {club_session.title}, {when}.", booking
        )
    if booking.status in ("cancelled", "expired") or booking.is_overdue(now):
        what = "cancelled" if booking.status == "cancelled" else "expired unpaid"
        return _answer("cancelled", f"This booking was {what}.", booking)
    remaining = booking.slots - booking.checked_in_people
    if remaining <= 0:
        last = _last_checkin(booking.id)
        at = last.created_at if last is not None else booking.checked_in_at
        by = _person(last.actor) if last is not None else None
        who = f" by {by['name']}" if by else ""
        return _answer(
            "already",
            f"Already checked in at {format_local(at, '%H:%M')}{who}.",
            booking,
            checked_in_at=iso_utc(at),
            checked_in_by=by,
        )
    opens, closes = _window(club_session, get_settings())
    if now < opens:
        return _answer(
            "wrong_time", f"Check-in opens at {format_local(opens)}.", booking, reason="not_open_yet"
        )
    if now >= closes:
        return _answer("wrong_time", "This session has ended.", booking, reason="ended")
    collected = 0
    if booking.payment_status != "paid" and booking.amount > 0:
        if collect != "cash":
            return _answer(
                "unpaid",
                f"Not paid: {format_vnd(booking.amount)} to collect.",
                booking,
                amount_due=booking.amount,
            )
        # The same service as staff's "mark paid": the ledger row, confirmation, audit.
        staff.mark_paid(actor, booking.id, "cash", now)
        collected = booking.amount
        booking = Booking.get_by_id(booking.id)
        if booking.status != "confirmed":  # the spot was gone: the money is marked for refund
            return _answer(
                "cancelled", "This booking's spot is gone; the cash is marked for refund.", booking
            )
    if booking.status != "confirmed":
        return _answer("cancelled", "This booking is not confirmed.", booking)
    count = remaining if people is None else people
    if count > remaining:
        raise ValidationError(
            f"Only {remaining} of this party {'is' if remaining == 1 else 'are'} still expected.",
            field="people",
        )
    changed = (
        Booking.update(
            checked_in_people=Booking.checked_in_people + count,
            checked_in_at=booking.checked_in_at or now,
            updated_at=now,
        )
        .where(
            (Booking.id == booking.id)
            & (Booking.status == "confirmed")
            & (Booking.checked_in_people + count <= Booking.slots)
        )
        .execute()
    )
    if not changed:  # cannot happen under the session's lock; never count anyone twice
        raise Conflict("The booking changed while checking in. Please scan again.")
    inside = booking.checked_in_people + count
    audit.record(
        actor,
        "booking.check_in",
        "booking",
        booking.id,
        {"code": booking.code, "people": count, "people_in": inside, "collected": collected, "nonce": nonce},
        now,
    )
    left = booking.slots - inside
    message = f"Welcome, {booking.user.name}! {inside} of {booking.slots} in."
    if left:
        message += f" {left} still expected."
    return _answer(
        "ok",
        message,
        booking,
        checked_in_at=iso_utc(now),
        checked_in_by=_person(actor),
        people=count,
        people_in=inside,
        collected=collected,
    )


def check_in(actor, code, now, *, nonce=None, session_id=None, collect=None, people=None):
    """Answer one scan or typed code at the door, and check in when the answer is "ok".

    Returns the answer: a dict with `status` ok | already | unpaid | wrong_session | wrong_time |
    cancelled | invalid, a message for the screen, the booking's id, when and by whom it was checked
    in, the amount due and the party's people in. `collect="cash"` takes an unpaid booking's money
    at the door (the ledger and the audit say so) and checks in, in one transaction.
    """
    _require_staff(actor)
    code = _clean_code(code)
    nonce = _clean_nonce(nonce)
    people = _clean_people(people)
    if collect not in (None, *COLLECT_METHODS):
        raise ValidationError('collect takes only "cash".', field="collect")
    if session_id is not None:
        session_id = parse_id(session_id, "That session does not exist.")
    code_hash = _code_hash(code)
    replayed = _replay(nonce, actor, code_hash)
    if replayed is not None:
        return replayed
    found = find_booking(code)
    try:
        with db.atomic():
            booking = found
            if booking is not None:
                lock_session(booking.club_session_id)
                # The retry that waited for the lock finds the first one's answer.
                replayed = _replay(nonce, actor, code_hash)
                if replayed is not None:
                    return replayed
                booking = find_booking(booking.code)
            answer = _decide(actor, booking, session_id, collect, people, nonce, now)
            answer["nonce"] = nonce
            Checkin.create(
                nonce=nonce,
                actor=actor.id,
                code_hash=code_hash,
                booking=booking.id if booking is not None else None,
                club_session=booking.club_session_id if booking is not None else None,
                status=answer["status"],
                people=answer["people"],
                answer=json.dumps(answer, ensure_ascii=False),
                created_at=now,
            )
    except IntegrityError:
        # The same nonce, sent twice at once, and the other one's answer was stored first.
        replayed = _replay(nonce, actor, code_hash)
        if replayed is None:
            raise
        return replayed
    if answer["status"] == "ok":
        log.info("checked in %s people of booking %s", answer["people"], answer["booking_id"])
    return answer


def check_in_booking(actor, booking_id, now):
    """Check in everyone still expected of a booking (the staff area's button); already in is fine."""
    number = parse_id(booking_id, "That booking does not exist.")
    booking = Booking.get_or_none(Booking.id == number)
    if booking is None:
        raise NotFound("That booking does not exist.")
    answer = check_in(actor, booking.code, now)
    if answer["status"] not in ("ok", "already"):
        raise Conflict(answer["message"], code=answer["status"])
    return Booking.get_by_id(number)


def undo_check_in(actor, booking_id, now):
    """Take back a booking's last check-in, within UNDO_WINDOW of it (a wrong scan, a wrong name).
    Money collected with it stays recorded: give it back through a refund."""
    _require_staff(actor)
    number = parse_id(booking_id, "That booking does not exist.")
    booking = Booking.select(Booking, ClubSession).join(ClubSession).where(Booking.id == number).first()
    if booking is None or not can_handle_session(actor, booking.club_session):
        raise NotFound("That booking does not exist.")
    with db.atomic():
        lock_session(booking.club_session_id)
        booking = Booking.get_by_id(number)
        last = _last_checkin(number)
        if last is None:
            raise Conflict("This booking is not checked in.", code="not_checked_in")
        if last.created_at < now - UNDO_WINDOW:
            minutes = int(UNDO_WINDOW.total_seconds() // 60)
            raise Conflict(f"A check-in can be undone for {minutes} minutes only.", code="too_late")
        Checkin.update(undone_at=now, undone_by=actor.id).where(Checkin.id == last.id).execute()
        inside = booking.checked_in_people - last.people
        first = None
        if inside > 0:
            first = (
                Checkin.select(Checkin.created_at)
                .where((Checkin.booking == number) & (Checkin.status == "ok") & Checkin.undone_at.is_null())
                .order_by(Checkin.created_at, Checkin.id)
                .scalar()
            )
        changed = (
            Booking.update(
                checked_in_people=Booking.checked_in_people - last.people,
                checked_in_at=first or (booking.checked_in_at if inside > 0 else None),
                updated_at=now,
            )
            .where((Booking.id == number) & (Booking.checked_in_people >= last.people))
            .execute()
        )
        if not changed:
            raise Conflict("The booking changed while undoing. Please try again.")
        audit.record(
            actor,
            "booking.check_in_undo",
            "booking",
            number,
            {"code": booking.code, "people": last.people, "people_in": inside},
            now,
        )
    return Booking.get_by_id(number)


def find_booking_by_id(booking_id):
    """A booking with its session and player (for showing an answer), or None."""
    return (
        Booking.select(Booking, ClubSession, User)
        .join(ClubSession)
        .switch(Booking)
        .join(User)
        .where(Booking.id == booking_id)
        .first()
    )


def public_session(session_id):
    """A session anyone may know of (not a draft), or None."""
    return ClubSession.get_or_none((ClubSession.id == session_id) & (ClubSession.status != "draft"))


def can_check_in(actor, booking):
    return actor is not None and actor.is_staff and can_handle_session(actor, booking.club_session)


def stored_answer(actor, nonce, booking_id):
    """The answer given to this staff member under `nonce` for this booking (the ticket page's
    result after its form was sent), or None."""
    row = Checkin.get_or_none(
        (Checkin.nonce == nonce) & (Checkin.actor == actor.id) & (Checkin.booking == booking_id)
    )
    return json.loads(row.answer) if row is not None else None


def window(club_session, settings):
    """When the door checks players in: from checkin_opens_hours before the start until the end."""
    return _window(club_session, settings)


def door_violations():
    """For `loafy check`: every booking has a ticket, and a booking's people in are what its scan
    log says (the sum of its check-ins not undone; bookings checked in before the log are skipped)."""
    violations = []
    missing = Booking.select().where(Booking.ticket_secret.is_null()).count()
    if missing:
        violations.append(f"{missing} booking(s) have no ticket secret")
    logged = (
        Checkin.select(Checkin.booking, fn.SUM(Checkin.people).alias("people"))
        .where((Checkin.status == "ok") & Checkin.undone_at.is_null())
        .group_by(Checkin.booking)
    )
    counts = {row.booking_id: int(row.people) for row in logged}
    logged_bookings = Checkin.select(Checkin.booking).where(Checkin.status == "ok").distinct()
    rows = Booking.select(Booking.id, Booking.code, Booking.checked_in_people).where(
        Booking.id.in_(logged_bookings)
    )
    for booking in rows:
        if booking.checked_in_people != counts.get(booking.id, 0):
            violations.append(
                f"booking {booking.code}: {booking.checked_in_people} people in, "
                f"its check-ins say {counts.get(booking.id, 0)}"
            )
    return violations
