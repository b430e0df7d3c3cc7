"""The booking engine through its services: every rule and every refusal code."""

from datetime import timedelta

import pytest

from loafy.booking import bookings
from loafy.booking.bookings import book_session, cancel_booking, expire_unpaid, get_booking, record_payment
from loafy.checks import find_violations
from loafy.errors import NotFound, PermissionDenied
from loafy.models import Booking, ClubSession, Notification
from loafy.settings import update_settings
from tests.helpers import reload


def test_booking_takes_slots_and_sets_a_deadline(factory, now):
    club_session = factory.club_session(max_slots=10, price=120_000)
    player = factory.user()
    booking = book_session(player, club_session, 2, "stripe", now)
    assert booking.code.startswith("LB-") and len(booking.code) == 8
    assert set(booking.code[3:]) <= set(bookings.CODE_ALPHABET)
    assert (booking.slots, booking.amount) == (3, 360_000)
    assert booking.status == "pending_payment" and booking.payment_status == "unpaid"
    assert booking.payment_deadline == now + timedelta(minutes=30)
    assert reload(club_session).available_slots == 7
    assert find_violations() == []


def test_deadline_follows_the_setting(factory, now):
    update_settings({"payment_deadline_minutes": 45})
    booking = book_session(factory.user(), factory.club_session(), 0, "bank_transfer", now)
    assert booking.payment_deadline == now + timedelta(minutes=45)


@pytest.mark.parametrize(
    "bad", [-1, 4, 10**12, "2.5", "abc", "", None, True, 1.5, [1], {"n": 1}, "-0x1", " 9999999 ", "²", "١"]
)
def test_bad_guest_counts_are_refused_clearly(factory, now, bad):
    club_session = factory.club_session()
    with pytest.raises((bookings.InvalidGuestCount, bookings.TooManyGuests)) as error:
        book_session(factory.user(), club_session, bad, "stripe", now)
    assert error.value.status == 422
    assert error.value.field == "guest_count"
    assert error.value.code in ("invalid_guest_count", "too_many_guests")
    assert Booking.select().count() == 0
    assert reload(club_session).available_slots == club_session.max_slots


def test_guest_limit_follows_the_setting(factory, now):
    update_settings({"max_guests": 1})
    with pytest.raises(bookings.TooManyGuests, match="at most 1 guest"):
        book_session(factory.user(), factory.club_session(), 2, "stripe", now)
    assert book_session(factory.user(), factory.club_session(), "1", "stripe", now).slots == 2


def test_full_session(factory, now):
    club_session = factory.club_session(max_slots=4)
    book_session(factory.user(), club_session, 2, "stripe", now)
    with pytest.raises(bookings.SessionFull, match="Only 1 spot left") as error:
        book_session(factory.user(), club_session, 1, "stripe", now)
    assert error.value.code == "full" and error.value.status == 409
    book_session(factory.user(), club_session, 0, "stripe", now)
    with pytest.raises(bookings.SessionFull, match="full"):
        book_session(factory.user(), club_session, 0, "stripe", now)
    assert reload(club_session).available_slots == 0
    assert find_violations() == []


def test_one_active_booking_per_player(factory, now):
    club_session = factory.club_session()
    player = factory.user()
    first = book_session(player, club_session, 0, "stripe", now)
    with pytest.raises(bookings.AlreadyBooked) as error:
        book_session(player, club_session, 1, "stripe", now)
    assert error.value.code == "already_booked"
    cancel_booking(player, first, now)
    assert book_session(player, club_session, 1, "stripe", now).slots == 2


@pytest.mark.parametrize(
    "fields, error, code",
    [
        ({"status": "cancelled"}, bookings.BookingClosed, "closed"),
        ({"status": "completed"}, bookings.BookingClosed, "closed"),
        ({"starts_at_offset": -1}, bookings.SessionStarted, "started"),
        ({"booking_opens_offset": 2}, bookings.NotOpenYet, "not_open"),
    ],
)
def test_closed_sessions_refuse(factory, now, fields, error, code):
    values = {k: v for k, v in fields.items() if not k.endswith("offset")}
    if "starts_at_offset" in fields:
        values["starts_at"] = now + timedelta(hours=fields["starts_at_offset"])
    if "booking_opens_offset" in fields:
        values["booking_opens_at"] = now + timedelta(hours=fields["booking_opens_offset"])
    club_session = factory.club_session(**values)
    with pytest.raises(error) as raised:
        book_session(factory.user(), club_session, 0, "stripe", now)
    assert raised.value.code == code
    assert raised.value.status == 409
    assert Booking.select().count() == 0


