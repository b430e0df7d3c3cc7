"""Payments against a real localstripe, with real signed webhooks delivered over HTTP.

Each test asserts the rows that matter (Booking, LedgerEntry, WebhookEvent) and what Stripe holds.
"""

import json
from datetime import timedelta

import pytest
import requests

from loafy import clock
from loafy.booking import bookings
from loafy.booking.bookings import book_session, cancel_booking, expire_unpaid
from loafy.booking.club_sessions import cancel_session
from loafy.checks import find_violations
from loafy.db import db
from loafy.errors import NotFound, PermissionDenied
from loafy.models import LedgerEntry, WebhookEvent
from loafy.money import card, ledger, reconcile, refunds, settle, stripe_client
from loafy.settings import update_settings
from tests.helpers import csrf_token, login, reload
from tests.stripe_fixtures import localstripe_url, served, stripe_live, stripe_settings, wait_for  # noqa: F401

PRICE = 150_000


@pytest.fixture
def app_config(app_config, localstripe_url):  # noqa: F811
    return {**app_config, **stripe_settings(localstripe_url)}


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


def ledger_rows(booking, kind=None):
    query = LedgerEntry.select().where(LedgerEntry.booking == booking.id)
    if kind:
        query = query.where(LedgerEntry.kind == kind)
    return [(row.kind, row.provider, row.provider_id, row.amount) for row in query.order_by(LedgerEntry.id)]


def snapshot(booking):
    """Everything a repeated event must leave alone."""
    row = reload(booking)
    return (
        row.status,
        row.payment_status,
        row.refund_due_at,
        row.updated_at,
        row.stripe_payment_intent_id,
        ledger_rows(booking),
        reload(row.club_session).available_slots,
    )


def book(factory, now, player=None, guests=0, method="stripe", **session_fields):
    club_session = factory.club_session(price=PRICE, **session_fields)
    return book_session(player or factory.user(), club_session, guests, method, now)


def paid_booking(live, factory, now, **kw):
    """A booking paid by card, confirmed through the real webhook."""
    booking = book(factory, now, **kw)
    intent = card.create_intent(booking.user, booking.id, now)
    live.pay(intent["payment_intent_id"])
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    return reload(booking)


def post_intent(client, booking_id):
    return client.post(
        "/api/payments/stripe/intent",
        json={"booking_id": booking_id},
        headers={"X-CSRFToken": csrf_token(client)},
    )


# --- create → confirm → webhook ------------------------------------------------------------------


def test_create_confirm_webhook_confirms_the_booking(live, factory, now, client):
    booking = book(factory, now, guests=1)
    login(client, booking.user)
    response = post_intent(client, booking.id)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["amount"] == 300_000 and body["currency"] == "vnd"
    assert body["client_secret"].startswith(body["payment_intent_id"] + "_secret_")
    intent_id = body["payment_intent_id"]

    at_stripe = live.intent(intent_id)
    assert (at_stripe["amount"], at_stripe["currency"]) == (300_000, "vnd")
    assert at_stripe["metadata"] == {"booking_id": str(booking.id), "booking_code": booking.code}
    assert reload(booking).stripe_payment_intent_id == intent_id
    assert ledger_rows(booking) == [("intent", "stripe", intent_id, 300_000)]

    live.pay(intent_id)
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    row = reload(booking)
    assert row.payment_status == "paid" and row.confirmed_at == now and row.payment_deadline is None
    assert ledger_rows(booking) == [
        ("intent", "stripe", intent_id, 300_000),
        ("payment", "stripe", intent_id, 300_000),
    ]
    assert [e.type for e in WebhookEvent.select()] == ["payment_intent.succeeded"]
    assert client.get(f"/bookings/{booking.id}/status.json").get_json() == {
        "status": "confirmed",
        "payment_status": "paid",
    }
    # Paid: asking for an intent again is refused, not a second charge.
    again = post_intent(client, booking.id)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_confirmed"
    assert find_violations() == []


def test_reloading_the_page_reuses_the_intent(live, factory, now):
    booking = book(factory, now)
    first = card.create_intent(booking.user, booking.id, now)
    second = card.create_intent(booking.user, str(booking.id), now)
    assert first["payment_intent_id"] == second["payment_intent_id"]
    assert first["client_secret"] == second["client_secret"]
    assert len(live.all_intents()) == 1
    assert ledger_rows(booking, "intent") == [("intent", "stripe", first["payment_intent_id"], PRICE)]


