"""Booking a session, paying for it, cancelling it, and releasing unpaid spots.

Lock order, everywhere: the session row first (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
serializes every writer), then its bookings. Slot counters change only by expression inside the
same transaction as the booking's status, and every status change is conditional on the status it
expects, so two racing actors (expiry and payment, two expiry runs, two cancels) cannot both win.
"""

import logging
import secrets
from datetime import timedelta

from peewee import IntegrityError, fn

from loafy import audit, notifications, queue
from loafy.booking import sold_out, waitlist
from loafy.booking.club_sessions import can_handle_session
from loafy.calendar import attendance
from loafy.clock import format_local
from loafy.db import db, fetch_one, is_postgres, prepared_sql, raw_sql
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_booking, lock_session, lock_sessions
from loafy.models import (
    ACTIVE_BOOKING_STATUSES,
    LIVE_SQL,
    OVERDUE_SQL,
    Booking,
    ClubSession,
    LedgerEntry,
    User,
    new_ticket_secret,
)
from loafy.money.methods import PaymentMethodUnavailable, check_payment_method, method_unavailable_reason
from loafy.passes import credits
from loafy.settings import get_settings, recent_settings

log = logging.getLogger(__name__)

# No 0/O, 1/I/L: a code read aloud at the door or typed from a screenshot cannot be misread.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 5
CODE_ATTEMPTS = 8
# Enqueued (after commit) whenever a booking's money may need to move: refund it, or cancel its
# open PaymentIntent. Implemented by the payments service; idempotent.
SETTLE_JOB = "jobs.payments.settle_booking"
# A free booking is confirmed and paid at once (_new_booking_state) and its player is asked for no
# payment method; the column still names one, and cash (at the door: here nothing) is the method
# every free session accepts.
FREE_BOOKING_METHOD = "cash"


class SessionFull(Conflict):
    code = "full"
    message = "Sorry, this session is full."


class AlreadyBooked(Conflict):
    code = "already_booked"
    message = "You already have a booking for this session. Add guests to it instead of booking twice."


class BookingClosed(Conflict):
    code = "closed"
    message = "This session is not open for booking."


class NotOpenYet(Conflict):
    code = "not_open"
    message = "Booking for this session is not open yet."


class SessionStarted(Conflict):
    code = "started"
    message = "This session has already started."


class TooManyGuests(ValidationError):
    code = "too_many_guests"


class InvalidGuestCount(ValidationError):
    code = "invalid_guest_count"
    message = "The number of guests must be a whole number from 0 to 3."


class CancellationClosed(Conflict):
    code = "cancellation_closed"


class BookingNotActive(Conflict):
    code = "not_active"
    message = "This booking is no longer active."


def new_code():
    """LB- and CODE_LENGTH letters, uniform over the alphabet, from one read of the system's
    randomness (secrets.choice reads it once per letter): bytes past the last whole multiple of
    the alphabet's size are skipped, so no letter is likelier than another."""
    size = len(CODE_ALPHABET)
    letters = []
    while len(letters) < CODE_LENGTH:
        letters += [
            CODE_ALPHABET[b % size] for b in secrets.token_bytes(2 * CODE_LENGTH) if b < 256 - 256 % size
        ]
    return "LB-" + "".join(letters[:CODE_LENGTH])


def parse_guest_count(value, max_guests):
    """A whole number 0..max_guests; anything else is a clear 422."""
    if isinstance(value, bool) or value is None:
        raise InvalidGuestCount(field="guest_count")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidGuestCount(field="guest_count")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        # isdigit() alone admits "²" and other digits int() refuses.
        if (
            not text.isascii()
            or not (text.isdigit() or (text.startswith("-") and text[1:].isdigit()))
            or len(text) > 6
        ):
            raise InvalidGuestCount(field="guest_count")
        value = int(text)
    if not isinstance(value, int) or value < 0:
        raise InvalidGuestCount(field="guest_count")
    if value > max_guests:
        guests = "guest" if max_guests == 1 else "guests"
        raise TooManyGuests(f"You can bring at most {max_guests} {guests}.", field="guest_count")
    return value


