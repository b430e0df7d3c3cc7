"""Each rule through the staff area: the services' rules hold, messages are clear, the DB proves it."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from admin import bookings as admin_bookings
from loafy import queue
from loafy.booking import bookings, staff
from loafy.clock import club_tz
from loafy.models import AuditLog, Booking, ClubSession, LedgerEntry, Setting, User
from loafy.settings import get_settings
from tests.helpers import english, login, reload


@pytest.fixture(autouse=True)
def _english_staff_area(client):
    """These tests read the staff area's English words (test_admin_vietnamese.py reads its Vietnamese)."""
    english(client)


def csrf(client):
    page = client.get("/auth/logout").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, path, data, token=True):
    data = dict(data)
    if token:
        data["csrf_token"] = csrf(client)
    return client.post(path, data=data, follow_redirects=True)


def text(response):
    return response.get_data(as_text=True)


def local(value):
    """A naive-UTC time as the form's club-time text."""
    return value.replace(tzinfo=UTC).astimezone(club_tz()).strftime("%Y-%m-%dT%H:%M")


def session_form(club_session, **changes):
    data = {
        "title": club_session.title,
        "description": club_session.description,
        "location": club_session.location,
        "starts_at": local(club_session.starts_at),
        "ends_at": local(club_session.ends_at),
        "max_slots": club_session.max_slots,
        "price": club_session.price,
        "status": club_session.status,
        "booking_opens_at": local(club_session.booking_opens_at) if club_session.booking_opens_at else "",
        "early_access_opens_at": "",
    }
    data.update(changes)
    return data


def audit_rows(action):
    return list(AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id))


@pytest.fixture
def admin_user(factory):
    return factory.user(role="admin", name="Quản trị viên")


@pytest.fixture
def admin_client(client, admin_user):
    return login(client, admin_user)


def book(factory, club_session, now, guests=0, method="bank_transfer", name=None):
    player = factory.user(name=name)
    return bookings.book_session(player, club_session, guests, method, now)


# Sessions ------------------------------------------------------------------------------------


def test_create_session_converts_club_time_to_utc_and_audits(admin_client, admin_user, now):
    response = post(
        admin_client,
        "/admin/sessions/new/",
        {
            "title": "Cầu lông tối thứ Sáu",
            "location": "Quận 1",
            "starts_at": "2026-12-04T19:00",
            "ends_at": "2026-12-04T21:00",
            "max_slots": "12",
            "price": "120000",
            "status": "draft",
            "booking_opens_at": "2026-11-30T08:00",
            "early_access_opens_at": "2026-11-29T08:00",
        },
    )
    assert response.status_code == 200
    created = ClubSession.get(ClubSession.title == "Cầu lông tối thứ Sáu")
    assert created.starts_at == datetime(2026, 12, 4, 12, 0)  # 19:00 in Ho Chi Minh City is 12:00 UTC
    assert created.early_access_opens_at == datetime(2026, 11, 29, 1, 0)
    assert (created.max_slots, created.available_slots, created.price) == (12, 12, 120000)
    assert created.created_by_id == admin_user.id
    [row] = audit_rows("session.create")
    assert row.actor_id == admin_user.id and row.object_id == str(created.id)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ends_at": "2026-12-04T18:00"}, "The session must end after it starts."),
        ({"max_slots": "0"}, "Max slots must be between 1 and 10000."),
        ({"price": "-1"}, "The price must be between 0 and 99999999 VND."),
        (
            {"early_access_opens_at": "2026-12-01T09:00"},
            "Early access for members must open before public booking.",
        ),
        ({"starts_at": "not a date"}, "Not a valid datetime value."),
        ({"starts_at": "0001-01-01T00:00"}, "starts_at must be between 2000 and 2099."),
        (
            {"early_access_opens_at": "2026-11-29T08:00", "booking_opens_at": ""},
            "Members&#39; early access needs a public booking time",
        ),
    ],
)
def test_create_session_validation_messages(admin_client, changes, message):
    data = {
        "title": "Bad one",
        "starts_at": "2026-12-04T19:00",
        "ends_at": "2026-12-04T21:00",
        "max_slots": "10",
        "price": "0",
        "status": "draft",
        "booking_opens_at": "2026-11-30T08:00",
    }
    data.update(changes)
    response = post(admin_client, "/admin/sessions/new/", data)
    assert response.status_code == 200
    assert message in text(response)
    assert not ClubSession.select().where(ClubSession.title == "Bad one").exists()


