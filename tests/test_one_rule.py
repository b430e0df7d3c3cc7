"""Every rule once, in Core (issue 17 §2): whichever face asks -- page, API, staff area, job -- the
same Core function decides, and what a page offers is what the service accepts."""

import json
import re
from datetime import timedelta

import pytest

from loafy.booking import bookings, staff
from loafy.models import AuditLog, Booking
from tests.helpers import english, login, reload


def text(response):
    return response.get_data(as_text=True)


def form_token(client, path):
    match = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path)))
    assert match, "no form with a CSRF token on " + path
    return match.group(1)


def cancels():
    return [
        (row.actor_id, row.object_id, json.loads(row.details))
        for row in AuditLog.select().where(AuditLog.action == "booking.cancel").order_by(AuditLog.id)
    ]


# --- 1. a cancel writes its audit row in the service, whoever asks --------------------------------


def test_a_player_cancelling_on_the_page_is_audited(client, factory, now):
    player = factory.user()
    booking = bookings.book_session(player, factory.club_session(), 1, "stripe", now)
    login(client, player)
    path = f"/bookings/{booking.id}"
    response = client.post(f"{path}/cancel", data={"csrf_token": form_token(client, path)})
    assert response.status_code == 302 and reload(booking).status == "cancelled"
    [(actor, object_id, details)] = cancels()
    assert (actor, object_id) == (player.id, str(booking.id))
    assert details["code"] == booking.code and details["refund_due"] is False


@pytest.mark.parametrize("face", ["service", "staff_area", "session_cancel"])
def test_every_way_of_cancelling_writes_one_audit_row_naming_the_actor(face, factory, now):
    admin = factory.user(role="admin")
    club_session = factory.club_session()
    booking = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    if face == "service":
        bookings.cancel_booking(admin, booking.id, now, reason="asked by phone")
    elif face == "staff_area":
        staff.cancel_booking(admin, booking.id, now, reason="asked by phone")
    else:
        staff.cancel_session(admin, club_session.id, now, reason="asked by phone")
    assert reload(booking).status == "cancelled"
    [(actor, object_id, details)] = cancels()
    assert (actor, object_id, details["reason"]) == (admin.id, str(booking.id), "asked by phone")


def test_a_refused_cancel_writes_no_audit_row(factory, now):
    player = factory.user()
    booking = bookings.book_session(player, factory.club_session(), 0, "stripe", now)
    bookings.cancel_booking(player, booking.id, now)
    with pytest.raises(bookings.BookingNotActive):
        bookings.cancel_booking(player, booking.id, now + timedelta(minutes=1))
    assert len(cancels()) == 1
    assert Booking.get_by_id(booking.id).status == "cancelled"


# --- 2. the buttons a staff member sees are what the services accept ------------------------------


def _paid_cash_then_cancelled_with_an_open_intent(factory, now, admin, player, club_session):
    """The issue's case: the player opened the card page (an intent exists), paid cash at the desk
    instead, and an admin cancelled: the cash is owed back, by hand."""
    booking = bookings.book_session(player, club_session, 0, "stripe", now)
    staff.mark_paid(admin, booking.id, "cash", now)
    staff.cancel_booking(admin, booking.id, now)
    # The intent is set after the cancel's settle job ran: no Stripe answers in these tests.
    Booking.update(stripe_payment_intent_id=f"pi_open_{booking.id}").where(Booking.id == booking.id).execute()
    return booking


def _cancelled_by_the_player_without_refund(factory, now, admin, player, club_session):
    """Paid in cash, then cancelled by the player while the club keeps the money (refund_on_cancel
    off): nothing is due automatically, but an admin may still give it back."""
    from loafy import settings as club_settings

    club_settings.update_settings({"refund_on_cancel": False}, now)
    booking = bookings.book_session(player, club_session, 0, "bank_transfer", now)
    staff.mark_paid(admin, booking.id, "bank_transfer", now)
    bookings.cancel_booking(player, booking.id, now)
    return booking


STATES = {
    "pending card": lambda f, now, admin, player, s: bookings.book_session(player, s, 0, "stripe", now),
    "paid in cash": lambda f, now, admin, player, s: (
        b := bookings.book_session(player, s, 1, "bank_transfer", now),
        staff.mark_paid(admin, b.id, "cash", now),
    )[0],
    "checked in": lambda f, now, admin, player, s: (
        b := bookings.book_session(player, s, 0, "bank_transfer", now),
        staff.mark_paid(admin, b.id, "cash", now),
        staff.check_in(admin, b.id, s.starts_at),  # the door opens shortly before the session
    )[0],
    "paid cash, cancelled, intent open": _paid_cash_then_cancelled_with_an_open_intent,
    "cancelled by the player, money kept": _cancelled_by_the_player_without_refund,
    "unpaid past its deadline": lambda f, now, admin, player, s: bookings.book_session(
        player, s, 0, "bank_transfer", now - timedelta(hours=1)
    ),
}