def _session_id(value):
    return parse_id(value, "That session does not exist.")


def _check_open(club_session, actor, now):
    if club_session.status == "draft" and not actor.is_staff:
        raise NotFound("That session does not exist.")  # a draft's existence is not public
    if club_session.status == "cancelled":
        raise BookingClosed("This session was cancelled.")
    if club_session.status != "published":
        raise BookingClosed()
    if club_session.starts_at <= now:
        raise SessionStarted()
    public, early = club_session.booking_opens_at, club_session.early_access_opens_at
    if public is None:
        return  # no public opening time: open to everyone (early access is a head start before it)
    member = actor.is_member(now)
    opens = min(early, public) if early is not None and member else public
    if now >= opens:
        return
    if early is not None and not member:
        if now >= early:
            raise NotOpenYet(f"Members are booking now; everyone else can book from {format_local(public)}.")
        raise NotOpenYet(
            f"Booking opens at {format_local(public)}; members can book from {format_local(early)}."
        )
    raise NotOpenYet(f"Booking opens at {format_local(opens)}.")


def book_session(actor, club_session, guest_count, payment_method, now):
    """Take 1 + guest_count slots for `actor` in one transaction; raises a typed refusal otherwise."""
    if actor is None or not getattr(actor, "is_authenticated", True):
        raise PermissionDenied("Please sign in to book.")
    session_id = _session_id(club_session)
    settings = recent_settings()
    guests = parse_guest_count(guest_count, settings["max_guests"])
    if payment_method in (None, "") and _is_free(session_id):
        payment_method = FREE_BOOKING_METHOD  # nothing to pay: nobody is asked how
    elif payment_method in (None, ""):
        raise PaymentMethodUnavailable("Choose how you will pay.", field="payment_method")
    elif payment_method != "pass" and (  # passes: a pack's credits need no enabled money method
        payment_method not in settings["payment_methods"] or method_unavailable_reason(payment_method)
    ):
        raise PaymentMethodUnavailable(method_unavailable_reason(payment_method), field="payment_method")
    attendance.check_can_book(actor, now, settings)  # calendar: too many strikes block online booking
    slots = 1 + guests
    if payment_method == "pass":  # a pack's credits: always the exact path, under the pack's lock
        booking = _book_locked(actor, session_id, guests, slots, payment_method, settings, now)
        log.info(
            "booked %s with pack %s: %s slots of session %s",
            booking.code,
            booking.club_pass_id,
            slots,
            session_id,
        )
        return booking
    if sold_out.is_sold_out(session_id):  # the crowd after a sell-out: one read, no write attempt
        _refuse_if_clearly_full(actor, session_id, slots, payment_method, now)
    booking = _book_fast(actor, session_id, guests, slots, payment_method, settings, now)
    if booking is None:
        _refuse_if_clearly_full(actor, session_id, slots, payment_method, now)
        booking = _book_locked(actor, session_id, guests, slots, payment_method, settings, now)
    log.info("booked %s: %s slots of session %s by user %s", booking.code, slots, session_id, actor.id)
    return booking


def _is_free(session_id):
    return ClubSession.select(ClubSession.price).where(ClubSession.id == session_id).scalar() == 0


def _book_locked(actor, session_id, guests, slots, payment_method, settings, now):
    """The exact path: every rule checked under the session's lock, refusals explained."""
    waitlist.serve_waitlist_first(session_id, now)  # freed slots go to the waitlist before this booker
    for _attempt in range(CODE_ATTEMPTS):
        try:
            with db.atomic():
                return _book_once(actor, session_id, guests, slots, payment_method, settings, now)
        except IntegrityError:
            # Either the one-active-booking index (a double click racing itself) or a code collision.
            if _active_booking(actor.id, session_id) is not None:
                raise AlreadyBooked()
            log.info("booking code collision for session %s; retrying", session_id)
    raise Conflict("We could not create your booking just now. Please try again.")


