"""Staff operations: each calls the owning service and writes the audit row in the same transaction
(unless the service writes it itself, as cancelling a booking does for players and staff alike).

The admin area calls these and nothing else for changes; the rules stay in the services they wrap.
Organizers act on their own sessions (and those sessions' bookings); admins on everything.
"""

import logging

from loafy import audit, settings
from loafy.booking import bookings, club_sessions, waitlist
from loafy.booking.club_sessions import can_handle_session
from loafy.clock import format_local
from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_booking
from loafy.models import Booking, ClubSession, User
from loafy.money import refunds
from loafy.people import accounts

log = logging.getLogger(__name__)

STAFF_PAYMENT_METHODS = ("cash", "bank_transfer")


def _as_id(value, what):
    return parse_id(value, f"That {what} does not exist.")


def _require_staff(actor):
    if actor is None or not actor.is_staff:
        raise PermissionDenied("Only organizers and admins can do that.")


def _require_admin(actor, message="Only an admin can do that."):
    if actor is None or not actor.is_admin:
        raise PermissionDenied(message)


def handle_refusal(actor, booking):
    """Why `actor` may not handle `booking` as staff (an organizer: their sessions' bookings only)."""
    if actor is None or not getattr(actor, "is_authenticated", True) or not actor.is_staff:
        return PermissionDenied("Only organizers and admins can do that.")
    if not can_handle_session(actor, booking.club_session):
        return PermissionDenied("Organizers can only handle bookings of their own sessions.")
    return None


def mark_paid_refusal(actor, booking):
    """Why `actor` may not record `booking`'s money as seen (cash, a transfer); None when they may."""
    refusal = handle_refusal(actor, booking)
    if refusal is not None:
        return refusal
    if booking.status == "cancelled":
        return Conflict("This booking was cancelled: it cannot be marked paid.", code="cancelled")
    if booking.payment_status == "paid":
        return Conflict("This booking is already paid.", code="already_paid")
    if booking.payment_status == "refunded":
        return Conflict("This booking was refunded.", code="refunded")
    return None


def check_in_refusal(actor, booking, now=None):
    """Why `actor` may not check `booking`'s player in (at `now`: the door's hours); None when they may."""
    refusal = handle_refusal(actor, booking)
    if refusal is not None:
        return refusal
    if booking.status != "confirmed":
        return Conflict("Only confirmed bookings can be checked in.", code="not_confirmed")
    if booking.checked_in_people >= booking.slots:  # door: a party may arrive apart
        return Conflict(f"{booking.code} is already checked in.", code="already_checked_in")
    if now is not None:
        from loafy.door import checkin  # the door is built on this module

        opens, closes = checkin.window(booking.club_session, settings.get_settings())
        if now < opens:
            return Conflict(f"Check-in opens at {format_local(opens)}.", code="wrong_time")
        if now >= closes:
            return Conflict("This session has ended.", code="wrong_time")
    return None


def _booking_for(actor, booking_id):
    booking = (
        Booking.select(Booking, ClubSession)
        .join(ClubSession)
        .where(Booking.id == _as_id(booking_id, "booking"))
        .first()
    )
    if booking is None:
        raise NotFound("That booking does not exist.")
    _require_staff(actor)
    if not can_handle_session(actor, booking.club_session):
        raise PermissionDenied("Organizers can only handle bookings of their own sessions.")
    return booking


# Sessions ------------------------------------------------------------------------------------


def create_session(actor, data, now):
    with db.atomic():
        club_session = club_sessions.create_session(actor, data, now)
        audit.record(actor, "session.create", "session", club_session.id, _public(data), now)
    return club_session


def update_session(actor, session_id, data, now):
    """Edit a session (capacity rule in the service); the audit row lists the fields that changed."""
    session_id = _as_id(session_id, "session")
    before = ClubSession.get_or_none(ClubSession.id == session_id)
    if before is None:
        raise NotFound("That session does not exist.")
    with db.atomic():
        after = club_sessions.update_session(actor, session_id, data, now)
        if waitlist.offer_freed_slots(session_id, now):  # more capacity: the waitlist first
            after = ClubSession.get_by_id(session_id)
        changes = {
            name: [getattr(before, name), getattr(after, name)]
            for name in club_sessions.EDITABLE_FIELDS
            if getattr(before, name) != getattr(after, name)
        }
        if changes:  # publishing a published session, or saving an untouched form, is not an event
            audit.record(actor, "session.update", "session", session_id, changes, now)
    return after


def cancel_session(actor, session_id, now, reason=""):
    session_id = _as_id(session_id, "session")
    with db.atomic():
        held = bookings.held_slots(session_id)
        club_session = club_sessions.cancel_session(actor, session_id, now, reason=reason)
        audit.record(
            actor, "session.cancel", "session", session_id, {"reason": reason, "slots_released": held}, now
        )
    return club_session


def delete_session(actor, session_id, now):
    session_id = _as_id(session_id, "session")
    current = ClubSession.get_or_none(ClubSession.id == session_id)
    if current is None:
        raise NotFound("That session does not exist.")
    with db.atomic():
        club_sessions.delete_session(actor, session_id)
        audit.record(actor, "session.delete", "session", session_id, {"title": current.title}, now)