def _attempt(action, actor, booking, now):
    """Whether the service accepted: it raised no refusal and changed what the action changes."""
    from loafy.errors import LoafyError
    from loafy.money import refunds

    before = reload(booking)
    try:
        if action == "mark_paid":
            staff.mark_paid(actor, booking.id, "cash", now)
        elif action == "check_in":
            staff.check_in(actor, booking.id, now)
        elif action == "cancel":
            staff.cancel_booking(actor, booking.id, now)
        elif action == "refund":
            refunds.refund_booking(actor, booking.id, now)
        elif action == "manual_refund":
            staff.record_manual_refund(actor, booking.id, "cash", now)
    except LoafyError:
        return False
    after = reload(booking)
    return (before.status, before.payment_status, before.checked_in_at, before.refund_due_at) != (
        after.status,
        after.payment_status,
        after.checked_in_at,
        after.refund_due_at,
    ) or action == "manual_refund"


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("role", ["admin", "organizer"])
@pytest.mark.parametrize("action", ["mark_paid", "check_in", "cancel", "refund", "manual_refund"])
def test_a_button_shows_exactly_when_the_service_accepts(state, role, action, factory, now):
    from loafy.booking.actions import allowed_actions

    admin = factory.user(role="admin")
    organizer = factory.user(role="organizer")
    club_session = factory.club_session(created_by=organizer)
    booking = STATES[state](factory, now, admin, factory.user(), club_session)
    actor = admin if role == "admin" else organizer
    shown = getattr(allowed_actions(actor, Booking.get_by_id(booking.id), now), action)
    assert shown == _attempt(action, actor, booking, now)


def test_the_staff_area_offers_the_manual_refund_the_service_accepts(client, factory, now):
    admin = factory.user(role="admin")
    booking = _paid_cash_then_cancelled_with_an_open_intent(
        factory, now, admin, factory.user(), factory.club_session()
    )
    login(english(client), admin)
    page = text(client.get(f"/admin/bookings/details/?id={booking.id}"))
    assert "Record refund given in cash" in page
    assert ">Refund<" not in page  # nothing was paid by card: Stripe has nothing to give back
    path = f"/admin/bookings/details/?id={booking.id}"
    response = client.post(
        "/admin/bookings/manual-refund/",
        data={"id": booking.id, "method": "cash", "csrf_token": form_token(client, path)},
        follow_redirects=True,
    )
    assert "given back" in text(response)
    assert "Record refund given in cash" not in text(client.get(path))  # nothing is owed any more


def test_an_organizer_cancels_their_own_booking_in_the_staff_area_as_on_the_page(client, factory, now):
    organizer = factory.user(role="organizer")
    club_session = factory.club_session(created_by=organizer)
    own = bookings.book_session(organizer, club_session, 0, "bank_transfer", now)
    players = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    login(english(client), organizer)
    assert "Cancel booking" in text(client.get(f"/admin/bookings/details/?id={own.id}"))
    assert "Cancel booking" not in text(client.get(f"/admin/bookings/details/?id={players.id}"))
    path = f"/admin/bookings/details/?id={own.id}"
    response = client.post(
        "/admin/bookings/cancel/", data={"id": own.id, "csrf_token": form_token(client, path)}
    )
    assert response.status_code == 302 and reload(own).status == "cancelled"


# --- 3. one deadline rule, one id parser, one Page, one "own booking" lookup ----------------------