def test_two_tabs_creating_at_once_keep_one_open_intent(live, factory, now):
    """Both tabs saw no intent and asked Stripe. With the same idempotency key Stripe gives both the
    same intent: the tab that loses the store must keep it, not cancel it. With a different one,
    the loser's own intent is cancelled and it pays the stored one."""
    booking = book(factory, now)
    stored = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    stale = reload(booking)
    stale.stripe_payment_intent_id = None  # what the other tab read before the store

    def fetch(intent_id):
        return stripe_client.plain(stripe_client.client().v1.payment_intents.retrieve(intent_id))

    same = card._store_intent(stale, None, fetch(stored), now)
    assert same["id"] == stored and live.intent(stored)["status"] == "requires_payment_method"

    params = {"amount": PRICE, "currency": "vnd", "payment_method_types": ["card"]}
    own = stripe_client.plain(stripe_client.client().v1.payment_intents.create(params=params))
    kept = card._store_intent(stale, None, own, now)
    assert kept["id"] == stored and live.intent(stored)["status"] == "requires_payment_method"
    assert live.intent(own["id"])["status"] == "canceled"
    assert reload(booking).stripe_payment_intent_id == stored


def test_intent_refusals_are_clear_and_change_nothing(live, factory, now, client):
    owner = factory.user()
    booking = book(factory, now, player=owner)
    other = factory.user()
    login(client, other)
    for booking_id in (booking.id, 999_999, "abc", True, None, [1], 1.5):
        response = post_intent(client, booking_id)
        assert response.status_code == 404, (booking_id, response.data)
        assert response.get_json()["error"]["code"] == "not_found"
    token = csrf_token(client)
    # Not a JSON object: 400, as on every endpoint; an object without booking_id: 422 naming it.
    for raw, status in ((b"{not json", 400), (b"[]", 400), (b'"x"', 400), (b"{}", 422)):
        response = client.post(
            "/api/payments/stripe/intent",
            data=raw,
            content_type="application/json",
            headers={"X-CSRFToken": token},
        )
        assert response.status_code == status, (raw, response.data)
    # A bank-transfer booking has no card intent.
    transfer = book(factory, now, player=other, method="bank_transfer")
    response = post_intent(client, transfer.id)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_card_payment"
    # Staff are not the owner either.
    with pytest.raises(NotFound):
        card.create_intent(factory.user(role="admin"), booking.id, now)
    assert live.all_intents() == []
    assert LedgerEntry.select().count() == 0
    assert reload(booking).stripe_payment_intent_id is None


def test_amount_above_stripes_vnd_limit_is_refused(live, factory, now, client):
    club_session = factory.club_session(price=30_000_000)
    booking = book_session(factory.user(), club_session, 3, "stripe", now)
    assert booking.amount == 120_000_000
    login(client, booking.user)
    response = post_intent(client, booking.id)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "amount_too_large" and "99.999.999" in error["message"]
    assert live.all_intents() == [] and LedgerEntry.select().count() == 0
    page = client.get(f"/bookings/{booking.id}/pay")
    assert page.status_code == 200 and "99.999.999" in page.get_data(as_text=True)


def test_an_overdue_booking_cannot_be_paid(live, factory, now):
    booking = book(factory, now)
    with pytest.raises(card.NotPayable):
        card.create_intent(booking.user, booking.id, now + timedelta(minutes=31))
    assert live.all_intents() == []


# --- webhooks: signature, duplicates, order ------------------------------------------------------