def _public(data):
    return {k: v for k, v in data.items() if k in club_sessions.EDITABLE_FIELDS}


# Bookings ------------------------------------------------------------------------------------


def mark_paid(actor, booking_id, method, now):
    """Staff saw the money (cash at the door, a bank transfer): record it once and confirm the booking."""
    if method not in STAFF_PAYMENT_METHODS:
        raise ValidationError("Choose cash or bank transfer.", field="method")
    booking = _booking_for(actor, booking_id)
    return record_received(
        actor,
        booking,
        method=method,
        provider_id=f"{method}:{booking.code}",
        amount=booking.amount,
        now=now,
        note=f"marked paid by staff ({method})",
        action="booking.mark_paid",
    )


def record_received(
    actor, booking, *, method, provider_id, amount, now, note, action, details=None, refuse_settled=True
):
    """Money seen for a booking -- staff marking it paid, or a bank transfer matched to it: the one
    path both take. One transaction: the ledger row (once, by provider id), the booking confirmed
    (or invariant 4 for a lapsed one), the e-mail, the audit row. `actor` None is the matcher.

    With refuse_settled (staff), a cancelled, paid or refunded booking is refused; without it (money
    that already arrived) record_payment decides: a second payment is marked refund-due.
    Returns record_payment's outcome: confirmed, reconfirmed, refund_due or duplicate.
    """
    with db.atomic():
        # Checked under the session's lock: two staff marking the same booking at once (one cash,
        # one transfer) must not both record a payment.
        club_session = booking.club_session
        booking = lock_booking(booking)
        booking.club_session = club_session
        if refuse_settled:
            refusal = mark_paid_refusal(actor, booking)
            if refusal is not None:
                raise refusal
        outcome = bookings.record_payment(
            booking.id,
            provider=method,
            provider_id=provider_id,
            amount=amount,
            now=now,
            actor=actor,
            note=note,
        )
        if outcome == "duplicate":
            if refuse_settled:
                raise Conflict(
                    f"A {method.replace('_', ' ')} payment for {booking.code} is already recorded.",
                    code="duplicate",
                )
            return outcome  # recorded before: nothing changed, nothing to audit
        audit.record(
            actor,
            action,
            "booking",
            booking.id,
            {"method": method, "amount": amount, "outcome": outcome, **(details or {})},
            now,
        )
    return outcome


def check_in(actor, booking_id, now):
    """Check a confirmed booking's party in (the door's rules and scan log: loafy.door.checkin);
    checking in twice changes nothing."""
    booking = _booking_for(actor, booking_id)
    refusal = check_in_refusal(actor, booking, now)
    if refusal is not None and refusal.code == "already_checked_in":
        return Booking.get_by_id(booking.id)  # a second scan or click: nothing changes
    if refusal is not None:
        raise refusal
    from loafy.door import checkin  # the door is built on this module (cash at the door is mark_paid)

    return checkin.check_in_booking(actor, booking.id, now)


def cancel_booking(actor, booking_id, now, reason=""):
    """Cancel a booking from the staff area, by the booking service's rule (an admin any booking,
    anyone their own before the cutoff): slots return, a paid booking becomes refund-due. The
    booking service writes the audit row, as it does for every cancel."""
    booking = _booking_for(actor, booking_id)
    return bookings.cancel_booking(actor, booking.id, now, reason=reason)


def refund_booking(actor, booking_id, now, amount=None):
    """Refund a paid booking (admins) through the refunds service, which records the request and
    its audit row, commits, and only then calls Stripe: no transaction is open here."""
    _require_admin(actor, "Only an admin can refund a booking.")
    booking = _booking_for(actor, booking_id)
    return refunds.refund_booking(actor, booking.id, now, amount=amount)


# Players -------------------------------------------------------------------------------------


def _user(user_id):
    user = User.get_or_none(User.id == _as_id(user_id, "player"))
    if user is None:
        raise NotFound("That player does not exist.")
    return user


def set_role(actor, user_id, role, now):
    _require_admin(actor, "Only an admin can change roles.")
    user = _user(user_id)
    with db.atomic():
        updated = accounts.set_role(actor, user, role)
        if updated.role_id != user.role_id:
            audit.record(actor, "user.set_role", "user", user.id, {"from": user.role_id, "to": role}, now)
    return updated


def record_manual_refund(actor, booking_id, method, now):
    """An admin gave the money back in cash or by transfer: the ledger and the audit say so."""
    _require_admin(actor, "Only an admin can record a refund.")
    booking = _booking_for(actor, booking_id)
    with db.atomic():
        amount = refunds.record_manual_refund(actor, booking.id, method, now)
        details = {"code": booking.code, "method": method, "amount": amount}
        audit.record(actor, "booking.manual_refund", "booking", booking.id, details, now)
    return amount


# Settings ------------------------------------------------------------------------------------


def update_settings(actor, changes, now):
    """Validate and store settings (admins); the audit row names each changed key, before and after."""
    _require_admin(actor, "Only an admin can change the settings.")
    with db.atomic():
        before = settings.get_settings()
        after = settings.update_settings(changes, now)
        diff = {key: [before[key], after[key]] for key in changes if before.get(key) != after.get(key)}
        if diff:
            audit.record(actor, "settings.update", "settings", None, diff, now)
    return after, diff