def _new_booking_state(free, payment_method, settings, now):
    """A new booking's status fields: free sessions and pay-at-the-door cash are confirmed at once;
    the rest wait for payment until the deadline."""
    confirmed_now = free or payment_method in ("cash", "pass")
    deadline = None if confirmed_now else now + timedelta(minutes=settings["payment_deadline_minutes"])
    return {
        "status": "confirmed" if confirmed_now else "pending_payment",
        "payment_status": "paid" if free or payment_method == "pass" else "unpaid",
        "payment_deadline": deadline,
        "confirmed_at": now if confirmed_now else None,
    }


# The hot path, hand-written SQL (peewee's query building cost more than the database's work):
# the common booking -- the session published, open to this player, not started, slots to spare,
# no active booking of theirs -- is one conditional UPDATE (it takes the session's row lock, as
# lock_session would) and the INSERTs of the booking and its notifications. On PostgreSQL that is
# one statement (data-modifying CTEs), so the row lock is held for that statement only, never
# across a round trip; on SQLite three statements in one transaction. When the UPDATE matches
# nothing, or an INSERT breaks the one-active-booking index or a code's uniqueness, nothing is kept
# and the exact path below decides and explains. The UPDATE's conditions are a subset of
# _check_can_book's, never looser.
# Columns named, never `*`: a prepared statement's result must not change when a migration adds one.
SESSION_COLUMNS = ", ".join(field.column_name for field in ClubSession._meta.sorted_fields)
TAKE_SLOTS_SQL = f"""
UPDATE club_sessions SET available_slots = available_slots - ?, updated_at = ?
WHERE id = ? AND status = 'published' AND starts_at > ? AND available_slots >= ?
  AND (booking_opens_at IS NULL OR booking_opens_at <= ?
       OR (early_access_opens_at <= ? AND EXISTS (
             SELECT 1 FROM passes p WHERE p.user_id = ? AND p.status = 'paid' AND p.starts_at <= ?
               AND p.ends_at > ? AND p.early_access)))
  AND (? OR allow_pay_at_door OR price = 0)
  AND NOT EXISTS (SELECT 1 FROM waitlist_entries w
                  WHERE w.club_session_id = club_sessions.id AND w.status = 'waiting')
RETURNING {SESSION_COLUMNS}
"""  # noqa: S608 - built from constants
BOOKING_COLUMNS = """code, user_id, club_session_id, guest_count, slots, unit_price, amount, payment_method,
  created_at, updated_at, status, payment_status, payment_deadline, confirmed_at, ticket_secret"""
INSERT_BOOKING_SQL = f"""
INSERT INTO bookings ({BOOKING_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING *
"""  # noqa: S608 - built from constants
# The same on PostgreSQL in one statement. The price is known only inside it, so the booking's
# status fields and its notifications come in two versions, free and paid, computed in Python
# (_new_booking_state, notifications.for_new_booking); the statement keeps the one that applies.
BOOK_IN_ONE_STATEMENT_SQL = f"""
WITH s AS ({TAKE_SLOTS_SQL}),
b AS (
  INSERT INTO bookings ({BOOKING_COLUMNS})
  SELECT ?, ?, s.id, ?, ?, s.price, ? * s.price, ?, ?, ?,
    CASE WHEN s.price = 0 THEN ? ELSE ? END, CASE WHEN s.price = 0 THEN ? ELSE ? END,
    CASE WHEN s.price = 0 THEN ?::timestamp ELSE ?::timestamp END,
    CASE WHEN s.price = 0 THEN ?::timestamp ELSE ?::timestamp END, ?::text
  FROM s RETURNING id, user_id, unit_price
),
n AS (
  INSERT INTO notifications (user_id, booking_id, kind, dedupe_key, subject, body, send_after,
    created_at, attempts)
  SELECT b.user_id, b.id, v.kind, v.kind || ':' || b.id, '', '', v.send_after, ?, 0
  FROM b JOIN (VALUES {{rows}}) AS v (kind, send_after, free) ON v.free = (b.unit_price = 0)
)
SELECT b.id AS new_booking_id, s.* FROM b, s
"""  # noqa: S608 - built from constants