def test_bad_signature_is_400_and_changes_nothing(live, factory, now):
    booking = book(factory, now)
    intent = card.create_intent(booking.user, booking.id, now)
    live.dispatcher.hold = True
    live.pay(intent["payment_intent_id"])
    body, signature = live.wait_held()[0]
    before = snapshot(booking)

    forged = live.deliver(body, secret="whsec_someone_else")
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "bad_signature"
    tampered = live.deliver(body.replace(b"succeeded", b"succeedeD"), signature=signature)
    assert tampered.status_code == 400
    assert live.deliver(body, signature="t=1,v1=abc").status_code == 400
    unsigned = requests.post(live.app_base + "/api/webhooks/stripe", data=body, timeout=30)
    assert unsigned.status_code == 400
    garbage = live.deliver(b"\xff\xfe not json")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "bad_payload"
    assert snapshot(booking) == before and WebhookEvent.select().count() == 0

    genuine = live.deliver(body, signature=signature)
    assert genuine.status_code == 200 and genuine.json()["outcome"] == "confirmed"
    assert reload(booking).status == "confirmed"


def test_duplicate_and_replayed_events_change_nothing(live, factory, now):
    booking = paid_booking(live, factory, now)
    event = live.events("payment_intent.succeeded")[0]
    before = snapshot(booking)
    events_before = WebhookEvent.select().count()

    # The same event again (Stripe redelivers), twice.
    for _ in range(2):
        response = live.deliver(event)
        assert response.status_code == 200 and response.json()["outcome"] == "duplicate"
    assert WebhookEvent.select().count() == events_before
    # A replay under a new event id: recorded as an event, but the payment is already in the ledger.
    replay = dict(event, id="evt_replayed_1")
    response = live.deliver(replay)
    assert response.status_code == 200 and response.json()["outcome"] == "duplicate"
    assert WebhookEvent.select().count() == events_before + 1
    assert snapshot(booking) == before
    assert [r for r in ledger_rows(booking) if r[0] == "payment"] == [
        ("payment", "stripe", booking.stripe_payment_intent_id, PRICE)
    ]


def test_a_forged_body_is_not_trusted(live, factory, now):
    """A correctly signed event saying 'succeeded' for an unpaid intent: Stripe is asked, not believed."""
    booking = book(factory, now)
    intent = card.create_intent(booking.user, booking.id, now)
    body = live.event(
        "evt_lying_1",
        "payment_intent.succeeded",
        {
            "id": intent["payment_intent_id"],
            "object": "payment_intent",
            "status": "succeeded",
            "amount": PRICE,
        },
    )
    before = snapshot(booking)
    response = live.deliver(body)
    assert response.status_code == 200 and response.json()["outcome"] == "requires_payment_method"
    assert snapshot(booking) == before and ledger_rows(booking, "payment") == []


def test_events_out_of_order_change_nothing_the_second_time(live, factory, now):
    booking = book(factory, now)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)
    held_body, held_signature = live.wait_held()[0]
    # Someone refunds part of it in Stripe's dashboard; the refund event overtakes the payment's.
    refund = live.client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 50_000})
    refunded = live.event(
        "evt_charge_refunded_1", "charge.refunded", {"id": live.charge_id(intent_id), "object": "charge"}
    )
    live.dispatcher.hold = False
    first = live.deliver(refunded)
    assert first.status_code == 200, first.text
    row = reload(booking)
    assert (row.status, row.payment_status) == ("confirmed", "paid")
    assert ledger_rows(booking) == [
        ("intent", "stripe", intent_id, PRICE),
        ("payment", "stripe", intent_id, PRICE),
        ("refund", "stripe", refund.id, 50_000),
    ]
    before = snapshot(booking)

    late_success = live.deliver(held_body, signature=held_signature)
    assert late_success.status_code == 200 and late_success.json()["outcome"] == "duplicate"
    stale_failure = live.deliver(
        live.event("evt_stale_failure_1", "payment_intent.payment_failed", {"id": intent_id})
    )
    assert stale_failure.status_code == 200
    assert live.deliver(refunded).json()["outcome"] == "duplicate"
    assert snapshot(booking) == before
    assert {e.event_id for e in WebhookEvent.select()} == {
        "evt_charge_refunded_1",
        json.loads(held_body)["id"],
        "evt_stale_failure_1",
    }