def test_capacity_shrink_below_booked_is_refused(admin_client, factory, now):
    club_session = factory.club_session(max_slots=10)
    book(factory, club_session, now, guests=2)
    book(factory, club_session, now)
    assert reload(club_session).available_slots == 6

    response = post(
        admin_client, f"/admin/sessions/edit/?id={club_session.id}", session_form(club_session, max_slots=3)
    )
    assert "4 spots are already booked: capacity cannot go below 4." in text(response)
    after = reload(club_session)
    assert (after.max_slots, after.available_slots) == (10, 6)
    assert not audit_rows("session.update")

    post(admin_client, f"/admin/sessions/edit/?id={club_session.id}", session_form(club_session, max_slots=4))
    assert (reload(club_session).max_slots, reload(club_session).available_slots) == (4, 0)
    post(
        admin_client, f"/admin/sessions/edit/?id={club_session.id}", session_form(club_session, max_slots=12)
    )
    assert (reload(club_session).max_slots, reload(club_session).available_slots) == (12, 8)
    [first, second] = audit_rows("session.update")
    assert json.loads(first.details)["max_slots"] == [10, 4]
    assert json.loads(second.details)["max_slots"] == [4, 12]


def test_capacity_rule_is_the_same_through_the_service(factory, now, admin_user):
    club_session = factory.club_session(max_slots=5)
    book(factory, club_session, now, guests=3)
    with pytest.raises(Exception) as refused:
        staff.update_session(admin_user, club_session.id, {"max_slots": 3}, now)
    assert refused.value.code == "capacity_below_booked"
    assert reload(club_session).max_slots == 5


def test_organizer_edits_own_draft_and_publishes_it_but_not_others(client, factory, now):
    organizer = factory.user(role="organizer")
    own = factory.club_session(status="draft", created_by=organizer)
    other = factory.club_session(status="draft", created_by=factory.user(role="organizer"))
    login(client, organizer)

    post(client, f"/admin/sessions/edit/?id={own.id}", session_form(own, title="Tối thứ Ba"))
    assert reload(own).title == "Tối thứ Ba"

    response = post(client, f"/admin/sessions/edit/?id={other.id}", session_form(other, title="Hijacked"))
    assert "You cannot edit this session" in text(response)
    assert reload(other).title == other.title

    response = post(client, "/admin/sessions/publish/", {"id": own.id})
    assert "The session is published." in text(response)
    assert reload(own).status == "published"
    # Published: no longer the organizer's to edit.
    response = post(client, f"/admin/sessions/edit/?id={own.id}", session_form(reload(own), title="Later"))
    assert "You cannot edit this session" in text(response)
    assert reload(own).title == "Tối thứ Ba"


def test_cancel_session_cancels_bookings_and_marks_paid_ones_refund_due(
    admin_client, admin_user, factory, now
):
    club_session = factory.club_session(max_slots=10)
    paid = book(factory, club_session, now, guests=1)
    staff.mark_paid(admin_user, paid.id, "bank_transfer", now)
    unpaid = book(factory, club_session, now)
    assert reload(club_session).available_slots == 7

    response = post(admin_client, "/admin/sessions/cancel/", {"id": club_session.id, "reason": "Mưa lớn"})
    assert "The session is cancelled" in text(response)
    after = reload(club_session)
    assert after.status == "cancelled" and after.available_slots == after.max_slots == 10
    assert reload(paid).status == "cancelled" and reload(paid).refund_due_at == now
    assert reload(unpaid).status == "cancelled" and reload(unpaid).refund_due_at is None
    [row] = audit_rows("session.cancel")
    assert json.loads(row.details) == {"reason": "Mưa lớn", "slots_released": 3}


def test_editing_the_title_keeps_stored_seconds_and_audits_only_the_title(admin_client, factory, now):
    """The form has minutes only: times it shows unchanged keep their seconds."""
    club_session = factory.club_session(
        starts_at=now + timedelta(days=2, seconds=15),
        booking_opens_at=now - timedelta(hours=1) + timedelta(seconds=37, microseconds=5),
    )
    post(admin_client, f"/admin/sessions/edit/?id={club_session.id}", session_form(club_session, title="Mới"))
    after = reload(club_session)
    assert after.title == "Mới"
    assert after.starts_at == club_session.starts_at
    assert after.booking_opens_at == club_session.booking_opens_at
    [row] = audit_rows("session.update")
    assert json.loads(row.details) == {"title": [club_session.title, "Mới"]}
    # A time the form does change is taken as sent.
    post(
        admin_client,
        f"/admin/sessions/edit/?id={club_session.id}",
        session_form(after, booking_opens_at="2026-11-24T11:00"),
    )
    assert reload(club_session).booking_opens_at == datetime(2026, 11, 24, 4, 0)