def test_drafts_are_invisible_to_players_but_closed_for_staff(factory, now):
    draft = factory.club_session(status="draft")
    with pytest.raises(NotFound):
        book_session(factory.user(), draft, 0, "stripe", now)
    with pytest.raises(bookings.BookingClosed):
        book_session(factory.user(role="organizer"), draft, 0, "stripe", now)


@pytest.mark.parametrize("bad_id", [0, -5, 999_999, "abc", None, 2**70, True])
def test_unknown_session(factory, now, bad_id):
    with pytest.raises(NotFound):
        book_session(factory.user(), bad_id, 0, "stripe", now)


def test_members_get_early_access(factory, now):
    club_session = factory.club_session(
        early_access_opens_at=now - timedelta(hours=1), booking_opens_at=now + timedelta(hours=3)
    )
    member = factory.user(member=True)
    assert book_session(member, club_session, 0, "stripe", now).status == "pending_payment"
    with pytest.raises(bookings.NotOpenYet, match="Members are booking now") as error:
        book_session(factory.user(), club_session, 0, "stripe", now)
    assert error.value.code == "not_open"
    # An expired membership is not a membership.
    lapsed = factory.user(membership_until=now - timedelta(days=1))
    with pytest.raises(bookings.NotOpenYet):
        book_session(lapsed, club_session, 0, "stripe", now)
    # Once public booking opens, everyone can book.
    later = now + timedelta(hours=3)
    assert book_session(factory.user(), club_session, 0, "stripe", later).status == "pending_payment"


def test_no_public_opening_time_means_open_to_everyone_members_included(factory, now):
    """Rows from before the rule that early access needs a public time: nobody is locked out, and
    a member is never behind a non-member."""
    club_session = factory.club_session(booking_opens_at=None, early_access_opens_at=now + timedelta(hours=1))
    assert book_session(factory.user(), club_session, 0, "stripe", now).status == "pending_payment"
    assert book_session(factory.user(member=True), club_session, 0, "stripe", now).status == "pending_payment"


def test_not_open_message_names_the_local_time(factory, now):
    club_session = factory.club_session(booking_opens_at=now + timedelta(hours=2))
    with pytest.raises(bookings.NotOpenYet, match="Booking opens at 12:00 24/11/2026"):
        book_session(factory.user(), club_session, 0, "stripe", now)  # 05:00 UTC = 12:00 in Vietnam


@pytest.mark.parametrize("method", ["bitcoin", "", None, "STRIPE"])
def test_unknown_payment_method(factory, now, method):
    with pytest.raises(bookings.PaymentMethodUnavailable) as error:
        book_session(factory.user(), factory.club_session(), 0, method, now)
    assert error.value.status == 422


def test_disabled_payment_method(factory, now):
    update_settings({"payment_methods": ["stripe"]})
    with pytest.raises(bookings.PaymentMethodUnavailable):
        book_session(factory.user(), factory.club_session(), 0, "bank_transfer", now)


def test_cash_at_the_door_is_confirmed_without_a_deadline(factory, now):
    door = factory.club_session(allow_pay_at_door=True)
    booking = book_session(factory.user(), door, 1, "cash", now)
    assert booking.status == "confirmed" and booking.payment_status == "unpaid"
    assert booking.payment_deadline is None
    no_door = factory.club_session(allow_pay_at_door=False)
    with pytest.raises(bookings.PaymentMethodUnavailable, match="cash at the door"):
        book_session(factory.user(), no_door, 0, "cash", now)


def test_free_sessions_are_confirmed_at_once(factory, now):
    booking = book_session(factory.user(), factory.club_session(price=0), 3, "stripe", now)
    assert booking.status == "confirmed" and booking.amount == 0
    assert booking.payment_deadline is None