def test_decline_then_success(live, factory, now, client):
    booking = book(factory, now)
    login(client, booking.user)
    first = post_intent(client, booking.id).get_json()["payment_intent_id"]
    live.decline(first)
    wait_for(
        lambda: WebhookEvent.get_or_none(WebhookEvent.type == "payment_intent.payment_failed"),
        message="the payment_failed webhook",
    )
    row = reload(booking)
    assert (row.status, row.payment_status) == ("pending_payment", "failed")
    assert ledger_rows(booking, "payment") == []

    # The player tries again: a fresh intent replaces the declined one, which is cancelled.
    second = post_intent(client, booking.id).get_json()["payment_intent_id"]
    assert second != first and live.intent(first)["status"] == "canceled"
    live.pay(second)
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    row = reload(booking)
    assert row.payment_status == "paid" and row.stripe_payment_intent_id == second
    assert ledger_rows(booking) == [
        ("intent", "stripe", first, PRICE),
        ("intent", "stripe", second, PRICE),
        ("payment", "stripe", second, PRICE),
    ]


def test_a_database_failure_rolls_back_and_answers_5xx(live, factory, now):
    booking = book(factory, now)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)
    body, signature = live.wait_held()[0]
    before = snapshot(booking)
    # Confirming writes a notification in the same transaction; make that table vanish for a moment.
    db.execute_sql('ALTER TABLE "notifications" RENAME TO "notifications_away"')
    try:
        response = live.deliver(body, signature=signature)
    finally:
        db.execute_sql('ALTER TABLE "notifications_away" RENAME TO "notifications"')
    assert response.status_code >= 500
    assert snapshot(booking) == before
    assert WebhookEvent.select().count() == 0  # rolled back with the booking: Stripe's retry will count
    retry = live.deliver(body, signature=signature)
    assert retry.status_code == 200 and retry.json()["outcome"] == "confirmed"
    assert reload(booking).status == "confirmed" and WebhookEvent.select().count() == 1


# --- late payment (invariant 4) ------------------------------------------------------------------


def test_payment_after_expiry_with_free_slots_reconfirms(live, factory, now):
    booking = book(factory, now, max_slots=3)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True  # Stripe took the money but its webhook is late
    live.pay(intent_id)
    body, signature = live.wait_held()[0]
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    assert expire_unpaid(later) == [booking.code]
    # Settling the expired booking found the intent paid: the spot is taken again.
    row = reload(booking)
    assert (row.status, row.payment_status, row.refund_due_at) == ("confirmed", "paid", None)
    assert reload(row.club_session).available_slots == 2
    assert ledger_rows(booking, "payment") == [("payment", "stripe", intent_id, PRICE)]
    assert ledger_rows(booking, "refund") == []
    before = snapshot(booking)
    live.dispatcher.hold = False
    late = live.deliver(body, signature=signature)
    assert late.status_code == 200 and late.json()["outcome"] == "duplicate"
    assert snapshot(booking) == before
    assert find_violations() == []


def test_payment_after_expiry_without_free_slots_is_refunded(live, factory, now):
    booking = book(factory, now, max_slots=1)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)
    body, signature = live.wait_held()[0]
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    # Another player takes the released spot (their booking expires ours in the same transaction).
    other = book_session(factory.user(), booking.club_session_id, 0, "bank_transfer", later)
    assert reload(booking).status == "expired" and other.status == "pending_payment"
    row = reload(booking)
    assert (row.status, row.payment_status, row.refund_due_at) == ("expired", "refunded", None)
    refunds = ledger_rows(booking, "refund")
    assert len(refunds) == 1 and refunds[0][2].startswith("re_") and refunds[0][3] == PRICE
    charge = live.charge(intent_id)
    assert charge["amount_refunded"] == PRICE and charge["refunded"] is True
    before = snapshot(booking)
    live.dispatcher.hold = False
    late = live.deliver(body, signature=signature)
    assert late.status_code == 200 and late.json()["outcome"] == "duplicate"
    assert snapshot(booking) == before
    assert find_violations() == []


def test_late_webhook_for_an_expired_booking(live, factory, now):
    """The webhook path of invariant 4: the booking expired (its intent could not be cancelled in
    time) and the payment's webhook is the first news of it."""
    booking = book(factory, now, max_slots=2)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    saved = stripe_client._state["secret_key"]
    stripe_client._state["secret_key"] = None  # settling cannot reach Stripe at the moment of expiry
    try:
        assert expire_unpaid(later) == [booking.code]
    finally:
        stripe_client._state["secret_key"] = saved
    assert live.intent(intent_id)["status"] == "requires_payment_method"
    live.pay(intent_id)
    wait_for(lambda: reload(booking).status == "confirmed", message="the late succeeded webhook")
    assert reload(booking).payment_status == "paid"
    assert ledger_rows(booking, "payment") == [("payment", "stripe", intent_id, PRICE)]
    assert find_violations() == []