def test_saving_or_publishing_without_a_change_writes_no_audit_row(admin_client, factory):
    draft = factory.club_session(status="draft")
    post(admin_client, f"/admin/sessions/edit/?id={draft.id}", session_form(draft))
    assert not audit_rows("session.update")
    response = post(admin_client, "/admin/sessions/publish/", {"id": draft.id})
    assert "The session is published." in text(response)
    response = post(admin_client, "/admin/sessions/publish/", {"id": draft.id})  # a second click
    assert "The session is already published." in text(response)
    assert "The session is published." not in text(response)
    [row] = audit_rows("session.update")
    assert json.loads(row.details) == {"status": ["draft", "published"]}


def test_a_session_with_bookings_cannot_go_back_to_draft(admin_client, factory, now):
    club_session = factory.club_session()
    booking = book(factory, club_session, now)
    edit, form = f"/admin/sessions/edit/?id={club_session.id}", session_form(club_session, status="draft")
    response = post(admin_client, edit, form)
    assert "This session has bookings: it cannot go back to draft." in text(response)
    assert reload(club_session).status == "published" and not audit_rows("session.update")
    bookings.cancel_booking(booking.user, booking.id, now)
    post(admin_client, edit, form)
    assert reload(club_session).status == "draft"


def test_the_edit_form_sends_real_booleans_and_text(admin_client, factory):
    club_session = factory.club_session()
    form = session_form(club_session, title="  Cầu lông  ", allow_pay_at_door="y")
    post(admin_client, f"/admin/sessions/edit/?id={club_session.id}", form)
    after = reload(club_session)
    assert (after.title, after.allow_pay_at_door) == ("Cầu lông", True)
    post(admin_client, f"/admin/sessions/edit/?id={club_session.id}", session_form(after))  # box unticked
    assert reload(club_session).allow_pay_at_door is False


def test_organizer_cannot_cancel_a_session(client, factory, now):
    organizer = factory.user(role="organizer")
    club_session = factory.club_session(created_by=organizer)
    booking = book(factory, club_session, now)
    login(client, organizer)
    response = client.post(
        "/admin/sessions/cancel/", data={"id": club_session.id, "csrf_token": csrf(client)}
    )
    assert response.status_code == 403
    assert reload(club_session).status == "published" and reload(booking).status == "pending_payment"


def test_delete_only_sessions_without_bookings(admin_client, factory, now):
    empty = factory.club_session()
    booked = factory.club_session()
    book(factory, booked, now)
    post(admin_client, "/admin/sessions/delete/", {"id": empty.id})
    assert not ClubSession.select().where(ClubSession.id == empty.id).exists()
    response = post(admin_client, "/admin/sessions/delete/", {"id": booked.id})
    assert "This session has bookings: cancel it instead of deleting it." in text(response)
    assert ClubSession.select().where(ClubSession.id == booked.id).exists()
    assert [r.object_id for r in audit_rows("session.delete")] == [str(empty.id)]


def test_csrf_missing_changes_nothing(admin_client, factory, now):
    club_session = factory.club_session(max_slots=10)
    booking = book(factory, club_session, now)
    form = session_form(club_session, max_slots=20)
    assert (
        post(admin_client, f"/admin/sessions/edit/?id={club_session.id}", form, token=False).status_code
        == 400
    )
    response = post(
        admin_client, "/admin/bookings/mark-paid/", {"id": booking.id, "method": "cash"}, token=False
    )
    assert response.status_code == 400
    assert (
        post(admin_client, "/admin/sessions/cancel/", {"id": club_session.id}, token=False).status_code == 400
    )
    assert post(admin_client, "/admin/settings/", {"max_guests": "1"}, token=False).status_code == 400
    assert reload(club_session).max_slots == 10 and reload(club_session).status == "published"
    assert reload(booking).status == "pending_payment"
    assert LedgerEntry.select().count() == 0 and Setting.select().count() == 0
    assert AuditLog.select().count() == 0


# Bookings ------------------------------------------------------------------------------------