def take_slots_params(session_id, slots, user_id, payment_method, now):
    """TAKE_SLOTS_SQL's parameters, in order. Early access is asked inside the statement (the
    same test as User.is_member, Pass.grants_early_access) and only before the public opening:
    no round trip of its own."""
    return (slots, now, session_id, now, slots, now, now, user_id, now, now, payment_method != "cash")


def _book_fast(actor, session_id, guests, slots, payment_method, settings, now):
    """The booking, or None when the exact path must decide (nothing has changed then)."""
    take = take_slots_params(session_id, slots, actor.id, payment_method, now)
    fields = {
        "code": new_code(),
        "user": actor.id,
        "club_session": session_id,
        "guest_count": guests,
        "slots": slots,
        "payment_method": payment_method,
        "created_at": now,
        "updated_at": now,
        "ticket_secret": new_ticket_secret(),  # door: the ticket's secret, from birth
    }
    try:
        if is_postgres():
            booking = _book_in_one_statement(take, fields, settings, now)
        else:
            booking = _book_in_three_statements(take, fields, settings, now)
    except IntegrityError:
        return None  # their active booking (a double click, a lapsed hold) or a code collision
    return booking


def _book_in_three_statements(take, fields, settings, now):
    with db.atomic():
        club_session = fetch_one(ClubSession, raw_sql(TAKE_SLOTS_SQL), take)
        if club_session is None:
            return None
        price = club_session.price
        state = _new_booking_state(price == 0, fields["payment_method"], settings, now)
        f = fields
        values = (f["code"], f["user"], f["club_session"], f["guest_count"], f["slots"], price)
        values += (f["slots"] * price, f["payment_method"], now, now)
        values += (state["status"], state["payment_status"], state["payment_deadline"], state["confirmed_at"])
        values += (f["ticket_secret"],)
        booking = fetch_one(Booking, raw_sql(INSERT_BOOKING_SQL), values)
        notifications.booking_created(booking, now)
    booking.club_session = club_session
    return booking


def book_in_one_statement_sql(take, fields, settings, now):
    """(name, text, params, free state, paid state) of the PostgreSQL booking statement (bench/rush.py
    hands the same statement to pgbench)."""
    free = _new_booking_state(True, fields["payment_method"], settings, now)
    paid = _new_booking_state(False, fields["payment_method"], settings, now)
    f = fields
    params = list(take)
    params += [f["code"], f["user"], f["guest_count"], f["slots"], f["slots"], f["payment_method"], now, now]
    for key in ("status", "payment_status", "payment_deadline", "confirmed_at"):
        params += [free[key], paid[key]]
    params += [f.get("ticket_secret"), now]
    rows = []
    for is_free, state in ((True, free), (False, paid)):
        new = notifications.for_new_booking(state["status"], state["payment_deadline"], now)
        for kind, send_after in new:
            rows.append("(?::text, ?::timestamp, ?::boolean)")
            params += [kind, send_after, is_free]
    # Two shapes (two or three candidate notifications), each prepared once per connection.
    text = BOOK_IN_ONE_STATEMENT_SQL.format(rows=", ".join(rows))
    return f"loafy_book_{len(rows)}", text, params, free, paid


def _book_in_one_statement(take, fields, settings, now):
    name, text, params, free, paid = book_in_one_statement_sql(take, fields, settings, now)
    statement = prepared_sql(name, text)
    # A statement of its own is its own transaction: no BEGIN/COMMIT round trips, and the session's
    # row lock is released the moment it ends. Inside a caller's transaction it takes a savepoint.
    if db.in_transaction():
        with db.atomic():
            club_session = fetch_one(ClubSession, statement, params)
    else:
        club_session = fetch_one(ClubSession, statement, params)
    if club_session is None:
        return None
    state = free if club_session.price == 0 else paid
    booking = Booking(
        id=club_session.new_booking_id,
        unit_price=club_session.price,
        amount=fields["slots"] * club_session.price,
        **fields,
        **state,
    )
    booking.club_session = club_session
    notifications.new_booking_written()
    return booking