def test_anonymous_cannot_book(factory, now):
    with pytest.raises(PermissionDenied):
        book_session(None, factory.club_session(), 0, "stripe", now)


# --- invariant 2: an overdue pending booking never blocks a new one ---------------------------


def test_overdue_booking_does_not_block_even_before_the_job_runs(factory, now):
    club_session = factory.club_session(max_slots=2)
    late = book_session(factory.user(), club_session, 1, "stripe", now)
    assert reload(club_session).available_slots == 0
    at_deadline = late.payment_deadline
    # Exactly at the deadline the spot is free again: the booking transaction releases it.
    booking = book_session(factory.user(), club_session, 1, "stripe", at_deadline)
    assert booking.status == "pending_payment"
    assert reload(late).status == "expired"
    assert reload(club_session).available_slots == 0
    assert find_violations() == []


def test_one_second_before_the_deadline_the_spot_is_still_held(factory, now):
    club_session = factory.club_session(max_slots=1)
    held = book_session(factory.user(), club_session, 0, "stripe", now)
    with pytest.raises(bookings.SessionFull):
        book_session(factory.user(), club_session, 0, "stripe", held.payment_deadline - timedelta(seconds=1))
    assert reload(held).status == "pending_payment"


def test_the_player_can_rebook_after_their_own_booking_expired(factory, now):
    club_session = factory.club_session()
    player = factory.user()
    first = book_session(player, club_session, 0, "stripe", now)
    second = book_session(player, club_session, 2, "stripe", first.payment_deadline + timedelta(seconds=1))
    assert reload(first).status == "expired" and second.slots == 3


# --- expiry ---------------------------------------------------------------------------------


def test_expire_unpaid_releases_only_overdue_pending(factory, now):
    club_session = factory.club_session(max_slots=10)
    overdue = book_session(factory.user(), club_session, 1, "stripe", now - timedelta(minutes=35))
    fresh = book_session(factory.user(), club_session, 2, "stripe", now - timedelta(minutes=10))
    cash = book_session(factory.user(), factory.club_session(allow_pay_at_door=True), 0, "cash", now)
    assert reload(club_session).available_slots == 5
    assert expire_unpaid(now) == [overdue.code]
    assert reload(overdue).status == "expired" and reload(overdue).expired_at == now
    assert reload(fresh).status == "pending_payment"
    assert reload(cash).status == "confirmed"
    assert reload(club_session).available_slots == 7
    # A second run finds nothing and changes nothing.
    assert expire_unpaid(now) == []
    assert reload(club_session).available_slots == 7
    assert find_violations() == []


def test_expire_unpaid_command_prints_what_it_released(app, factory, now):
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    runner = app.test_cli_runner()
    before = runner.invoke(args=["jobs", "expire-unpaid", "--now", "2026-11-24T10:29:00+07:00"])
    assert before.exit_code == 0 and "0 booking(s) released" in before.output
    result = runner.invoke(args=["jobs", "expire-unpaid", "--now", "2026-11-24T03:31:00Z"])
    assert result.exit_code == 0, result.output
    assert f"released {booking.code}" in result.output
    assert "1 booking(s) released" in result.output
    bad = runner.invoke(args=["jobs", "expire-unpaid", "--now", "yesterday"])
    assert bad.exit_code == 2 and "ISO-8601" in bad.output


# --- cancellation ---------------------------------------------------------------------------


def test_owner_cancels_before_the_cutoff_and_slots_return_once(factory, now):
    club_session = factory.club_session(max_slots=5)
    player = factory.user()
    booking = book_session(player, club_session, 2, "stripe", now)
    cancelled = cancel_booking(player, booking, now)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at == now
    assert reload(club_session).available_slots == 5
    with pytest.raises(bookings.BookingNotActive):
        cancel_booking(player, booking, now)
    assert reload(club_session).available_slots == 5
    assert find_violations() == []


def test_owner_cannot_cancel_after_the_cutoff_but_an_admin_can(factory, now):
    club_session = factory.club_session(starts_at=now + timedelta(hours=10))
    player = factory.user()
    booking = book_session(player, club_session, 0, "stripe", now)
    with pytest.raises(bookings.CancellationClosed, match="24 hours before") as error:
        cancel_booking(player, booking, now)
    assert error.value.status == 409
    assert cancel_booking(factory.user(role="admin"), booking, now).status == "cancelled"