def test_the_deadline_rule_reads_the_same_in_python_peewee_and_the_hot_paths_sql(factory, now):
    from loafy.db import db
    from loafy.models import LIVE_SQL, OVERDUE_SQL

    club_session = factory.club_session(max_slots=20)
    rows = []
    cases = [
        ("pending_payment", now - timedelta(minutes=1)),
        ("pending_payment", now),  # exactly at the deadline the spot is free again
        ("pending_payment", now + timedelta(minutes=1)),
        ("pending_payment", None),
        ("confirmed", None),
        ("cancelled", now - timedelta(minutes=1)),
        ("expired", now - timedelta(minutes=1)),
    ]
    for status, deadline in cases:
        rows.append(
            Booking.create(
                code=bookings.new_code(),
                user=factory.user(),
                club_session=club_session,
                slots=1,
                unit_price=100_000,
                amount=100_000,
                payment_method="bank_transfer",
                status=status,
                payment_deadline=deadline,
            )
        )
    ids = [b.id for b in rows]

    def peewee(condition):
        return {b.id for b in Booking.select(Booking.id).where(Booking.id.in_(ids) & condition)}

    def sql(text):
        query = f"SELECT b.id FROM bookings b WHERE {text}".replace("?", db.param)  # noqa: S608
        return {row[0] for row in db.execute_sql(query, (now,)).fetchall()} & set(ids)

    overdue = {b.id for b in rows if b.is_overdue(now)}
    live = {b.id for b in rows if b.is_live(now)}
    assert overdue == {ids[0], ids[1]} and live == {ids[2], ids[3], ids[4]}
    assert peewee(Booking.overdue(now)) == sql(OVERDUE_SQL.format(b="b")) == overdue
    assert peewee(Booking.live(now)) == sql(LIVE_SQL.format(b="b")) == live
    assert [b.shown_status(now) for b in rows][:4] == [
        "expired",
        "expired",
        "pending_payment",
        "pending_payment",
    ]


def test_a_hold_without_a_deadline_is_the_players_booking_on_the_page_as_in_the_service(client, factory, now):
    """The session page and the booking service used to disagree on a pending booking with no
    deadline: the page offered the form, the service answered "already booked"."""
    player = factory.user()
    club_session = factory.club_session()
    hold = Booking.create(
        code=bookings.new_code(),
        user=player,
        club_session=club_session,
        slots=1,
        unit_price=club_session.price,
        amount=club_session.price,
        payment_method="bank_transfer",
        status="pending_payment",
        payment_deadline=None,
    )
    with pytest.raises(bookings.AlreadyBooked):
        bookings.book_session(player, club_session, 0, "bank_transfer", now)
    login(client, player)
    page = text(client.get(f"/sessions/{club_session.id}", headers={"Accept-Language": "en"}))
    assert hold.code in page and f'action="/sessions/{club_session.id}/book"' not in page


@pytest.mark.parametrize(
    "raw, expected",
    [
        (7, 7),
        ("7", 7),
        (" 7 ", 7),
        (7.9, None),  # int() would truncate it to another row's id
        ("7.0", None),
        ("+7", None),
        ("1_000", None),
        ("٧", None),  # an Arabic-Indic seven: int() reads it as 7
        ("²", None),
        (True, None),
        (0, None),
        (-7, None),
        (2**31, None),
        ("9" * 30, None),
        (None, None),
        ([7], None),
    ],
)
def test_one_id_parser(raw, expected):
    from loafy.errors import NotFound, as_id, parse_id

    assert as_id(raw) == expected
    if expected is None:
        with pytest.raises(NotFound):
            parse_id(raw, "That booking does not exist.")


def test_every_face_reads_ids_with_the_one_parser(client, factory, now):
    admin = factory.user(role="admin")
    booking = bookings.book_session(factory.user(), factory.club_session(), 0, "bank_transfer", now)
    from loafy.errors import NotFound

    with pytest.raises(NotFound):  # a float once found the booking it truncated to
        bookings.get_booking(booking.id + 0.5, admin)
    with pytest.raises(NotFound):  # the staff operations used a parser of their own
        staff.check_in(admin, f"+{booking.id}", now)
    login(client, admin)
    arabic = "".join(chr(0x0660 + int(d)) for d in str(booking.id))
    page = client.get(f"/admin/bookings/details/?id={arabic}")
    assert booking.code not in text(page)


def test_one_page_type_for_every_list(factory, now):
    from loafy.booking import club_sessions, listings
    from loafy.paging import Page

    factory.club_session()
    api_page = club_sessions.list_sessions(None)
    html_page = listings.list_sessions_page(None, {}, 1, 12, now)
    assert type(api_page) is type(html_page) is Page
    assert (api_page.total, api_page.pages, api_page.has_next) == (1, 1, False)


