"""The waitlist of a full session: joining, leaving, position, and offering freed slots to parties.

An offer *is* a booking (pending_payment, source "waitlist") of min(party_size, free) slots when that
is at least the entry's min_party, with the offer window as its payment deadline: payment, expiry,
late payment, refunds and invariant 1 are the booking service's, unchanged. Entries are served in
(created_at, id) order; one that does not fit keeps its place while later ones that fit are offered.

Offers are made inside the transaction that frees the slots, under the session's row lock (the lock
order of loafy.booking.bookings), so no two offers can share a slot and no one else can take a slot
a fitting entry waits for: a direct booking on a session with a waitlist goes the locked path, which
serves the waitlist first. The every-minute sweep (offer_everywhere) is the backstop.
"""

import logging
from datetime import timedelta

from peewee import IntegrityError, fn

from loafy import audit, notifications, queue
from loafy.booking import bookings, sold_out
from loafy.booking.club_sessions import can_handle_session, sees_drafts
from loafy.calendar import attendance
from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_session
from loafy.models import (
    ACTIVE_BOOKING_STATUSES,
    ACTIVE_WAITLIST_STATUSES,
    PAYMENT_METHODS,
    Booking,
    ClubSession,
    Notification,
    User,
    WaitlistEntry,
)
from loafy.money import methods
from loafy.paging import Page
from loafy.settings import get_settings

log = logging.getLogger(__name__)

JOINED_KIND = "waitlist_joined"  # the one waitlist e-mail with no booking (the others are the offer's)


class NotFull(Conflict):
    code = "not_full"
    message = "This session still has room for you: book it instead of joining the waitlist."


class AlreadyListed(Conflict):
    code = "duplicate"
    message = "You already have a booking or a waitlist place for this session."


class WaitlistClosed(Conflict):
    code = "closed"
    message = "This session's waitlist is closed."


class EntryNotActive(Conflict):
    code = "not_active"
    message = "This waitlist place is no longer active."


class InvalidParty(ValidationError):
    code = "invalid_party"


# --- reading -------------------------------------------------------------------------------------


def _entry_id(value):
    return parse_id(value, "That waitlist place does not exist.")


def get_entry(entry_id, viewer):
    """An entry for its player, an admin, or the organizer of its session; 404 for anyone else."""
    entry = (
        WaitlistEntry.select(WaitlistEntry, ClubSession, User)
        .join(ClubSession)
        .switch(WaitlistEntry)
        .join(User)
        .where(WaitlistEntry.id == _entry_id(entry_id))
        .first()
    )
    owner = entry is not None and entry.user_id == getattr(viewer, "id", None)
    if entry is None or not (owner or can_handle_session(viewer, entry.club_session)):
        raise NotFound("That waitlist place does not exist.")
    return entry


def _ahead(entry):
    """Waiting entries before this one in (created_at, id) order."""
    return (WaitlistEntry.created_at < entry.created_at) | (
        (WaitlistEntry.created_at == entry.created_at) & (WaitlistEntry.id < entry.id)
    )


def position(entry):
    """1 + the waiting entries ahead of it (the head is 1); None unless it is waiting."""
    if entry.status != "waiting":
        return None
    ahead = (
        WaitlistEntry.select()
        .where(
            (WaitlistEntry.club_session == entry.club_session_id)
            & (WaitlistEntry.status == "waiting")
            & _ahead(entry)
        )
        .count()
    )
    return 1 + ahead


def attach_positions(entries):
    """Set `position` on each entry: one query per session among them, not one per entry."""
    by_session = {}
    for entry in entries:
        entry.position = None
        if entry.status == "waiting":
            by_session.setdefault(entry.club_session_id, []).append(entry)
    for session_id, mine in by_session.items():
        order = [
            (row.created_at, row.id)
            for row in WaitlistEntry.select(WaitlistEntry.id, WaitlistEntry.created_at)
            .where((WaitlistEntry.club_session == session_id) & (WaitlistEntry.status == "waiting"))
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        ]
        rank = {entry_id: number for number, (_created, entry_id) in enumerate(order, start=1)}
        for entry in mine:
            entry.position = rank.get(entry.id)
    return entries


def waiting_count(session_id):
    """How many entries wait for the session (shown on its page)."""
    return (
        WaitlistEntry.select()
        .where((WaitlistEntry.club_session == session_id) & (WaitlistEntry.status == "waiting"))
        .count()
    )