def test_other_players_cannot_see_or_cancel_a_booking(factory, now):
    organizer = factory.user(role="organizer")
    booking = book_session(factory.user(), factory.club_session(created_by=organizer), 0, "stripe", now)
    with pytest.raises(NotFound):
        cancel_booking(factory.user(), booking, now)
    with pytest.raises(PermissionDenied):  # the session's organizer sees it, but only admins cancel
        cancel_booking(organizer, booking, now)
    assert reload(booking).status == "pending_payment"


def test_organizers_see_the_bookings_of_their_own_sessions_only(factory, now):
    """Ids are sequential and the booking's page shows the door's QR code: any other viewer gets 404."""
    runs_it, other_organizer = factory.user(role="organizer"), factory.user(role="organizer")
    booking = book_session(factory.user(), factory.club_session(created_by=runs_it), 0, "stripe", now)
    assert get_booking(booking.id, runs_it).id == booking.id
    assert get_booking(booking.id, factory.user(role="admin")).id == booking.id
    for stranger in (other_organizer, factory.user(), None):
        with pytest.raises(NotFound):
            get_booking(booking.id, stranger)


def test_cancelling_a_paid_booking_marks_it_refund_due(factory, now):
    player = factory.user()
    booking = book_session(player, factory.club_session(), 0, "stripe", now)
    record_payment(booking.id, provider="stripe", provider_id="pi_1", amount=booking.amount, now=now)
    cancelled = cancel_booking(player, booking, now)
    assert cancelled.refund_due_at == now and cancelled.payment_status == "paid"
    update_settings({"refund_on_cancel": False})
    other = factory.user()
    kept = book_session(other, factory.club_session(), 0, "stripe", now)
    record_payment(kept.id, provider="stripe", provider_id="pi_2", amount=kept.amount, now=now)
    assert cancel_booking(other, kept, now).refund_due_at is None


def test_a_payment_landing_while_the_player_cancels_is_refunded(factory, now, monkeypatch):
    """The payment commits after cancel_booking's first read but before it takes the lock."""
    player = factory.user()
    booking = book_session(player, factory.club_session(), 0, "stripe", now)
    real_get_settings = bookings.get_settings

    def payment_arrives_meanwhile():
        record_payment(booking.id, provider="stripe", provider_id="pi_race", amount=booking.amount, now=now)
        return real_get_settings()

    monkeypatch.setattr(bookings, "get_settings", payment_arrives_meanwhile)
    cancelled = cancel_booking(player, booking, now)
    assert (cancelled.status, cancelled.payment_status, cancelled.refund_due_at) == ("cancelled", "paid", now)
    assert find_violations() == []


# --- payments racing expiry (service level; Stripe comes with the payments work) -------------


def test_payment_confirms_and_is_idempotent(factory, now):
    booking = book_session(factory.user(), factory.club_session(), 1, "stripe", now)
    assert record_payment(
        booking.id, provider="stripe", provider_id="pi_x", amount=booking.amount, now=now
    ) == ("confirmed")
    assert record_payment(
        booking.id, provider="stripe", provider_id="pi_x", amount=booking.amount, now=now
    ) == ("duplicate")
    booking = reload(booking)
    assert booking.status == "confirmed" and booking.payment_status == "paid"
    assert booking.ledger_entries.count() == 1


def test_late_payment_reconfirms_when_slots_remain(factory, now):
    club_session = factory.club_session(max_slots=3)
    booking = book_session(factory.user(), club_session, 1, "stripe", now)
    later = booking.payment_deadline + timedelta(minutes=5)
    expire_unpaid(later)
    assert reload(club_session).available_slots == 3
    outcome = record_payment(
        booking.id, provider="stripe", provider_id="pi_l", amount=booking.amount, now=later
    )
    assert outcome == "reconfirmed"
    assert reload(booking).status == "confirmed"
    assert reload(club_session).available_slots == 1
    assert find_violations() == []