def test_expiry_and_cancellation_cancel_the_open_intent(live, factory, now):
    expiring = book(factory, now)
    expiring_intent = card.create_intent(expiring.user, expiring.id, now)["payment_intent_id"]
    cancelling = book(factory, now)
    cancelling_intent = card.create_intent(cancelling.user, cancelling.id, now)["payment_intent_id"]
    cancel_booking(cancelling.user, cancelling, now)
    expire_unpaid(now + timedelta(minutes=31))
    assert live.intent(expiring_intent)["status"] == "canceled"
    assert live.intent(cancelling_intent)["status"] == "canceled"
    assert reload(expiring).status == "expired" and reload(cancelling).status == "cancelled"
    assert LedgerEntry.select().where(LedgerEntry.kind != "intent").count() == 0


def test_the_sweep_cancels_an_intent_whose_settle_job_was_lost(live, factory, now, monkeypatch):
    booking = book(factory, now)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    with monkeypatch.context() as lost:
        lost.setattr(bookings.queue, "enqueue", lambda *args, **kwargs: None)  # Redis down at expiry
        expire_unpaid(now + timedelta(minutes=31))
    assert live.intent(intent_id)["status"] == "requires_payment_method"
    assert settle.settle_due(now) == {booking.id: "intent_cancelled"}
    assert live.intent(intent_id)["status"] == "canceled"
    assert settle.settle_due(now) == {}  # closed: not asked about again
    paid = paid_booking(live, factory, now)
    assert settle.settle_due(now) == {}  # a confirmed booking's intent is none of the sweep's business
    assert reload(paid).status == "confirmed"


# --- refunds -------------------------------------------------------------------------------------


def test_player_cancellation_refunds_per_setting(live, factory, now):
    refunded = paid_booking(live, factory, now)
    cancel_booking(refunded.user, refunded, now)
    row = reload(refunded)
    assert (row.status, row.payment_status, row.refund_due_at) == ("cancelled", "refunded", None)
    refunds = ledger_rows(refunded, "refund")
    assert len(refunds) == 1 and refunds[0][3] == PRICE
    intent_id = row.stripe_payment_intent_id
    assert live.charge(intent_id)["amount_refunded"] == PRICE
    assert refunds[0][2] == live.client.v1.refunds.list(params={"payment_intent": intent_id}).data[0].id
    # Settling again is a no-op.
    assert settle.settle_booking(refunded.id, now) == "nothing"
    assert len(ledger_rows(refunded, "refund")) == 1

    update_settings({"refund_on_cancel": False})
    kept = paid_booking(live, factory, now)
    cancel_booking(kept.user, kept, now)
    row = reload(kept)
    assert (row.status, row.payment_status, row.refund_due_at) == ("cancelled", "paid", None)
    assert ledger_rows(kept, "refund") == []
    assert live.charge(row.stripe_payment_intent_id)["amount_refunded"] == 0


def test_staff_refund_partial_then_rest(live, factory, now):
    booking = paid_booking(live, factory, now)
    admin = factory.user(role="admin")
    with pytest.raises(PermissionDenied):
        refunds.refund_booking(booking.user, booking.id, now, amount=10_000)
    with pytest.raises(PermissionDenied):
        refunds.refund_booking(factory.user(role="organizer"), booking.id, now)
    for bad in (0, -5, PRICE + 1, "50000", 1.5, True):
        with pytest.raises(refunds.InvalidRefundAmount):
            refunds.refund_booking(admin, booking.id, now, amount=bad)
    assert ledger_rows(booking, "refund") == []

    refunds.refund_booking(admin, booking.id, now, amount=50_000)
    row = reload(booking)
    assert (row.status, row.payment_status) == ("confirmed", "paid")
    first = ledger_rows(booking, "refund")
    assert len(first) == 1 and first[0][3] == 50_000
    assert LedgerEntry.get(LedgerEntry.provider_id == first[0][2]).recorded_by_id == admin.id

    refunds.refund_booking(admin, booking.id, now)
    row = reload(booking)
    assert row.payment_status == "refunded"
    assert sorted(r[3] for r in ledger_rows(booking, "refund")) == [50_000, 100_000]
    assert live.charge(row.stripe_payment_intent_id)["amount_refunded"] == PRICE
    with pytest.raises(refunds.NothingToRefund):
        refunds.refund_booking(admin, booking.id, now)