def has_waiting(session_id):
    return (
        WaitlistEntry.select(WaitlistEntry.id)
        .where((WaitlistEntry.club_session == session_id) & (WaitlistEntry.status == "waiting"))
        .exists()
    )


def entry_for(user, session_id):
    """The player's live entry (waiting or offered) for the session, with its position, or None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    entry = (
        WaitlistEntry.select()
        .where(
            (WaitlistEntry.user == user.id)
            & (WaitlistEntry.club_session == session_id)
            & WaitlistEntry.status.in_(ACTIVE_WAITLIST_STATUSES)
        )
        .first()
    )
    if entry is not None:
        entry.position = position(entry)
    return entry


def _entries_query(viewer, session_id):
    """The viewer's own entries (newest first), or a session's whole waitlist in (created, id)
    order for the staff who handle that session."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        raise PermissionDenied("Please sign in.")
    query = (
        WaitlistEntry.select(WaitlistEntry, ClubSession, User)
        .join(ClubSession)
        .switch(WaitlistEntry)
        .join(User)
    )
    if session_id is None:
        return query.where(WaitlistEntry.user == viewer.id).order_by(
            WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc()
        )
    club_session = ClubSession.get_or_none(
        ClubSession.id == parse_id(session_id, "That session does not exist.")
    )
    if club_session is None or (club_session.status == "draft" and not sees_drafts(viewer)):
        raise NotFound("That session does not exist.")
    if not can_handle_session(viewer, club_session):
        raise PermissionDenied("Only the session's organizer or an admin can see its waitlist.")
    return query.where(WaitlistEntry.club_session == club_session.id).order_by(
        WaitlistEntry.created_at, WaitlistEntry.id
    )


def with_offers(entries):
    """Each entry with its offer booking as `offer` (or None) and its `position`: two queries
    plus one per session among them."""
    ids = [entry.booking_id for entry in entries if entry.booking_id]
    offers = {booking.id: booking for booking in Booking.select().where(Booking.id.in_(ids))} if ids else {}
    for entry in entries:
        entry.offer = offers.get(entry.booking_id)
    return attach_positions(entries)


def list_entries(viewer, session_id=None, live_only=False):
    """Every entry of `_entries_query` (live ones only if asked), with offers and positions."""
    query = _entries_query(viewer, session_id)
    if live_only:
        query = query.where(WaitlistEntry.status.in_(ACTIVE_WAITLIST_STATUSES))
    return with_offers(list(query))


def list_entries_page(viewer, session_id, page, per_page):
    """One `Page` of `_entries_query`, with offers and positions."""
    query = _entries_query(viewer, session_id)
    total = query.count()
    return Page(with_offers(list(query.paginate(page, per_page))), total, page, per_page)


# --- joining and leaving -------------------------------------------------------------------------


def _whole(value, name):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParty(f"{name} must be a whole number.", field=name)
    return value


def parse_party(party_size, min_party, max_guests):
    """(party_size, min_party): 1 <= min_party <= party_size <= 1 + max_guests; min_party defaults
    to party_size (the whole party or nothing)."""
    largest = 1 + max_guests
    if party_size is None:
        raise InvalidParty("party_size is required.", field="party_size")
    party = _whole(party_size, "party_size")
    if not 1 <= party <= largest:
        raise InvalidParty(
            f"A party is 1 to {largest} people (you and up to {max_guests} guests).", field="party_size"
        )
    smallest = party if min_party in (None, "") else _whole(min_party, "min_party")
    if not 1 <= smallest <= party:
        raise InvalidParty(f"The smallest party you accept must be from 1 to {party}.", field="min_party")
    return party, smallest


def _offer_method(requested, club_session, settings, now):
    """How an offer is paid: the method asked for if the session takes it, else the first it takes
    (a free session takes none and charges nothing: the club's first method is recorded)."""
    accepted = methods.booking_form_methods(club_session, now, settings)
    if requested not in (None, ""):
        if requested not in PAYMENT_METHODS:
            raise methods.PaymentMethodUnavailable(field="payment_method")
        if club_session.price > 0:
            methods.check_payment_method(club_session, requested, now, settings)
        return requested
    for method in ("stripe", "bank_transfer", "cash"):
        if method in accepted:
            return method
    if club_session.price <= 0:
        return settings["payment_methods"][0]
    raise methods.PaymentMethodUnavailable(field="payment_method")