def test_mark_paid_records_the_ledger_and_confirms(admin_client, admin_user, factory, now):
    club_session = factory.club_session(price=150_000)
    booking = book(factory, club_session, now, guests=1)
    response = post(admin_client, "/admin/bookings/mark-paid/", {"id": booking.id, "method": "bank_transfer"})
    assert "Payment recorded; the booking is confirmed." in text(response)
    after = reload(booking)
    assert (after.status, after.payment_status) == ("confirmed", "paid")
    [entry] = LedgerEntry.select()
    assert (entry.kind, entry.provider, entry.provider_id, entry.amount) == (
        "payment",
        "bank_transfer",
        f"bank_transfer:{booking.code}",
        300_000,
    )
    assert entry.recorded_by_id == admin_user.id
    assert len(audit_rows("booking.mark_paid")) == 1

    response = post(admin_client, "/admin/bookings/mark-paid/", {"id": booking.id, "method": "cash"})
    assert "This booking is already paid." in text(response)
    assert LedgerEntry.select().count() == 1 and len(audit_rows("booking.mark_paid")) == 1

    detail = text(admin_client.get(f"/admin/bookings/details/?id={booking.id}"))
    assert f"bank_transfer:{booking.code}" in detail and "300.000 ₫" in detail


def test_two_staff_marking_one_booking_paid_at_once_record_one_payment(admin_user, factory, now, monkeypatch):
    """The second one read the booking before the first committed: the lock's re-read refuses it."""
    booking = book(factory, factory.club_session(allow_pay_at_door=True), now)
    stale = staff._booking_for(admin_user, booking.id)
    staff.mark_paid(admin_user, booking.id, "cash", now)
    monkeypatch.setattr(staff, "_booking_for", lambda actor, booking_id: stale)
    with pytest.raises(staff.Conflict, match="already paid"):
        staff.mark_paid(admin_user, booking.id, "bank_transfer", now)
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 1
    assert reload(booking).refund_due_at is None and len(audit_rows("booking.mark_paid")) == 1


def test_mark_paid_refuses_unknown_method(admin_client, factory, now):
    booking = book(factory, factory.club_session(), now)
    response = post(admin_client, "/admin/bookings/mark-paid/", {"id": booking.id, "method": "stripe"})
    assert "Choose cash or bank transfer." in text(response)
    assert LedgerEntry.select().count() == 0 and reload(booking).status == "pending_payment"


def test_check_in_is_for_confirmed_bookings_and_idempotent(client, factory, now):
    organizer = factory.user(role="organizer")
    # door: check-in opens 2 hours before the start (the setting checkin_opens_hours).
    club_session = factory.club_session(created_by=organizer, price=0, starts_at=now + timedelta(hours=1))
    confirmed = book(factory, club_session, now)
    early = book(factory, factory.club_session(created_by=organizer, price=0), now)
    pending = book(factory, factory.club_session(created_by=organizer), now)
    foreign = book(factory, factory.club_session(price=0), now)
    login(client, organizer)

    response = post(client, "/admin/bookings/check-in/", {"id": confirmed.id})
    assert f"{confirmed.code} is checked in." in text(response)
    assert reload(confirmed).checked_in_at == now
    post(client, "/admin/bookings/check-in/", {"id": confirmed.id})
    assert len(audit_rows("booking.check_in")) == 1

    response = post(client, "/admin/bookings/check-in/", {"id": early.id})  # two days early
    assert "Check-in opens at" in text(response)
    assert reload(early).checked_in_at is None

    response = post(client, "/admin/bookings/check-in/", {"id": pending.id})
    assert "Only confirmed bookings can be checked in." in text(response)
    assert reload(pending).checked_in_at is None

    response = post(client, "/admin/bookings/check-in/", {"id": foreign.id})
    assert "Organizers can only handle bookings of their own sessions." in text(response)
    assert reload(foreign).checked_in_at is None


def test_admin_cancels_a_paid_booking_and_it_becomes_refund_due(admin_client, admin_user, factory, now):
    club_session = factory.club_session(max_slots=5)
    booking = book(factory, club_session, now)
    staff.mark_paid(admin_user, booking.id, "cash", now)
    response = post(admin_client, "/admin/bookings/cancel/", {"id": booking.id, "reason": "Ốm"})
    assert f"{booking.code} is cancelled and marked for refund." in text(response)
    after = reload(booking)
    assert after.status == "cancelled" and after.refund_due_at == now
    assert reload(club_session).available_slots == 5
    assert json.loads(audit_rows("booking.cancel")[0].details)["refund_due"] is True


def test_cancelling_a_booking_with_two_guests_returns_exactly_its_slots(admin_client, factory, now):
    club_session = factory.club_session(max_slots=8)
    booking = book(factory, club_session, now, guests=2)
    book(factory, club_session, now, guests=1)
    assert reload(club_session).available_slots == 3
    post(admin_client, "/admin/bookings/cancel/", {"id": booking.id})
    assert reload(booking).status == "cancelled"
    assert reload(club_session).available_slots == 6  # invariant 1: max_slots − held (2 held)