def test_late_payment_without_slots_is_marked_for_refund(factory, now):
    club_session = factory.club_session(max_slots=1)
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    later = booking.payment_deadline + timedelta(minutes=1)
    book_session(factory.user(), club_session, 0, "stripe", later)  # takes the released spot
    outcome = record_payment(
        booking.id, provider="stripe", provider_id="pi_z", amount=booking.amount, now=later
    )
    assert outcome == "refund_due"
    booking = reload(booking)
    assert booking.status == "expired" and booking.payment_status == "paid" and booking.refund_due_at == later
    assert reload(club_session).available_slots == 0
    assert find_violations() == []


# --- notifications ----------------------------------------------------------------------------


def _mails(outbox):
    import email
    from email import policy

    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))
    ]


def test_booking_received_mail_is_in_the_outbox_in_both_languages(factory, now, outbox):
    player = factory.user(email="lan@example.com", name="Lan")
    booking = book_session(player, factory.club_session(price=150_000), 1, "bank_transfer", now)
    mails = _mails(outbox)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "lan@example.com"
    assert booking.code in mail["Subject"]
    body = mail.get_content()
    assert "Xin chào Lan" in body and "Hello Lan" in body
    assert "300.000 ₫" in body
    assert "10:30 24/11/2026" in body  # the deadline in Vietnam time (03:30 UTC)
    assert f"/bookings/{booking.id}/pay" in body
    assert "nội dung: " + booking.code in body  # bank-transfer reference
    # The reminder waits for 10 minutes before the deadline.
    reminder = Notification.get(Notification.kind == "payment_reminder")
    assert reminder.send_after == booking.payment_deadline - timedelta(minutes=10)
    assert reminder.sent_at is None


def test_mail_headers_carry_vietnamese_names_and_a_date(factory, now, outbox, monkeypatch):
    from loafy import mail

    monkeypatch.setitem(mail._config, "MAIL_FROM", "CLB Cầu lông <no-reply@club.vn>")
    player = factory.user(email="lan@example.com", name="Lan")
    book_session(player, factory.club_session(title="Cầu lông tối thứ Năm"), 0, "stripe", now)
    [message] = _mails(outbox)
    assert message["From"].addresses[0].display_name == "CLB Cầu lông"
    assert message["From"].addresses[0].addr_spec == "no-reply@club.vn"
    assert message["Date"].datetime is not None  # mail clients sort by it
    raw = sorted(outbox.glob("*.eml"))[0].read_bytes()
    assert raw.isascii()  # every header and the body are encoded: safe on any mail route


def test_reminder_is_sent_when_due_and_skipped_once_paid(factory, now, outbox):
    from loafy.notifications import send_due

    unpaid = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    paid = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    record_payment(paid.id, provider="stripe", provider_id="pi_r", amount=paid.amount, now=now)
    assert send_due(now + timedelta(minutes=20)) == 1
    reminders = [m for m in _mails(outbox) if "10 minutes left" in m["Subject"]]
    assert [unpaid.code in m["Subject"] for m in reminders] == [True]
    skipped = Notification.get((Notification.kind == "payment_reminder") & (Notification.booking == paid.id))
    assert skipped.last_error.startswith("skipped")
    assert send_due(now + timedelta(minutes=21)) == 0  # nothing sent twice