def _check_joinable(club_session, actor, now):
    if club_session.status == "draft" and not actor.is_staff:
        raise NotFound("That session does not exist.")
    if club_session.status == "cancelled":
        raise WaitlistClosed("This session was cancelled.")
    if club_session.status != "published":
        raise WaitlistClosed()
    if club_session.starts_at <= now:
        raise WaitlistClosed("This session has already started.")


def join_waitlist(actor, club_session, party_size, now, min_party=None, payment_method=None):
    """Put `actor`'s party on a full session's waitlist; returns the entry (with its position).

    Refused with not_full while the session has room for min_party (book instead), duplicate while
    the player holds a live booking or entry for it, closed for cancelled, started or unpublished
    sessions. Checked and written under the session's lock.
    """
    if actor is None or not getattr(actor, "is_authenticated", True):
        raise PermissionDenied("Please sign in to join the waitlist.")
    session_id = parse_id(club_session, "That session does not exist.")
    settings = get_settings()
    party, smallest = parse_party(party_size, min_party, settings["max_guests"])
    attendance.check_can_book(actor, now, settings)  # calendar: a blocked player gets no offer either
    serve_waitlist_first(session_id, now)  # in its own transaction: offers stand if this is refused
    try:
        with db.atomic():
            current = lock_session(session_id)
            _check_joinable(current, actor, now)
            method = _offer_method(payment_method, current, settings, now)
            # Lapsed holds first (invariant 2): they may make room, which goes to those ahead.
            bookings._release_overdue([session_id], now)
            offer_slots(session_id, now)
            if _holds_live_booking(actor.id, session_id, now) or entry_for(actor, session_id) is not None:
                raise AlreadyListed()
            free = bookings._available(session_id)
            if free >= smallest:
                raise NotFull(
                    "This session still has room for your party: book it instead."
                    if free >= party
                    else f"Only {free} spot{'s' if free != 1 else ''} left: book them instead of waiting."
                )
            entry = WaitlistEntry.create(
                user=actor.id,
                club_session=session_id,
                party_size=party,
                min_party=smallest,
                payment_method=method,
                created_at=now,
                updated_at=now,
            )
            _joined_mail(entry, now)
    except IntegrityError:  # the one-live-entry index: a double click racing itself
        raise AlreadyListed()
    entry.position = position(entry)
    log.info(
        "user %s joined the waitlist of session %s (party %s, min %s)", actor.id, session_id, party, smallest
    )
    return entry


def _holds_live_booking(user_id, session_id, now):
    existing = bookings._active_booking(user_id, session_id)
    return existing is not None and existing.is_live(now)


def _joined_mail(entry, now):
    Notification.create(
        user=entry.user_id,
        booking=None,
        kind=JOINED_KIND,
        dedupe_key=f"{JOINED_KIND}:{entry.id}",
        send_after=now,
        created_at=now,
    )
    notifications.new_booking_written()  # the coalesced flush sends it shortly after commit


def leave_waitlist(actor, entry_id, now):
    """The player leaves (or staff remove them, audited). A waiting entry is simply closed; an
    offered one declines its offer: the pending offer is cancelled and its slots go to the next."""
    entry = get_entry(entry_id, actor)
    is_owner = entry.user_id == actor.id
    with db.atomic():
        lock_session(entry.club_session_id)
        entry = WaitlistEntry.get_by_id(entry.id)
        if entry.status == "left":
            return entry  # a second click, a stale page: nothing changes
        if entry.status not in ACTIVE_WAITLIST_STATUSES:
            if entry.status == "booked":
                raise EntryNotActive("This place became a booking: cancel the booking instead.")
            raise EntryNotActive()
        if entry.status == "offered":
            _decline_offer(actor, entry, now)
        WaitlistEntry.update(status="left", closed_at=now, updated_at=now).where(
            (WaitlistEntry.id == entry.id) & WaitlistEntry.status.in_(ACTIVE_WAITLIST_STATUSES)
        ).execute()
        if not is_owner:
            audit.record(
                actor,
                "waitlist.remove",
                "waitlist_entry",
                entry.id,
                {"session": entry.club_session_id, "user": entry.user_id, "was": entry.status},
                now,
            )
        offer_slots(entry.club_session_id, now)
    log.info("waitlist entry %s left (by user %s)", entry.id, actor.id)
    return WaitlistEntry.get_by_id(entry.id)