def _check_can_book(club_session, actor, holds_live_booking, payment_method, now):
    """Every refusal that does not depend on the slot count, in the order a player should hear them."""
    _check_open(club_session, actor, now)
    if holds_live_booking:
        raise AlreadyBooked()
    if payment_method != "pass":  # passes: a pack pays any priced session (credits checked under lock)
        check_payment_method(club_session, payment_method, now)


# The session, whether the player holds a live booking for it (active, and not a lapsed hold),
# whether any hold on it has lapsed (a slot the locked path could release) and when the next one
# lapses: one read, no lock.
SESSION_FOR_REFUSAL_SQL = f"""
SELECT {", ".join("s." + column for column in SESSION_COLUMNS.split(", "))},
  EXISTS (SELECT 1 FROM bookings b WHERE b.user_id = ? AND b.club_session_id = s.id
          AND {LIVE_SQL.format(b="b")}) AS holds_live_booking,
  EXISTS (SELECT 1 FROM bookings b WHERE b.club_session_id = s.id
          AND {OVERDUE_SQL.format(b="b")}) AS has_lapsed_hold,
  (SELECT min(b.payment_deadline) FROM bookings b WHERE b.club_session_id = s.id
          AND b.status = 'pending_payment') AS next_deadline
FROM club_sessions s WHERE s.id = ?
"""  # noqa: S608 - built from constants


def _refuse_if_clearly_full(actor, session_id, slots, payment_method, now):
    """Without any lock: refuse when the session cannot have the slots (too few left and no lapsed
    hold to release). After a sell-out the crowd is answered by one read each and never queues for
    the session's write lock; anything uncertain is left to the locked transaction."""
    params = (actor.id, now, now, session_id)
    statement = prepared_sql("loafy_session_for_refusal", SESSION_FOR_REFUSAL_SQL)
    club_session = fetch_one(ClubSession, statement, params)
    if club_session is None or club_session.available_slots >= slots:
        return
    _check_can_book(club_session, actor, bool(club_session.holds_live_booking), payment_method, now)
    if not club_session.has_lapsed_hold:
        if club_session.available_slots == 0:
            sold_out.remember(session_id, Booking.payment_deadline.python_value(club_session.next_deadline))
        raise _full(club_session.available_slots)


def _available(session_id):
    return ClubSession.select(ClubSession.available_slots).where(ClubSession.id == session_id).scalar()


def _full(left):
    if left:
        return SessionFull(f"Only {left} spot{'s' if left != 1 else ''} left: bring fewer guests.")
    return SessionFull()


def _book_once(actor, session_id, guests, slots, payment_method, settings, now):
    club_session = lock_session(session_id)
    existing = _active_booking(actor.id, session_id)
    holds_live_booking = existing is not None and existing.is_live(now)
    _check_can_book(club_session, actor, holds_live_booking, payment_method, now)
    released = []
    if existing is not None:  # their own unpaid booking lapsed: release it, they may book again
        released = _release_overdue([session_id], now)
    waitlist.leave_for_direct_booking(actor, session_id, now)  # booking instead of waiting
    # Invariant 2: a pending booking past its deadline never blocks this one, even if the expiry
    # job is late. Only when the slots are short do we release this session's overdue bookings
    # (indexed, under the lock we hold) and try again: the common path stays one UPDATE.
    if not _take_slots(session_id, slots, now):
        released = _release_overdue([session_id], now)
        if not (released and _take_slots(session_id, slots, now)):
            raise _full(_available(session_id))

    amount = slots * club_session.price
    # passes: a pack pays one credit per slot (raises no_credits; the slots taken above roll back)
    club_pass = credits.take_pack(actor.id, slots, now) if payment_method == "pass" and amount else None
    booking = Booking.create(
        club_pass=club_pass.id if club_pass else None,
        code=new_code(),
        user=actor.id,
        club_session=session_id,
        guest_count=guests,
        slots=slots,
        unit_price=club_session.price,
        amount=amount,
        payment_method=payment_method,
        created_at=now,
        updated_at=now,
        **_new_booking_state(amount == 0, payment_method, settings, now),
    )
    notifications.booking_created(booking, now)
    # Hand back the session read under the lock (callers show it), its count as it now stands.
    club_session.available_slots = (
        _available(session_id) if released else club_session.available_slots - slots
    )
    booking.club_session = club_session
    return booking