def _refund_mails(outbox, booking):
    import email
    from email import policy

    mails = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))
    ]
    return [m.get_content() for m in mails if "Refund made" in m["Subject"] and booking.code in m["Subject"]]


def test_each_refund_is_emailed_with_what_came_back(live, factory, now, outbox):
    booking = paid_booking(live, factory, now)
    admin = factory.user(role="admin")
    refunds.refund_booking(admin, booking.id, now, amount=50_000)
    [first] = _refund_mails(outbox, booking)
    assert "50.000 ₫ of the 150.000 ₫ you paid" in first and "Your booking stays confirmed." in first
    assert "tổng số đã hoàn là 50.000 ₫" in first
    refunds.refund_booking(admin, booking.id, now)
    assert len(_refund_mails(outbox, booking)) == 2  # one per refund, the last with the whole sum
    assert any("150.000 ₫ of the 150.000 ₫" in body for body in _refund_mails(outbox, booking))


def test_a_refund_whose_worker_died_before_recording_it_is_recorded_by_the_sweep(
    live, factory, now, monkeypatch
):
    booking = paid_booking(live, factory, now)
    live.dispatcher.hold = True  # no charge.refunded webhook to repair it: the sweep must
    with monkeypatch.context() as dying:
        dying.setattr(ledger, "record_refunds", lambda *args, **kwargs: 1 / 0)  # killed right after Stripe
        cancel_booking(booking.user, booking, now)
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == PRICE
    assert ledger_rows(booking, "refund") == [] and reload(booking).refund_due_at is not None
    settle.settle_due(now)
    row = reload(booking)
    assert [r[3] for r in ledger_rows(booking, "refund")] == [PRICE]
    assert (row.payment_status, row.refund_due_at) == ("refunded", None)
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == PRICE  # not twice
    live.dispatcher.hold = False


def test_the_staff_refund_audit_records_what_came_back(live, factory, now):
    from loafy.booking import staff
    from loafy.models import AuditLog

    booking = paid_booking(live, factory, now)
    admin = factory.user(role="admin")
    staff.refund_booking(admin, booking.id, now, amount=50_000)
    staff.refund_booking(admin, booking.id, now)  # "the rest": 100,000, not the price
    amounts = [json.loads(row.details)["amount"] for row in AuditLog.select().order_by(AuditLog.id)]
    assert amounts == [50_000, PRICE - 50_000]


def test_a_late_payment_refunded_for_a_full_session_is_explained(live, factory, now, outbox):
    booking = book(factory, now, max_slots=1)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)
    live.wait_held()
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    book_session(factory.user(), booking.club_session_id, 0, "bank_transfer", later)
    assert reload(booking).payment_status == "refunded"
    [mail] = _refund_mails(outbox, booking)
    assert "Your payment arrived after the booking had expired and the session was full." in mail
    live.dispatcher.hold = False


def test_whole_session_cancellation_refunds_every_paid_booking(live, factory, now):
    club_session = factory.club_session(price=PRICE, max_slots=10)
    paid = []
    for guests in (0, 2):
        booking = book_session(factory.user(), club_session, guests, "stripe", now)
        intent = card.create_intent(booking.user, booking.id, now)
        live.pay(intent["payment_intent_id"])
        paid.append(booking)
    wait_for(lambda: all(reload(b).status == "confirmed" for b in paid), message="both succeeded webhooks")
    unpaid = book_session(factory.user(), club_session, 0, "stripe", now)
    unpaid_intent = card.create_intent(unpaid.user, unpaid.id, now)["payment_intent_id"]
    elsewhere = book_session(factory.user(), factory.club_session(price=0), 0, "stripe", now)

    cancel_session(factory.user(role="admin"), club_session, now)
    for booking in paid:
        row = reload(booking)
        assert (row.status, row.payment_status, row.refund_due_at) == ("cancelled", "refunded", None)
        [refund] = ledger_rows(booking, "refund")
        assert refund[3] == row.amount and refund[2].startswith("re_")
        assert live.charge(row.stripe_payment_intent_id)["amount_refunded"] == row.amount
    assert reload(unpaid).status == "cancelled" and ledger_rows(unpaid, "refund") == []
    assert live.intent(unpaid_intent)["status"] == "canceled"
    assert reload(elsewhere).status == "confirmed"  # another session: untouched
    assert reload(club_session).available_slots == 10
    assert find_violations() == []