def _decline_offer(actor, entry, now):
    """The offer's booking, still unpaid, is cancelled and its slots return (under the lock); the
    cancel is audited like every other booking's."""
    booking = Booking.get_by_id(entry.booking_id)
    if booking.status == "confirmed":
        raise EntryNotActive("This offer is already paid: cancel the booking instead.")
    changed = (
        Booking.update(status="cancelled", cancelled_at=now, updated_at=now)
        .where((Booking.id == booking.id) & (Booking.status == "pending_payment"))
        .execute()
    )
    if changed:
        ClubSession.update(available_slots=ClubSession.available_slots + booking.slots, updated_at=now).where(
            ClubSession.id == booking.club_session_id
        ).execute()
        sold_out.forget([booking.club_session_id])
        details = {"code": booking.code, "reason": "waitlist offer declined", "refund_due": False}
        audit.record(actor, "booking.cancel", "booking", booking.id, details, now)
        if booking.stripe_payment_intent_id:  # its open PaymentIntent must be cancelled at Stripe
            queue.enqueue(bookings.SETTLE_JOB, booking.id)


# --- offering ------------------------------------------------------------------------------------


def offer_deadline(club_session, settings, now):
    """The offer window by how soon the session starts; never past its start."""
    ahead = club_session.starts_at - now
    if ahead > timedelta(hours=24):
        minutes = settings["waitlist_offer_minutes_far"]
    elif ahead >= timedelta(hours=2):
        minutes = settings["waitlist_offer_minutes_near"]
    else:
        minutes = settings["waitlist_offer_minutes_last"]
    return min(now + timedelta(minutes=minutes), club_session.starts_at)


def offer_slots(session_id, now):
    """Offer the session's free slots to its waiting entries, in order; returns the offers made.

    The caller holds the session's lock inside its transaction. Each offer takes its slots with the
    conditional decrement (never below zero), so nothing can offer more than is free.
    """
    club_session = ClubSession.get_by_id(session_id)
    free = club_session.available_slots
    if free <= 0 or club_session.status != "published" or club_session.starts_at <= now:
        return []  # offers close when the session starts
    settings = None
    offers = []
    after = None  # (created_at, id) of the last entry read: the walk reads a page at a time
    while free > 0:
        page = _waiting_page(session_id, free, after)
        for entry in page:
            after = (entry.created_at, entry.id)
            if entry.min_party > free:
                continue  # keeps its place; a later, smaller party may fit
            settings = settings or get_settings()
            booking = _make_offer(entry, club_session, min(entry.party_size, free), settings, now)
            if booking is None:
                continue
            free -= booking.slots
            offers.append(booking)
            if free == 0:
                break
        if len(page) < OFFER_PAGE:
            break
    if offers:
        log.info(
            "waitlist of session %s: offered %s",
            session_id,
            ", ".join(f"{b.code} ({b.slots})" for b in offers),
        )
    return offers


OFFER_PAGE = 50