def _take_slots(session_id, slots, now):
    """The conditional decrement: it succeeds only while enough slots remain (never below zero)."""
    return (
        ClubSession.update(available_slots=ClubSession.available_slots - slots, updated_at=now)
        .where((ClubSession.id == session_id) & (ClubSession.available_slots >= slots))
        .execute()
    )


def _active_booking(user_id, session_id):
    """The player's active booking for the session (id, status and deadline only), or None."""
    return (
        Booking.select(Booking.id, Booking.status, Booking.payment_deadline)
        .where(
            (Booking.user == user_id)
            & (Booking.club_session == session_id)
            & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
        )
        .first()
    )


def _release_overdue(session_ids, now):
    """Expire these sessions' pending bookings past their deadline and return their slots.

    The caller holds the sessions' locks; returns the released bookings' codes.
    """
    overdue = list(
        Booking.select(
            Booking.id,
            Booking.code,
            Booking.slots,
            Booking.user,
            Booking.club_session,
            Booking.stripe_payment_intent_id,
        ).where(Booking.club_session.in_(session_ids) & Booking.overdue(now))
    )
    if not overdue:
        return []
    ids = [b.id for b in overdue]
    expired = 0
    for start in range(0, len(ids), 5000):  # stay well under SQLite's bound-parameter limit
        chunk = ids[start : start + 5000]
        expired += (
            Booking.update(status="expired", expired_at=now, updated_at=now)
            .where(Booking.id.in_(chunk) & (Booking.status == "pending_payment"))
            .execute()
        )
    if expired != len(ids):  # cannot happen under the sessions' locks; never return slots blindly
        raise Conflict("The session changed while we were updating it. Please try again.")
    returned = {}
    for booking in overdue:
        returned[booking.club_session_id] = returned.get(booking.club_session_id, 0) + booking.slots
    # One UPDATE per distinct number of returned slots, not one per session (the sweep's main cost).
    sessions_by_slots = {}
    for session_id, slots in returned.items():
        sessions_by_slots.setdefault(slots, []).append(session_id)
    for slots, session_ids_returning in sessions_by_slots.items():
        ClubSession.update(available_slots=ClubSession.available_slots + slots, updated_at=now).where(
            ClubSession.id.in_(session_ids_returning)
        ).execute()
    sold_out.forget(returned)
    notifications.bookings_expired([(b.id, b.user_id) for b in overdue], now)
    waitlist.after_release(overdue, now)  # lapsed offers close; the freed slots go to the waitlist
    for booking in overdue:
        if booking.stripe_payment_intent_id:  # its open PaymentIntent must be cancelled at Stripe
            queue.enqueue(SETTLE_JOB, booking.id)
    return [b.code for b in overdue]


def expire_unpaid(now, sessions_per_transaction=200):
    """Release every pending booking past its deadline; returns the codes released, sorted.

    Sessions are handled in batches, each one short transaction holding those sessions' locks, so
    it is safe to run twice at once and against a payment arriving at the same moment: the overdue
    rows are re-read under the locks and changed only if still pending.
    """
    session_ids = sorted(
        row.club_session_id
        for row in Booking.select(Booking.club_session).where(Booking.overdue(now)).distinct()
    )
    codes = []
    for start in range(0, len(session_ids), sessions_per_transaction):
        batch = session_ids[start : start + sessions_per_transaction]
        with db.atomic():
            lock_sessions(batch)
            codes.extend(_release_overdue(batch, now))
    if codes:
        log.info("released %d unpaid booking(s): %s", len(codes), ", ".join(sorted(codes)[:20]))
    return sorted(codes)


def get_booking(booking_id, viewer):
    """A booking for its player, an admin, or the organizer of its session; 404 for anyone else
    (no hint that it exists: ids are sequential, and the page shows the door's QR code)."""
    number = parse_id(booking_id, "That booking does not exist.")
    booking = (
        Booking.select(Booking, ClubSession, User)
        .join(ClubSession)
        .switch(Booking)
        .join(User)
        .where(Booking.id == number)
        .first()
    )
    owner = booking is not None and booking.user_id == getattr(viewer, "id", None)
    if booking is None or not (owner or can_handle_session(viewer, booking.club_session)):
        raise NotFound("That booking does not exist.")
    return booking


