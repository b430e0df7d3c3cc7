"""No network call inside a database transaction: a card refund is recorded (and committed) as a
request, then Stripe is called, then the result is recorded. A process that dies between leaves a
request the settle sweep finishes, once. Against a real localstripe.
"""

import json

import pytest
import stripe

from loafy.booking import staff
from loafy.booking.bookings import book_session, cancel_booking
from loafy.db import db
from loafy.models import AuditLog, LedgerEntry, RefundRequest
from loafy.money import card, ledger, reconcile, refunds, settle, stripe_client
from tests.helpers import login, reload
from tests.stripe_fixtures import localstripe_url, served, stripe_live, stripe_settings, wait_for  # noqa: F401

PRICE = 150_000


@pytest.fixture
def app_config(app_config, localstripe_url):  # noqa: F811
    return {**app_config, **stripe_settings(localstripe_url)}


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


@pytest.fixture
def admin(factory):
    return factory.user(role="admin")


def paid_booking(live, factory, now):
    club_session = factory.club_session(price=PRICE)
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    intent = card.create_intent(booking.user, booking.id, now)
    live.pay(intent["payment_intent_id"])
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    return reload(booking)


def refund_amounts(booking):
    rows = LedgerEntry.select().where((LedgerEntry.booking == booking.id) & (LedgerEntry.kind == "refund"))
    return sorted(row.amount for row in rows)


def requests_of(booking):
    rows = RefundRequest.select().where(RefundRequest.booking == booking.id).order_by(RefundRequest.id)
    return [(r.amount, r.status) for r in rows]


@pytest.fixture
def http_calls(monkeypatch):
    """Every HTTP request the Stripe SDK makes in this process, with whether a transaction was open."""
    calls = []
    original = stripe.RequestsClient.request

    def request(self, method, url, *args, **kwargs):
        calls.append((method, url.split("/v1/", 1)[-1], db.in_transaction()))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(stripe.RequestsClient, "request", request)
    return calls


def test_no_transaction_is_open_when_stripe_is_called(live, factory, now, admin, http_calls, monkeypatch):
    from loafy import notifications

    mails = []
    original_send = notifications.send_email

    def send_email(*args, **kwargs):  # the other network call: SMTP (the tests' backend is a folder)
        mails.append(db.in_transaction())
        return original_send(*args, **kwargs)

    monkeypatch.setattr(notifications, "send_email", send_email)
    booking = paid_booking(live, factory, now)  # intent, webhook (re-fetch), confirmation
    staff.refund_booking(admin, booking.id, now, amount=50_000)  # the admin's Refund button
    cancel_booking(booking.user, booking, now)  # the rest goes back through the settle job
    settle.settle_due(now)
    assert refund_amounts(booking) == [50_000, 100_000]
    assert any(method == "post" and path == "refunds" for method, path, _ in http_calls)
    inside = [(method, path) for method, path, in_transaction in http_calls if in_transaction]
    assert inside == []
    assert mails and not any(mails)  # booked, confirmed, refunded twice, cancelled: all after commit


def test_the_stripe_client_refuses_inside_a_transaction(live):
    with db.atomic(), pytest.raises(stripe_client.CalledInTransaction):
        stripe_client.client()
    assert stripe_client.client() is not None  # outside: fine


def test_a_staff_refund_is_requested_and_audited_before_stripe_is_called(
    live, factory, now, admin, monkeypatch
):
    booking = paid_booking(live, factory, now)
    seen = []

    def create(self, params=None, options=None):
        # At the moment of the call the request and its audit row are committed (another
        # connection would see them): what is in the database without an open transaction.
        seen.append((db.in_transaction(), requests_of(booking), AuditLog.select().count()))
        return original(self, params=params, options=options)

    original = stripe.RefundService.create
    monkeypatch.setattr(stripe.RefundService, "create", create)
    staff.refund_booking(admin, booking.id, now, amount=40_000)
    assert seen == [(False, [(40_000, "requested")], 1)]
    assert requests_of(booking) == [(40_000, "sent")]
    assert refund_amounts(booking) == [40_000]
    [row] = AuditLog.select().where(AuditLog.action == "booking.refund")
    assert json.loads(row.details) == {"code": booking.code, "amount": 40_000} and row.actor_id == admin.id


