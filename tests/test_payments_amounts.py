"""A card payment pays a booking only when Stripe took what the booking owes, in VND; a webhook
signed in the future is refused. Against a real localstripe with webhooks delivered over HTTP.

The attack: the booking's own PaymentIntent, its amount changed to 1 ₫ at Stripe before paying
(or any intent whose metadata names the booking). It must confirm nothing, count as no payment, be
kept in the ledger as a flagged difference staff see, and be listed by `loafy payments reconcile`.
"""

import json
import time

import pytest

from loafy.booking.bookings import book_session
from loafy.checks import find_violations
from loafy.models import LedgerEntry, WebhookEvent
from loafy.money import card, ledger, reconcile
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
def booking(factory, now):
    club_session = factory.club_session(price=PRICE, max_slots=4)
    return book_session(factory.user(name="Minh"), club_session, 0, "stripe", now)


def ledger_rows(booking):
    rows = LedgerEntry.select().where(LedgerEntry.booking == booking.id).order_by(LedgerEntry.id)
    return [(r.kind, r.provider_id, r.amount, r.currency, r.status) for r in rows]


def succeeded_events(live, intent_id):
    return [e for e in live.events("payment_intent.succeeded") if e["data"]["object"]["id"] == intent_id]


def pay_tampered(live, intent_id, **changes):
    """What an attacker with the client secret cannot do but a wrong integration (or a leaked key)
    can: change the intent at Stripe, then pay it; wait for our answer to the signed webhook."""
    live.client.v1.payment_intents.update(intent_id, params=changes)
    live.pay(intent_id)
    wait_for(
        lambda: WebhookEvent.select().where(WebhookEvent.type == "payment_intent.succeeded").exists(),
        message="the succeeded webhook",
    )


def test_an_intent_changed_to_1_dong_confirms_nothing_and_is_flagged(live, booking, now, app, factory):
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    pay_tampered(live, intent_id, amount=1)
    assert live.intent(intent_id)["status"] == "succeeded"

    row = reload(booking)
    assert (row.status, row.payment_status) == ("pending_payment", "unpaid")
    assert reload(booking.club_session).available_slots == 3  # still held until its deadline, no more
    assert ledger_rows(booking) == [
        ("intent", intent_id, PRICE, "vnd", "requires_payment_method"),
        ("payment", intent_id, 1, "vnd", "mismatch"),
    ]
    assert ledger.ledger_totals(booking.id) == (0, 0)  # counted as no payment at all
    note = LedgerEntry.get(LedgerEntry.status == "mismatch").note
    assert "1 ₫" in note and "150.000 ₫" in note

    # Stripe delivers again: nothing changes.
    event = succeeded_events(live, intent_id)[0]
    again = live.deliver(json.dumps(event).encode())
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(ledger_rows(booking)) == 2

    # `loafy payments reconcile` lists it (and exits 1).
    differences = reconcile.reconcile()
    assert len(differences) == 1 and intent_id in differences[0] and booking.code in differences[0]
    assert "flagged" in differences[0] and "1 ₫" in differences[0]
    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 1 and "DIFFERENCE" in result.output and intent_id in result.output

    # Staff see it on the booking and on the dashboard.
    admin = login(app.test_client(), factory.user(role="admin"))
    en = {"Accept-Language": "en"}
    page = admin.get(f"/admin/bookings/details/?id={booking.id}", headers=en).get_data(as_text=True)
    assert "flagged-payment" in page and "does not match" in page and intent_id in page
    dashboard = admin.get("/admin/", headers=en).get_data(as_text=True)
    assert 'id="flagged-payments"' in dashboard and booking.code in dashboard
    assert "Card payments that did not match" in dashboard
    vi = {"Accept-Language": "vi"}
    assert "Thanh toán thẻ không khớp" in admin.get("/admin/", headers=vi).get_data(as_text=True)

    # The player can still pay the right amount with a fresh intent, which confirms the booking.
    fresh = card.create_intent(booking.user, booking.id, now)
    assert fresh["payment_intent_id"] != intent_id and fresh["amount"] == PRICE
    live.pay(fresh["payment_intent_id"])
    wait_for(lambda: reload(booking).status == "confirmed", message="the fresh intent's webhook")
    assert ledger.ledger_totals(booking.id) == (PRICE, 0)
    assert find_violations() == []


def test_a_foreign_intent_naming_the_booking_in_another_currency_pays_nothing(live, booking, now):
    """Not our intent at all: created at Stripe with our booking's id in its metadata, the right
    number but in US dollars."""
    foreign = live.client.v1.payment_intents.create(
        params={
            "amount": PRICE,
            "currency": "usd",
            "payment_method_types": ["card"],
            "metadata": {"booking_id": str(booking.id)},
        }
    )
    live.pay(foreign.id)
    wait_for(lambda: WebhookEvent.select().exists(), message="the succeeded webhook")
    row = reload(booking)
    assert (row.status, row.payment_status) == ("pending_payment", "unpaid")
    assert ledger_rows(booking) == [("payment", foreign.id, PRICE, "usd", "mismatch")]
    assert "USD" in LedgerEntry.get(LedgerEntry.status == "mismatch").note
    assert ledger.ledger_totals(booking.id) == (0, 0)


def test_the_right_amount_still_confirms(live, booking, now):
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.pay(intent_id)
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    assert ledger_rows(booking)[-1] == ("payment", intent_id, PRICE, "vnd", "succeeded")


def test_a_webhook_signed_in_the_future_is_refused(live, booking, now):
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True  # keep Stripe's own delivery: the test delivers
    live.pay(intent_id)
    body, _signature = live.wait_held()[0]

    future = live.deliver(body, signature=live.sign(body, timestamp=int(time.time()) + 3600))
    assert future.status_code == 400, future.get_data(as_text=True)
    assert future.json()["error"]["code"] == "bad_timestamp"
    assert WebhookEvent.select().count() == 0 and reload(booking).status == "pending_payment"

    # A clock a few seconds fast is not an attack; a fresh signature is accepted.
    assert live.deliver(body, signature=live.sign(body, timestamp=int(time.time()) + 5)).status_code == 200
    assert reload(booking).status == "confirmed"


def test_a_webhook_without_a_timestamp_is_refused(live, booking, now):
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    body = json.dumps(live.event("evt_no_t", "payment_intent.succeeded", live.intent(intent_id))).encode()
    signature = live.sign(body).split(",", 1)[1]  # only v1=...
    assert live.deliver(body, signature=signature).status_code == 400
    assert WebhookEvent.select().count() == 0