# --- reconciliation ------------------------------------------------------------------------------


def test_reconcile_finds_a_planted_difference(live, factory, now, app):
    booking = paid_booking(live, factory, now)
    refunds.refund_booking(factory.user(role="admin"), booking.id, now, amount=20_000)
    assert reconcile.reconcile() == []
    runner = app.test_cli_runner()
    clean = runner.invoke(args=["payments", "reconcile", "--since", "2000-01-01"])
    assert clean.exit_code == 0, clean.output
    assert "ok: the ledger matches Stripe" in clean.output

    # Plant: the payment row claims less than Stripe took, and the refund row is lost.
    intent_id = booking.stripe_payment_intent_id
    LedgerEntry.update(amount=140_000).where(
        (LedgerEntry.kind == "payment") & (LedgerEntry.provider_id == intent_id)
    ).execute()
    LedgerEntry.delete().where(LedgerEntry.kind == "refund").execute()
    differences = reconcile.reconcile()
    assert len(differences) == 2, differences
    assert any(intent_id in d and "150.000 ₫" in d and "140.000 ₫" in d for d in differences)
    assert any(d.startswith("refund re_") and "20.000 ₫" in d for d in differences)
    result = runner.invoke(args=["payments", "reconcile"])
    assert result.exit_code == 1
    assert result.output.count("DIFFERENCE ") == 2 and booking.code in result.output
    # A window after the payment sees none of it.
    assert runner.invoke(args=["payments", "reconcile", "--since", "2999-01-01"]).exit_code == 0
    assert runner.invoke(args=["payments", "reconcile", "--since", "yesterday"]).exit_code != 0


# --- the pay page --------------------------------------------------------------------------------


def test_pay_page_for_card_and_transfer(live, factory, now, client, localstripe_url):  # noqa: F811
    booking = book(factory, now)
    login(client, booking.user)
    page = client.get(f"/bookings/{booking.id}/pay")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "150.000 ₫" in html and booking.code in html
    assert f'src="{localstripe_url}/js.stripe.com/v3/"' in html
    assert 'data-publishable-key="pk_test_loafy_tests"' in html
    assert 'id="countdown"' in html and "10:30" in html  # 03:30 UTC in Ho Chi Minh City
    assert 'id="card-element"' in html
    assert client.get(f"/bookings/{booking.id}/status.json").get_json() == {
        "status": "pending_payment",
        "payment_status": "unpaid",
    }

    transfer = book(factory, now, player=booking.user, method="bank_transfer")
    html = client.get(f"/bookings/{transfer.id}/pay").get_data(as_text=True)
    assert "0123456789" in html and transfer.code in html and "<svg" in html
    assert 'id="card-element"' not in html

    stranger = factory.user()
    login(client, stranger)
    assert client.get(f"/bookings/{booking.id}/pay").status_code == 404
    assert client.get(f"/bookings/{booking.id}/status.json").status_code == 404
    assert client.get("/bookings/999999/pay").status_code == 404


def test_vietqr_payload_is_emvco_with_a_valid_crc():
    from loafy.money.vietqr import crc16 as _crc16
    from loafy.money.vietqr import payload as vietqr_payload

    text = vietqr_payload("970436", "0123456789", 150_000, "LB-ABCDE")
    assert text.startswith("000201010212")
    assert "0010A000000727" in text and "0208QRIBFTTA" in text
    assert "5303704" in text and "5406150000" in text and "5802VN" in text and "0808LB-ABCDE" in text
    assert text[-8:-4] == "6304" and _crc16(text[:-4]) == text[-4:]
    assert _crc16("123456789") == "29B1"  # CRC-16/CCITT-FALSE check value