def test_refund_goes_through_the_payments_service(admin_client, admin_user, factory, now, monkeypatch):
    """The service records the request and its audit row before it calls Stripe
    (tests/test_payments_refund_requests.py); the button only calls it."""
    from loafy.money import refunds

    calls = []
    monkeypatch.setattr(refunds, "refund_booking", lambda *a, **kw: calls.append((a, kw)) or "ok")
    booking = book(factory, factory.club_session(), now)
    response = post(admin_client, "/admin/bookings/refund/", {"id": booking.id})
    assert "The refund was sent." in text(response)
    assert calls == [((admin_user, booking.id, now), {"amount": None})]


def test_refund_of_a_cash_payment_is_refused_by_the_payments_service(admin_client, admin_user, factory, now):
    booking = book(factory, factory.club_session(), now)
    staff.mark_paid(admin_user, booking.id, "cash", now)
    response = post(admin_client, "/admin/bookings/refund/", {"id": booking.id})
    assert "There is no card payment left to refund on this booking." in text(response)
    assert reload(booking).payment_status == "paid"
    assert LedgerEntry.select().where(LedgerEntry.kind == "refund").count() == 0
    assert not audit_rows("booking.refund")


def test_money_given_back_in_cash_is_recorded_once_and_closes_the_refund(
    admin_client, admin_user, factory, now
):
    from loafy.models import Notification
    from loafy.money import settle

    booking = book(factory, factory.club_session(allow_pay_at_door=True, price=100_000), now, method="cash")
    staff.mark_paid(admin_user, booking.id, "bank_transfer", now)  # it came by transfer, say
    staff.cancel_booking(admin_user, booking.id, now)
    assert reload(booking).refund_due_at is not None
    assert settle.settle_due(now) == {booking.id: "manual_refund_needed"}  # no card to refund
    page = text(admin_client.get(f"/admin/bookings/details/?id={booking.id}"))
    assert "Record refund given in cash" in page and "Record refund sent by transfer" in page

    response = post(
        admin_client, "/admin/bookings/manual-refund/", {"id": booking.id, "method": "bank_transfer"}
    )
    assert "Recorded: 100.000 ₫ given back." in text(response)
    row = reload(booking)
    assert (row.payment_status, row.refund_due_at) == ("refunded", None)
    [refund] = LedgerEntry.select().where(LedgerEntry.kind == "refund")
    assert (refund.provider, refund.amount, refund.recorded_by_id) == (
        "bank_transfer",
        100_000,
        admin_user.id,
    )
    [audited] = audit_rows("booking.manual_refund")
    assert json.loads(audited.details) == {"code": booking.code, "method": "bank_transfer", "amount": 100_000}
    assert Notification.select().where(Notification.kind == "payment_refunded").count() == 1
    assert settle.settle_due(now) == {}  # nothing left to chase

    again = post(admin_client, "/admin/bookings/manual-refund/", {"id": booking.id, "method": "cash"})
    assert "Nothing is owed back on this booking." in text(again)
    assert LedgerEntry.select().where(LedgerEntry.kind == "refund").count() == 1


def test_only_admins_record_refunds_and_never_for_a_card_payment(client, admin_user, factory, now):
    from loafy.money import refunds

    booking = book(factory, factory.club_session(), now, method="stripe")
    bookings.record_payment(booking.id, provider="stripe", provider_id="pi_m", amount=booking.amount, now=now)
    staff.cancel_booking(admin_user, booking.id, now)
    organizer = factory.user(role="organizer")
    response = post(
        login(client, organizer), "/admin/bookings/manual-refund/", {"id": booking.id, "method": "cash"}
    )
    assert response.status_code == 403
    with pytest.raises(staff.Conflict, match="paid by card"):
        refunds.record_manual_refund(admin_user, booking.id, "cash", now)
    with pytest.raises(staff.ValidationError):
        refunds.record_manual_refund(admin_user, booking.id, "gold", now)
    assert LedgerEntry.select().where(LedgerEntry.kind == "refund").count() == 0