def get_own_booking(booking_id, viewer):
    """The viewer's own booking (paying for it is theirs alone); 404 for anyone else, staff too."""
    booking = get_booking(booking_id, viewer)
    if booking.user_id != getattr(viewer, "id", None):
        raise NotFound("That booking does not exist.")
    return booking


def cancel_until(booking, settings):
    """The last moment the player may cancel their booking themselves (admins may at any time)."""
    return booking.club_session.starts_at - timedelta(hours=settings["cancellation_cutoff_hours"])


def cancel_refusal(actor, booking, now, settings):
    """Why `actor` may not cancel `booking` now, as the refusal cancel_booking raises; None if they may.

    The owner may until the cutoff, an admin at any time; a booking no longer active (one past its
    payment deadline included: it has expired for everyone) cannot be cancelled by anyone.
    """
    is_admin = bool(actor is not None and getattr(actor, "is_authenticated", True) and actor.is_admin)
    if not is_admin and booking.user_id != getattr(actor, "id", None):
        return PermissionDenied("Only the player who booked or an admin can cancel this booking.")
    if not booking.is_live(now):
        return BookingNotActive("This booking is already cancelled or expired.")
    if not is_admin and booking.checked_in_people:  # door: already in the hall
        return CancellationClosed("You are checked in for this session: it can no longer be cancelled.")
    if not is_admin and now > cancel_until(booking, settings):
        hours = settings["cancellation_cutoff_hours"]
        return CancellationClosed(
            f"Bookings can be cancelled up to {hours} hours before the session "
            f"(until {format_local(cancel_until(booking, settings))}). Please contact the club."
        )
    return None


def cancel_booking(actor, booking, now, reason=""):
    """Cancel an active booking: the owner before the cutoff, an admin at any time (cancel_refusal).
    Slots return at once.

    A paid booking is marked refund-due; the payments service refunds it (never silently dropped).
    The audit row names the actor, in the same transaction, whichever face asked (page, API, admin).
    """
    booking = get_booking(booking, actor)
    settings = get_settings()
    refusal = cancel_refusal(actor, booking, now, settings)
    if refusal is not None:
        raise refusal
    with db.atomic():
        club_session = booking.club_session
        booking = lock_booking(booking)  # a payment recorded since the read above must be refunded
        booking.club_session = club_session
        refusal = cancel_refusal(actor, booking, now, settings)  # cancelled or expired meanwhile
        if refusal is not None:
            raise refusal
        return _cancel_locked(actor, booking, now, reason, settings)