def test_a_crash_after_stripe_refunded_is_finished_by_the_sweep_once(live, factory, now, admin, monkeypatch):
    booking = paid_booking(live, factory, now)
    live.dispatcher.hold = True  # no webhook repairs anything: the sweep must
    with monkeypatch.context() as dying:
        dying.setattr(ledger, "record_refunds", lambda *args, **kwargs: 1 / 0)  # killed after Stripe
        with pytest.raises(ZeroDivisionError):
            staff.refund_booking(admin, booking.id, now, amount=50_000)
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == 50_000
    assert refund_amounts(booking) == [] and requests_of(booking) == [(50_000, "requested")]
    differences = reconcile.reconcile()
    assert any("refund request" in d and "not finished" in d and booking.code in d for d in differences)
    # Stripe forgets idempotency keys after a day: the sweep must not rely on the key alone.
    RefundRequest.update(idempotency_key="an-expired-key").execute()

    assert settle.settle_due(now) == {booking.id: "refunded"}
    assert refund_amounts(booking) == [50_000]
    assert requests_of(booking) == [(50_000, "sent")]
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == 50_000  # not twice
    assert settle.settle_due(now) == {}  # nothing left to do
    assert reconcile.reconcile() == []
    assert AuditLog.select().where(AuditLog.action == "booking.refund").count() == 1
    live.dispatcher.hold = False


def test_stripe_down_when_sending_keeps_the_request_for_the_sweep(
    app, live, factory, now, admin, monkeypatch
):
    booking = paid_booking(live, factory, now)

    def down(self, params=None, options=None):
        raise stripe.APIConnectionError("connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(stripe.RefundService, "create", down)
        with pytest.raises(stripe_client.PaymentUnavailable, match="saved and will be sent"):
            staff.refund_booking(admin, booking.id, now)
    assert requests_of(booking) == [(PRICE, "requested")] and refund_amounts(booking) == []
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == 0
    staff_page = login(app.test_client(), admin)
    details = f"/admin/bookings/details/?id={booking.id}"
    en = {"Accept-Language": "en"}
    assert "waiting for Stripe" in staff_page.get(details, headers=en).get_data(as_text=True)

    settle.settle_due(now)  # Stripe is back
    assert refund_amounts(booking) == [PRICE] and requests_of(booking) == [(PRICE, "sent")]
    assert reload(booking).payment_status == "refunded"
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == PRICE
    assert "waiting for Stripe" not in staff_page.get(details, headers=en).get_data(as_text=True)


def test_a_refund_stripe_refuses_is_marked_failed_and_said(live, factory, now, admin, monkeypatch):
    booking = paid_booking(live, factory, now)

    def refuse(self, params=None, options=None):
        raise stripe.InvalidRequestError("Charge has already been refunded.", param="charge")

    monkeypatch.setattr(stripe.RefundService, "create", refuse)
    with pytest.raises(stripe_client.PaymentProviderError, match="nothing was refunded"):
        staff.refund_booking(admin, booking.id, now, amount=10_000)
    [request] = RefundRequest.select()
    assert request.status == "failed" and "already been refunded" in request.error
    assert refunds.pending_refund_requests().count() == 0 and refund_amounts(booking) == []


def test_a_double_click_asks_for_one_refund(live, factory, now, admin):
    """Two admins (or two clicks) refunding the rest at once plan the same request: one row, one
    refund at Stripe, whatever order the calls land in."""
    booking = paid_booking(live, factory, now)
    charges = refunds.refundable_charges(booking)
    assert refunds.request_refunds(booking, charges, PRICE, admin, now, "staff refund") == PRICE
    assert refunds.request_refunds(booking, charges, PRICE, admin, now, "staff refund") == PRICE
    assert requests_of(booking) == [(PRICE, "requested")]
    settle.settle_due(now)
    assert refund_amounts(booking) == [PRICE]
    assert live.charge(booking.stripe_payment_intent_id)["amount_refunded"] == PRICE