def test_bookings_list_filters_and_search(admin_client, factory, now):
    first, second = factory.club_session(title="Sáng Chủ nhật"), factory.club_session(title="Tối thứ Hai")
    a = book(factory, first, now, name="Nguyễn Văn An")
    b = book(factory, second, now, name="Trần Thị Bình")
    page = text(admin_client.get(f"/admin/bookings/?flt0_session_equals={first.id}"))
    assert a.code in page and b.code not in page
    page = text(admin_client.get("/admin/bookings/?search=Bình"))
    assert b.code in page and a.code not in page
    page = text(admin_client.get(f"/admin/bookings/?search={a.code}"))
    assert a.code in page and b.code not in page


def test_bookings_list_counts_exactly_up_to_the_cap(admin_client, factory, now, monkeypatch):
    monkeypatch.setattr(admin_bookings, "COUNT_CAP", 3)
    first, second = factory.club_session(), factory.club_session()
    for _ in range(3):
        book(factory, first, now)
    book(factory, second, now)
    page = text(admin_client.get("/admin/bookings/"))
    assert "(3+)" in page  # four bookings, more than the cap
    page = text(admin_client.get(f"/admin/bookings/?flt0_session_equals={second.id}"))
    assert "(1)" in page and "+)" not in page
    page = text(admin_client.get(f"/admin/bookings/?flt0_session_equals={first.id}"))
    assert "(3)" in page and "(3+)" not in page  # exactly the cap is still exact
    monkeypatch.setattr(admin_bookings, "COUNT_CAP", 2)
    page = text(admin_client.get(f"/admin/bookings/?flt0_session_equals={first.id}"))
    assert "(2+)" in page  # a filtered list is capped the same way


@pytest.mark.parametrize(
    "path",
    [
        "/admin/bookings/details/?id=abc",
        "/admin/bookings/details/?id=99999999999999999999",
        "/admin/sessions/edit/?id=-1",
        "/admin/bookings/?flt0_session_equals=abc",
        "/admin/bookings/?flt0_session_equals=99999999999999999999",
        "/admin/bookings/?flt4_session_date_on_club_date=2026-13-45",
        "/admin/sessions/?flt0_date_on_club_date=0001-01-01",
        "/admin/bookings/?flt0_booked_on_club_date=0001-01-01",
        "/admin/bookings/export.csv?flt0_booked_on_club_date=9999-12-31",
        "/admin/bookings/?page=-3&sort=99",
        "/admin/bookings/?sort=1",
        "/admin/bookings/?page=99999999999999999999999",
        "/admin/audit/?page=-1",
        "/admin/bookings/export.csv?sort=1&search=x",
        "/admin/sessions/?sort=3",
        "/admin/players/details/?id=0",
        "/admin/sessions/999999999/roster.csv",
    ],
)
def test_bad_input_never_500(admin_client, path):
    assert admin_client.get(path).status_code < 500


@pytest.mark.parametrize(
    "path, data",
    [
        ("/admin/bookings/mark-paid/", {"id": "x", "method": "cash"}),
        ("/admin/bookings/check-in/", {"id": "99999999999999"}),
        ("/admin/sessions/publish/", {}),
        ("/admin/players/role/", {"id": "1", "role": "emperor"}),
        ("/admin/passes/sell/", {"user_id": "abc", "product_id": "x", "method": "grant"}),
        ("/admin/passes/mark-paid/", {"id": "x", "method": "cash"}),
        ("/admin/passes/cancel/", {"id": "99999999999999"}),
    ],
)
def test_bad_action_input_never_500(admin_client, path, data):
    assert post(admin_client, path, data).status_code == 200


# CSV -----------------------------------------------------------------------------------------