def test_an_smtp_outage_delays_mail_with_growing_waits_and_loses_none(factory, now, outbox, monkeypatch):
    from loafy import notifications

    def down(*args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    real = notifications.send_email
    monkeypatch.setattr(notifications, "send_email", down)
    booking = book_session(factory.user(), factory.club_session(price=0), 0, "stripe", now)
    row = Notification.get(Notification.booking == booking.id)
    waits, at = [], now
    for _ in range(4):  # each failure pushes the next try further out: 2, 4, 8, 16 minutes
        assert notifications.send_due(at) == 0
        row = reload(row)
        waits.append(row.send_after - at)
        at = row.send_after
    assert waits == [timedelta(minutes=m) for m in (2, 4, 8, 16)] and row.sent_at is None
    monkeypatch.setattr(notifications, "send_email", real)  # an hour later, SMTP is back
    assert notifications.send_due(at) == 1 and reload(row).sent_at == at


def test_a_please_pay_mail_that_waited_past_the_payment_is_not_sent(factory, now, outbox, monkeypatch):
    from loafy import notifications
    from loafy.notifications import send_due

    with monkeypatch.context() as redis_down:  # the "received" mail is held up
        redis_down.setattr(notifications.queue, "enqueue_coalesced", lambda *args, **kwargs: None)
        booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    assert _mails(outbox) == []
    record_payment(booking.id, provider="stripe", provider_id="pi_w", amount=booking.amount, now=now)
    send_due(now + timedelta(seconds=30))
    subjects = [m["Subject"] for m in _mails(outbox)]
    assert any("confirmed" in s for s in subjects) and not any("received" in s for s in subjects)
    received = Notification.get(
        (Notification.kind == "booking_received") & (Notification.booking == booking.id)
    )
    assert received.last_error == "skipped: no longer relevant"


def test_no_10_minute_reminder_when_the_deadline_is_that_close(factory, now, outbox):
    update_settings({"payment_deadline_minutes": 5})
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    kinds = [n.kind for n in Notification.select().where(Notification.booking == booking.id)]
    assert kinds == ["booking_received"]


def test_the_cancellation_mail_says_the_club_cancelled_and_what_comes_back(factory, now, outbox):
    from loafy.booking.club_sessions import cancel_session
    from loafy.notifications import send_due

    club_session = factory.club_session(price=100_000)
    paid = book_session(factory.user(), club_session, 1, "stripe", now)
    record_payment(paid.id, provider="stripe", provider_id="pi_c", amount=paid.amount, now=now)
    unpaid = book_session(factory.user(), club_session, 0, "bank_transfer", now)
    cancel_session(factory.user(role="admin"), club_session, now)
    send_due(now)
    bodies = {m["Subject"]: m.get_content() for m in _mails(outbox) if "cancelled" in m["Subject"]}
    [paid_mail] = [b for s, b in bodies.items() if paid.code in s]
    [unpaid_mail] = [b for s, b in bodies.items() if unpaid.code in s]
    assert "The club has cancelled this session." in paid_mail and "Câu lạc bộ đã huỷ buổi này." in paid_mail
    assert "The 200.000 ₫ you paid will be refunded in full." in paid_mail
    assert "The club has cancelled this session." in unpaid_mail and "refunded" not in unpaid_mail


def test_expiry_and_cancellation_mails(factory, now, outbox):
    from loafy.notifications import send_due

    player = factory.user()
    expired = book_session(player, factory.club_session(), 0, "stripe", now)
    cancelled = book_session(player, factory.club_session(), 0, "stripe", now)
    cancel_booking(player, cancelled, now)
    expire_unpaid(now + timedelta(hours=1))
    send_due(now + timedelta(hours=1))
    subjects = [m["Subject"] for m in _mails(outbox)]
    assert any(expired.code in s and "expired" in s for s in subjects)
    assert any(cancelled.code in s and "cancelled" in s for s in subjects)
    kinds = [n.kind for n in Notification.select().where(Notification.booking == expired.id)]
    assert sorted(kinds) == ["booking_expired", "booking_received", "payment_reminder"]
    assert ClubSession.select().where(ClubSession.available_slots != ClubSession.max_slots).count() == 0


def test_a_sold_out_session_still_gives_the_right_refusal(factory, now):
    """The read-only "full" answer after a sell-out keeps the order a player should hear refusals in."""
    club_session = factory.club_session(max_slots=1)
    holder = factory.user()
    book_session(holder, club_session, 0, "stripe", now)
    with pytest.raises(bookings.AlreadyBooked):
        book_session(holder, club_session, 0, "stripe", now)
    with pytest.raises(bookings.PaymentMethodUnavailable):
        book_session(factory.user(), club_session, 0, "cash", now)
    with pytest.raises(bookings.SessionFull):
        book_session(factory.user(), club_session, 0, "stripe", now)
    ClubSession.update(status="cancelled").where(ClubSession.id == club_session.id).execute()
    with pytest.raises(bookings.BookingClosed):
        book_session(factory.user(), club_session, 0, "stripe", now)