def _waiting_page(session_id, free, after):
    """The next waiting entries that could fit `free` slots, in (created_at, id) order."""
    query = (
        WaitlistEntry.select(
            WaitlistEntry.id,
            WaitlistEntry.user,
            WaitlistEntry.party_size,
            WaitlistEntry.min_party,
            WaitlistEntry.payment_method,
            WaitlistEntry.created_at,
        )
        .where(
            (WaitlistEntry.club_session == session_id)
            & (WaitlistEntry.status == "waiting")
            & (WaitlistEntry.min_party <= free)
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(OFFER_PAGE)
    )
    if after is not None:
        created, entry_id = after
        query = query.where(
            (WaitlistEntry.created_at > created)
            | ((WaitlistEntry.created_at == created) & (WaitlistEntry.id > entry_id))
        )
    return list(query)


def _make_offer(entry, club_session, slots, settings, now):
    """One offer: the booking, its slots taken, the entry moved on. None if the player already holds
    a booking for the session (they booked directly: their entry closes)."""
    amount = slots * club_session.price
    state = bookings._new_booking_state(amount == 0, entry.payment_method, settings, now)
    if state["status"] == "pending_payment":
        state["payment_deadline"] = offer_deadline(club_session, settings, now)
    booking = None
    for _attempt in range(bookings.CODE_ATTEMPTS):
        try:
            with db.atomic():
                booking = Booking.create(
                    code=bookings.new_code(),
                    user=entry.user_id,
                    club_session=club_session.id,
                    guest_count=slots - 1,
                    slots=slots,
                    unit_price=club_session.price,
                    amount=amount,
                    payment_method=entry.payment_method,
                    created_at=now,
                    updated_at=now,
                    source="waitlist",
                    **state,
                )
            break
        except IntegrityError:
            if bookings._active_booking(entry.user_id, club_session.id) is not None:
                WaitlistEntry.update(status="left", closed_at=now, updated_at=now).where(
                    (WaitlistEntry.id == entry.id) & (WaitlistEntry.status == "waiting")
                ).execute()
                return None
    if booking is None:
        raise Conflict("We could not make the waitlist offer just now. Please try again.")
    if not bookings._take_slots(club_session.id, slots, now):  # cannot happen under the lock
        raise Conflict("The session changed while we were updating it. Please try again.")
    confirmed = state["status"] == "confirmed"  # free, or cash at the door: booked at once
    changed = (
        WaitlistEntry.update(
            status="booked" if confirmed else "offered",
            booking=booking.id,
            offered_at=now,
            closed_at=now if confirmed else None,
            updated_at=now,
        )
        .where((WaitlistEntry.id == entry.id) & (WaitlistEntry.status == "waiting"))
        .execute()
    )
    if not changed:
        raise Conflict("The waitlist changed while we were updating it. Please try again.")
    notifications.booking_created(booking, now)  # the offer mail (or "booked" when confirmed)
    return booking


def offer_freed_slots(session_id, now):
    """Slots of this session were freed (a cancel, more capacity): lock it and serve its waitlist.
    Call it inside the transaction that freed them."""
    if not has_waiting(session_id):
        return []
    if lock_session(session_id).status == "cancelled":  # its bookings are being cancelled with it
        WaitlistEntry.update(status="left", closed_at=now, updated_at=now).where(
            (WaitlistEntry.club_session == session_id) & (WaitlistEntry.status == "waiting")
        ).execute()
        return []
    return offer_slots(session_id, now)


def serve_waitlist_first(session_id, now):
    """Before a direct booking takes the locked path: in a transaction of its own (its offers stand
    even when the booking is then refused), lapsed holds are released and every fitting waiting
    entry is offered, so the booker gets only what the waitlist cannot use."""
    if not has_waiting(session_id):
        return []
    with db.atomic():
        lock_session(session_id)
        bookings._release_overdue([session_id], now)  # offers what it frees (after_release)
        return [booking.code for booking in offer_slots(session_id, now)]


def leave_for_direct_booking(actor, session_id, now):
    """The booker's own waiting entry closes, in the booking's transaction (kept if it is refused)."""
    WaitlistEntry.update(status="left", closed_at=now, updated_at=now).where(
        (WaitlistEntry.user == actor.id)
        & (WaitlistEntry.club_session == session_id)
        & (WaitlistEntry.status == "waiting")
    ).execute()


def after_release(released, now):
    """Pending bookings expired (the caller holds their sessions' locks): lapsed offers close, and
    the freed slots go to the next entries."""
    ids = [booking.id for booking in released]
    for start in range(0, len(ids), 5000):
        WaitlistEntry.update(status="lapsed", closed_at=now, updated_at=now).where(
            WaitlistEntry.booking.in_(ids[start : start + 5000]) & (WaitlistEntry.status == "offered")
        ).execute()
    session_ids = sorted({booking.club_session_id for booking in released})
    waiting = [
        row.club_session_id
        for row in WaitlistEntry.select(WaitlistEntry.club_session)
        .where(WaitlistEntry.club_session.in_(session_ids) & (WaitlistEntry.status == "waiting"))
        .distinct()
        .order_by(WaitlistEntry.club_session)
    ]
    for session_id in waiting:
        offer_slots(session_id, now)


def after_cancel(booking, now):
    """A booking was cancelled (the caller holds the session's lock): a declined offer's entry
    closes, and the slots go to the waitlist."""
    if booking.source == "waitlist":
        WaitlistEntry.update(status="left", closed_at=now, updated_at=now).where(
            (WaitlistEntry.booking == booking.id) & (WaitlistEntry.status == "offered")
        ).execute()
    return offer_freed_slots(booking.club_session_id, now)


def offer_paid(booking, now):
    """An offer was paid (or paid late and re-confirmed): its entry is booked."""
    WaitlistEntry.update(status="booked", closed_at=now, updated_at=now).where(
        (WaitlistEntry.booking == booking.id) & WaitlistEntry.status.in_(("offered", "lapsed"))
    ).execute()


def offer_everywhere(now):
    """The backstop sweep: every upcoming published session where a waiting entry fits the free
    slots gets its offers (after a lost job, a crash between commit and offer). Returns the codes."""
    session_ids = [row.id for row in _fitting_sessions(now)]
    codes = []
    for session_id in session_ids:
        with db.atomic():
            lock_session(session_id)
            codes += [booking.code for booking in offer_slots(session_id, now)]
    if codes:
        log.warning("waitlist sweep offered %d spot(s) a freeing event left: %s", len(codes), codes)
    return codes


def _fitting_sessions(now):
    return (
        ClubSession.select(ClubSession.id)
        .join(WaitlistEntry, on=(WaitlistEntry.club_session == ClubSession.id))
        .where(
            (ClubSession.status == "published")
            & (ClubSession.starts_at > now)
            & (WaitlistEntry.status == "waiting")
            & (WaitlistEntry.min_party <= ClubSession.available_slots)
        )
        .distinct()
        .order_by(ClubSession.id)
    )


def find_violations(now):
    """For `loafy check`: no waiting entry fits while slots are free (on an open session), every
    offered entry has a live offer, and no offer holds more than its party."""
    problems = [
        f"session {row.id}: a waiting entry fits its {row.available_slots} free slot(s)"
        for row in ClubSession.select(ClubSession.id, ClubSession.available_slots)
        .where(ClubSession.id.in_(_fitting_sessions(now)))
        .order_by(ClubSession.id)
    ]
    bad = (
        WaitlistEntry.select(
            WaitlistEntry.id,
            WaitlistEntry.status,
            Booking.status,
            Booking.slots,
            WaitlistEntry.party_size,
            WaitlistEntry.min_party,
        )
        .join(Booking, on=(WaitlistEntry.booking == Booking.id))
        .where(
            ((WaitlistEntry.status == "offered") & Booking.status.not_in(ACTIVE_BOOKING_STATUSES))
            | (Booking.slots > WaitlistEntry.party_size)
            | (Booking.slots < WaitlistEntry.min_party)
        )
    )
    for row in bad:
        problems.append(
            f"waitlist entry {row.id} ({row.status}): its offer is {row.booking.status} "
            f"with {row.booking.slots} slot(s) for a party of {row.min_party}..{row.party_size}"
        )
    return problems


# --- the joined e-mail ---------------------------------------------------------------------------


def render_joined(notification, settings, base_url):
    """(subject, body) of the "you are on the waitlist" e-mail, from the entry as it is now."""
    entry_id = int(notification.dedupe_key.rsplit(":", 1)[1])
    entry = (
        WaitlistEntry.select(WaitlistEntry, ClubSession, User)
        .join(ClubSession)
        .switch(WaitlistEntry)
        .join(User)
        .where(WaitlistEntry.id == entry_id)
        .get()
    )
    entry.position = position(entry)
    return entry.user, {
        "entry": entry,
        "club_session": entry.club_session,
        "user": entry.user,
        "bookings_url": f"{base_url}/bookings",
        "session_url": f"{base_url}/sessions/{entry.club_session_id}",
    }


def session_offers(club_session):
    """The offers made from a session's waitlist, newest first (for staff)."""
    return list(
        Booking.select(Booking, User)
        .join(User)
        .where((Booking.club_session == club_session.id) & (Booking.source == "waitlist"))
        .order_by(Booking.created_at.desc(), Booking.id.desc())
    )


def counts_by_status(session_id):
    rows = (
        WaitlistEntry.select(WaitlistEntry.status, fn.COUNT(WaitlistEntry.id))
        .where(WaitlistEntry.club_session == session_id)
        .group_by(WaitlistEntry.status)
        .tuples()
    )
    return dict(rows)