def read_csv(response):
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_bookings_csv_keeps_vietnamese_and_neutralises_formulas(admin_client, factory, now):
    club_session = factory.club_session(title="Cầu lông Đà Nẵng")
    nice = book(factory, club_session, now, name="Nguyễn Thị Hương")
    evil = book(factory, club_session, now, name='=HYPERLINK("http://x","y")')
    other = book(factory, factory.club_session(), now, name="Lê Văn Tám")
    response = admin_client.get(f"/admin/bookings/export.csv?flt0_session_equals={club_session.id}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "charset=utf-8" in response.headers["Content-Type"]
    rows = read_csv(response)
    assert rows[0][0] == "code"
    by_code = {row[0]: row for row in rows[1:]}
    assert set(by_code) == {nice.code, evil.code}  # the list's filter applies, not only the page
    assert by_code[nice.code][1] == "Nguyễn Thị Hương" and by_code[nice.code][3] == "Cầu lông Đà Nẵng"
    assert by_code[evil.code][1] == '\'=HYPERLINK("http://x","y")'
    assert other.code not in by_code
    # Named by the club's clock: 03:00 UTC is 10:00 in Ho Chi Minh City.
    assert 'filename="bookings-20261124-1000.csv"' in response.headers["Content-Disposition"]


def test_roster_csv(admin_client, factory, now):
    club_session = factory.club_session(title="Bóng bàn")
    kept = book(factory, club_session, now, guests=1, name="@Phạm Minh")
    gone = book(factory, club_session, now, name="Đỗ Quang")
    bookings.cancel_booking(gone.user, gone.id, now)
    rows = read_csv(admin_client.get(f"/admin/sessions/{club_session.id}/roster.csv"))
    assert [r[0] for r in rows[1:]] == [kept.code]
    assert rows[1][1] == "'@Phạm Minh" and rows[1][4] == "2"


def test_roster_csv_is_named_by_the_club_date_of_the_session(admin_client, factory):
    late = factory.club_session(starts_at=datetime(2026, 12, 4, 18, 0))  # 01:00 on the 5th in club time
    response = admin_client.get(f"/admin/sessions/{late.id}/roster.csv")
    assert f'filename="roster-{late.id}-20261205.csv"' in response.headers["Content-Disposition"]


# Players, settings, jobs, audit, dashboard ---------------------------------------------------


def test_roles_and_the_last_admin_rule(admin_client, admin_user, factory):
    player = factory.user()
    response = post(admin_client, "/admin/players/role/", {"id": player.id, "role": "organizer"})
    assert "is now Organizer" in text(response)
    assert reload(player).role_id == "organizer"
    [row] = audit_rows("user.set_role")
    assert json.loads(row.details) == {"from": "player", "to": "organizer"}
    response = post(admin_client, "/admin/players/role/", {"id": admin_user.id, "role": "player"})
    assert "This is the last admin: make someone else admin first." in text(response)
    assert reload(admin_user).role_id == "admin"


def test_admins_grant_and_sell_passes_from_the_player_page(admin_client, factory, now):
    player = factory.user()
    period = factory.product("period", duration_days=30)
    pack = factory.product("pack", price=900_000, credits=10)
    post(admin_client, "/admin/passes/sell/", {"user_id": player.id, "product_id": period.id, "method": "grant"})
    post(admin_client, "/admin/passes/sell/", {"user_id": player.id, "product_id": pack.id, "method": "cash"})
    assert len(audit_rows("pass.grant")) == 1 and len(audit_rows("pass.sell")) == 1
    page = text(admin_client.get(f"/admin/players/details/?id={player.id}"))
    assert "Member until" in page and pack.name in page and "900.000" in page
    response = post(admin_client, "/admin/passes/sell/", {"user_id": player.id, "product_id": "99999", "method": "cash"})
    assert "That pass product does not exist." in text(response)
    home = text(admin_client.get("/admin/"))
    assert re.search(r'id="passes-sold">1<', home) and re.search(r'id="members-active">1<', home)


def test_player_detail_shows_identities_and_history(admin_client, factory, now):
    from loafy.models import Identity

    booking = book(factory, factory.club_session(title="Yoga sáng"), now)
    Identity.create(user=booking.user_id, provider="google", subject="g-123")
    page = text(admin_client.get(f"/admin/players/details/?id={booking.user_id}"))
    assert "g-123" in page and booking.code in page and "Yoga sáng" in page


def test_settings_validation_and_audit(admin_client):
    page = text(admin_client.get("/admin/settings/"))
    for key in get_settings():
        assert f'name="{key}"' in page

    response = post(admin_client, "/admin/settings/", {"max_guests": "9", "club_name": "CLB Cầu lông"})
    assert "Enter a whole number between 0 and 3." in text(response)
    assert Setting.select().count() == 0

    response = post(admin_client, "/admin/settings/", {"payment_methods__shown": "1"})
    assert "Enable at least one payment method." in text(response)
    assert Setting.select().count() == 0

    response = post(admin_client, "/admin/settings/", {"bank_bin": "VCB"})  # would silently drop the VietQR
    assert "Enter the bank&#39;s 6-digit BIN" in text(response)
    assert Setting.select().count() == 0

    response = post(
        admin_client,
        "/admin/settings/",
        {
            "max_guests": "2",
            "club_name": "CLB Cầu lông",
            "refund_on_cancel": "no",
            "payment_methods__shown": "1",
            "payment_methods": ["bank_transfer", "cash"],
        },
    )
    assert "Settings saved" in text(response)
    settings = get_settings()
    assert settings["max_guests"] == 2 and settings["club_name"] == "CLB Cầu lông"
    assert settings["refund_on_cancel"] is False and settings["payment_methods"] == ["bank_transfer", "cash"]
    [row] = audit_rows("settings.update")
    assert json.loads(row.details)["max_guests"] == [3, 2]


def test_jobs_page_says_when_redis_is_down(admin_client, monkeypatch):
    monkeypatch.setitem(queue._state, "url", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(queue._state, "connection", None)
    response = admin_client.get("/admin/jobs/")
    assert response.status_code == 200
    assert "Redis is not reachable" in text(response)
    assert "Redis is not reachable" in text(admin_client.get("/admin/"))


def test_jobs_page_counts_queues(admin_client, redis_conn, monkeypatch):
    from rq import Queue

    monkeypatch.setitem(queue._state, "connection", redis_conn)
    Queue("mail", connection=redis_conn).enqueue("jobs.tasks.flush_notifications")
    page = text(admin_client.get("/admin/jobs/"))
    assert re.search(r"<td>E-mails</td><td>1</td>", page), page


def test_audit_log_is_visible_to_admins(admin_client, admin_user, factory, now):
    player = factory.user()
    staff.set_role(admin_user, player.id, "organizer", now)
    page = text(admin_client.get("/admin/audit/"))
    # In words: what happened, to whom (linked), from which role to which.
    assert "Changed a role" in page and "user.set_role" not in page
    assert f'href="/admin/players/details/?id={player.id}"' in page
    assert "From: Player" in page and "To: Organizer" in page


def test_dashboard(admin_client, admin_user, factory, now):
    today = factory.club_session(title="Hôm nay", starts_at=now + timedelta(hours=3), max_slots=4)
    factory.club_session(title="Tuần sau", starts_at=now + timedelta(days=14))
    pending = book(factory, today, now)
    paid = book(factory, today, now)
    staff.mark_paid(admin_user, paid.id, "cash", now)
    page = text(admin_client.get("/admin/"))
    assert "Hôm nay" in page and "Tuần sau" not in page
    assert "2/4" in page and "50%" in page
    assert pending.code in page
    assert re.search(r'id="revenue-week">100.000 ₫', page)
    assert re.search(r'id="revenue-month">100.000 ₫', page)


def test_organizer_sees_only_their_sessions_bookings(client, factory, now):
    organizer = factory.user(role="organizer")
    mine = book(factory, factory.club_session(created_by=organizer), now)
    theirs = book(factory, factory.club_session(), now)
    login(client, organizer)
    page = text(client.get("/admin/bookings/"))
    assert mine.code in page and theirs.code not in page
    response = client.get(f"/admin/bookings/details/?id={theirs.id}", follow_redirects=True)
    assert theirs.code not in text(response) or "does not exist" in text(response)
    assert User.get_by_id(organizer.id).role_id == "organizer"
    assert Booking.select().count() == 2


def test_edit_form_shows_club_time(admin_client, factory, now):
    club_session = factory.club_session(starts_at=datetime(2026, 12, 4, 12, 0))
    page = text(admin_client.get(f"/admin/sessions/edit/?id={club_session.id}"))
    assert 'value="2026-12-04T19:00"' in page
    assert admin_client.get("/admin/sessions/new/").status_code == 200
    assert admin_client.get(f"/admin/sessions/details/?id={club_session.id}").status_code == 200


def test_detail_pages_offer_only_the_actions_that_apply(admin_client, factory, now):
    """Each action is a POST form with the CSRF token; what does not apply is not offered."""
    booking = book(factory, factory.club_session(), now, method="bank_transfer")
    page = text(admin_client.get(f"/admin/bookings/details/?id={booking.id}"))
    forms = re.findall(r'<form method="post" action="([^"]+)"', page)
    assert {"/admin/bookings/mark-paid/", "/admin/bookings/cancel/"} <= set(forms)
    assert "/admin/bookings/check-in/" not in forms and "/admin/bookings/refund/" not in forms
    assert page.count('name="csrf_token"') >= len(forms)
    assert "Mark paid (cash)" in page and "Mark paid (bank transfer)" in page
    assert f'onsubmit="return confirm(&#34;Cancel {booking.code}?&#34;);"' in page

    draft = factory.club_session(status="draft")
    page = text(admin_client.get(f"/admin/sessions/details/?id={draft.id}"))
    assert {"/admin/sessions/publish/", "/admin/sessions/cancel/"} <= set(
        re.findall(r'<form method="post" action="([^"]+)"', page)
    )
    assert 'placeholder="Reason (sent to players)"' in page