def _cancel_locked(actor, booking, now, reason, settings):
    """Cancel the booking (re-read under its session's lock by the caller), return its slots, audit it."""
    paid = booking.payment_status == "paid" and booking.amount > 0 and booking.payment_method != "pass"
    refund = paid and (actor.is_admin or settings["refund_on_cancel"])  # a pack's credits simply return
    changed = (
        Booking.update(
            status="cancelled",
            cancelled_at=now,
            updated_at=now,
            refund_due_at=now if refund else None,
        )
        .where((Booking.id == booking.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
        .execute()
    )
    if not changed:
        raise BookingNotActive("This booking is already cancelled or expired.")
    attendance.booking_cancelled(booking, now, settings)  # calendar: a late cancel is a strike
    ClubSession.update(available_slots=ClubSession.available_slots + booking.slots, updated_at=now).where(
        ClubSession.id == booking.club_session_id
    ).execute()
    sold_out.forget([booking.club_session_id])
    notifications.booking_cancelled(booking, now, refund=refund)
    details = {"code": booking.code, "reason": reason, "refund_due": refund}
    audit.record(actor, "booking.cancel", "booking", booking.id, details, now)
    queue.enqueue(SETTLE_JOB, booking.id)  # refund it or cancel its open PaymentIntent
    waitlist.after_cancel(booking, now)  # the freed slots go to the waitlist first
    log.info("cancelled %s by user %s%s", booking.code, actor.id, " (refund due)" if refund else "")
    return Booking.get_by_id(booking.id)


def cancel_session_bookings(actor, session_id, now, reason):
    """A cancelled session's bookings (the caller holds its lock): lapsed holds expire, every other
    active booking is cancelled as an admin would (paid ones refund-due). Returns how many."""
    lapsed = _release_overdue([session_id], now)
    active = Booking.select().where(
        (Booking.club_session == session_id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
    )
    settings = get_settings()
    cancelled = [_cancel_locked(actor, booking, now, reason, settings) for booking in active]
    return len(lapsed) + len(cancelled)


def record_payment(booking_id, *, provider, provider_id, amount, now, actor=None, note=""):
    """A payment arrived for a booking: confirm it, re-confirm it late, or mark its money refund-due.

    Idempotent by (provider, provider_id): the same payment twice changes nothing the second time.
    Returns one of "confirmed", "reconfirmed", "refund_due", "duplicate".
    """
    booking = Booking.get_or_none(Booking.id == booking_id)
    if booking is None:
        raise NotFound("That booking does not exist.")
    with db.atomic():
        club_session = lock_session(booking.club_session_id)
        booking = Booking.get_by_id(booking_id)
        try:
            with db.atomic():
                LedgerEntry.create(
                    booking=booking.id,
                    kind="payment",
                    provider=provider,
                    provider_id=provider_id,
                    amount=amount,
                    status="succeeded",
                    note=note,
                    recorded_by=actor.id if actor else None,
                    created_at=now,
                )
        except IntegrityError:
            return "duplicate"

        if booking.status == "pending_payment":
            _confirm(booking, now)
            outcome = "confirmed"
        elif booking.status == "confirmed":
            if booking.payment_status == "paid":  # a second, different payment for the same spot
                _mark_refund_due(booking, now)
                outcome = "refund_due"
            else:  # cash at the door, paid now
                Booking.update(payment_status="paid", updated_at=now).where(
                    Booking.id == booking.id
                ).execute()
                outcome = "confirmed"
        else:
            # Invariant 4: paid after it expired (or was cancelled). Give the spot back if it is
            # still there and the player has no other booking; otherwise the money goes back.
            outcome = _late_payment(booking, club_session, now)
    if outcome == "confirmed" or outcome == "reconfirmed":
        notifications.booking_confirmed(Booking.get_by_id(booking_id), now)
    log.info("payment %s/%s for %s: %s", provider, provider_id, booking.code, outcome)
    return outcome


def _confirm(booking, now):
    Booking.update(
        status="confirmed", payment_status="paid", confirmed_at=now, updated_at=now, payment_deadline=None
    ).where(Booking.id == booking.id).execute()
    if booking.source == "waitlist":
        waitlist.offer_paid(booking, now)


def _mark_refund_due(booking, now):
    Booking.update(payment_status="paid", refund_due_at=now, updated_at=now).where(
        Booking.id == booking.id
    ).execute()
    queue.enqueue(SETTLE_JOB, booking.id)


def _late_payment(booking, club_session, now):
    reopenable = (
        booking.status == "expired"
        and club_session.status == "published"
        and club_session.starts_at > now
        and _active_booking(booking.user_id, booking.club_session_id) is None
    )
    if reopenable:
        taken = (
            ClubSession.update(available_slots=ClubSession.available_slots - booking.slots, updated_at=now)
            .where((ClubSession.id == club_session.id) & (ClubSession.available_slots >= booking.slots))
            .execute()
        )
        if taken:
            _confirm(booking, now)
            return "reconfirmed"
    _mark_refund_due(booking, now)
    return "refund_due"


def held_slots(session_id):
    """Slots held by active bookings (what invariant 1 subtracts from max_slots)."""
    return (
        Booking.select(fn.COALESCE(fn.SUM(Booking.slots), 0))
        .where((Booking.club_session == session_id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
        .scalar()
    )