def test_paying_is_the_owners_alone_through_one_lookup(client, factory, now):
    from loafy.errors import NotFound
    from loafy.money import card

    admin = factory.user(role="admin")
    player = factory.user()
    booking = bookings.book_session(player, factory.club_session(), 0, "stripe", now)
    assert bookings.get_own_booking(booking.id, player).id == booking.id
    with pytest.raises(NotFound):
        bookings.get_own_booking(booking.id, admin)  # staff may see it, but never pay it
    with pytest.raises(NotFound):
        card.create_intent(admin, booking.id, now)
    login(client, admin)
    assert client.get(f"/bookings/{booking.id}/pay").status_code == 404
    page = text(client.get(f"/bookings/{booking.id}"))
    assert f"/bookings/{booking.id}/pay" not in page  # the booking page no longer links admins to it


# --- §5: a free session, a cancelled session -------------------------------------------------------


@pytest.mark.parametrize("language, free", [("en", "Free"), ("vi", "Miễn phí")])
def test_a_free_session_says_free_and_asks_for_no_payment_method(client, factory, language, free):
    club_session = factory.club_session(title="Open play", price=0)
    login(client, factory.user())
    headers = {"Accept-Language": language}
    page = text(client.get(f"/sessions/{club_session.id}", headers=headers))
    assert free in page and "0 ₫" not in page
    assert 'name="payment_method"' not in page
    assert free in text(client.get("/", headers=headers))  # the list's card too


def test_booking_a_free_session_confirms_it_at_once_without_a_payment_method(client, factory, now):
    club_session = factory.club_session(price=0, max_slots=5)
    player = factory.user()
    login(client, player)
    path = f"/sessions/{club_session.id}"
    response = client.post(f"{path}/book", data={"guest_count": "1", "csrf_token": form_token(client, path)})
    assert response.status_code == 302
    booking = Booking.get(Booking.user == player.id)
    assert (booking.status, booking.payment_status, booking.amount) == ("confirmed", "paid", 0)
    assert booking.payment_deadline is None and response.headers["Location"].endswith(
        f"/bookings/{booking.id}"
    )
    page = text(client.get(f"/bookings/{booking.id}", headers={"Accept-Language": "en"}))
    assert "Free" in page and "0 ₫" not in page


def test_a_paid_session_still_needs_a_payment_method(factory, now):
    with pytest.raises(bookings.PaymentMethodUnavailable):
        bookings.book_session(factory.user(), factory.club_session(price=50_000), 0, "", now)
    assert (
        bookings.book_session(factory.user(), factory.club_session(price=0), 0, None, now).status
        == "confirmed"
    )


def test_a_cancelled_session_says_so_with_no_free_spots_and_no_form(client, factory, now):
    admin = factory.user(role="admin")
    club_session = factory.club_session(max_slots=12)
    staff.cancel_session(admin, club_session.id, now)
    login(client, factory.user())
    path = f"/sessions/{club_session.id}"
    page = text(client.get(path, headers={"Accept-Language": "en"}))
    assert "This session is cancelled" in page and "it will not take place" in page
    assert "12 of 12 free" not in page and "spots left" not in page
    assert 'name="guest_count"' not in page
    # A stale form sent anyway: the refusal is said, and still no form to send again.
    token = form_token(client, "/")
    response = client.post(
        f"{path}/book",
        data={"guest_count": "0", "payment_method": "bank_transfer", "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 409
    refused = text(response)
    assert "This session was cancelled." in refused and 'name="guest_count"' not in refused


def test_the_pay_page_says_an_overdue_booking_expired_before_the_sweep_runs(client, factory, now):
    player = factory.user()
    club_session = factory.club_session(booking_opens_at=now - timedelta(days=1))
    booking = bookings.book_session(player, club_session, 0, "bank_transfer", now - timedelta(hours=1))
    assert reload(booking).status == "pending_payment"  # the expiry job has not run
    login(english(client), player)
    page = text(client.get(f"/bookings/{booking.id}/pay"))
    assert "This booking expired before it was paid" in page and "Your spot is held until" not in page
    assert client.get(f"/bookings/{booking.id}/status.json").get_json()["status"] == "expired"


def test_declining_a_waitlist_offer_is_audited_like_any_cancel(factory, now):
    from loafy.booking import waitlist

    club_session = factory.club_session(max_slots=1)
    holder = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    waiting = factory.user()
    entry = waitlist.join_waitlist(waiting, club_session.id, 1, now)
    bookings.cancel_booking(holder.user, holder.id, now)  # the spot goes to the waitlist: an offer
    offer = Booking.get_by_id(reload(entry).booking_id)
    waitlist.leave_waitlist(waiting, entry.id, now)
    assert reload(offer).status == "cancelled"
    assert [(actor, object_id) for actor, object_id, _ in cancels()] == [
        (holder.user_id, str(holder.id)),
        (waiting.id, str(offer.id)),
    ]
