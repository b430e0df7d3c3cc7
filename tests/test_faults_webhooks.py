"""Stripe webhooks under fault: huge bodies, concurrent duplicates, stale replays, a payment that
arrives after its spot was given away. Delivered over real HTTP from a real localstripe.

(Signatures, replays under new ids, out-of-order events and late payments with slots free are in
tests/test_payments.py; this adds what that file does not cover.)
"""

import json
import threading
import time
from datetime import timedelta

import pytest
import requests

from loafy import clock
from loafy.booking.bookings import book_session
from loafy.checks import find_violations
from loafy.models import LedgerEntry, Notification, WebhookEvent
from loafy.money import card, stripe_client
from tests.helpers import reload
from tests.stripe_fixtures import (  # noqa: F401 - fixtures
    WEBHOOK_PATH,
    localstripe_url,
    served,
    stripe_live,
    stripe_settings,
    wait_for,
)

PRICE = 150_000
TWO_MIB = 2 * 1024 * 1024


@pytest.fixture
def app_config(app_config, localstripe_url):  # noqa: F811
    return {**app_config, **stripe_settings(localstripe_url)}


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


def state(booking):
    row = reload(booking)
    ledger = [
        (e.kind, e.provider_id, e.amount)
        for e in LedgerEntry.select().where(LedgerEntry.booking == booking.id).order_by(LedgerEntry.id)
    ]
    return row.status, row.payment_status, row.updated_at, ledger, reload(row.club_session).available_slots


def held_success(live, factory, now, **session_fields):
    """A booking paid at Stripe whose `payment_intent.succeeded` delivery the test is holding."""
    club_session = factory.club_session(price=PRICE, **session_fields)
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    intent_id = card.create_intent(booking.user, booking.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)
    body, signature = live.wait_held()[0]
    return booking, intent_id, body, signature


def test_a_huge_body_is_413_json_and_records_nothing(live, factory, now):
    booking, _intent_id, body, _signature = held_success(live, factory, now)
    before = state(booking)
    event = json.loads(body)
    event["data"]["object"]["metadata"] = {"padding": "x" * TWO_MIB}
    huge = json.dumps(event).encode()
    assert len(huge) > TWO_MIB

    # Correctly signed, so only the size can refuse it; then unsigned; then streamed without a
    # Content-Length (chunked), where the limit must be enforced while reading.
    signed = live.deliver(huge)
    unsigned = requests.post(live.app_base + WEBHOOK_PATH, data=huge, timeout=30)
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    chunked = requests.post(
        live.app_base + WEBHOOK_PATH,
        data=chunks,
        headers={"Content-Type": "application/json", "Stripe-Signature": live.sign(huge)},
        timeout=30,
    )
    for response in (signed, unsigned, chunked):
        assert response.status_code == 413, response.text[:200]
        assert response.json() == {"error": {"code": "too_large", "message": "The request is too large."}}
    assert WebhookEvent.select().count() == 0
    assert state(booking) == before and reload(booking).status == "pending_payment"

    # The genuine, normal-sized delivery still goes through afterwards, streamed in chunks too.
    genuine = requests.post(
        live.app_base + WEBHOOK_PATH,
        data=(body[i : i + 1000] for i in range(0, len(body), 1000)),
        headers={"Content-Type": "application/json", "Stripe-Signature": live.sign(body)},
        timeout=30,
    )
    assert genuine.status_code == 200 and genuine.json()["outcome"] == "confirmed"


def test_the_same_event_delivered_concurrently_is_applied_once(live, factory, now):
    booking, intent_id, body, signature = held_success(live, factory, now)
    barrier = threading.Barrier(6)
    results = []

    def deliver():
        barrier.wait()
        response = live.deliver(body, signature=signature)
        results.append((response.status_code, response.json().get("outcome")))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == sorted([(200, "confirmed")] + [(200, "duplicate")] * 5)
    assert WebhookEvent.select().count() == 1
    status, payment_status, _, ledger, available = state(booking)
    assert (status, payment_status) == ("confirmed", "paid")
    assert [row for row in ledger if row[0] == "payment"] == [("payment", intent_id, PRICE)]
    assert available == reload(booking).club_session.max_slots - 1
    confirmed_mail = Notification.select().where(
        (Notification.booking == booking.id) & (Notification.kind == "booking_confirmed")
    )
    assert confirmed_mail.count() == 1
    assert find_violations() == []


def test_a_captured_delivery_replayed_later_is_refused(live, factory, now):
    """Stripe signs every retry afresh; a copy replayed outside the 5-minute tolerance is not Stripe."""
    booking, _intent_id, body, _signature = held_success(live, factory, now)
    before = state(booking)
    stale = live.sign(body, timestamp=int(time.time()) - 600)
    response = live.deliver(body, signature=stale)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_signature"
    assert WebhookEvent.select().count() == 0 and state(booking) == before
    assert live.deliver(body).json()["outcome"] == "confirmed"


def test_a_payment_whose_spot_was_given_away_is_refunded_through_the_webhook(live, factory, now):
    """Invariant 4 on the webhook path: the booking expired, Stripe could not be told in time, the
    freed spot went to someone else, then the player paid. The late webhook refunds, once."""
    club_session = factory.club_session(price=PRICE, max_slots=1)
    late = book_session(factory.user(), club_session, 0, "stripe", now)
    intent_id = card.create_intent(late.user, late.id, now)["payment_intent_id"]
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    saved = stripe_client._state["secret_key"]
    stripe_client._state["secret_key"] = None  # Stripe unreachable when the spot is released
    try:
        other = book_session(factory.user(), club_session, 0, "bank_transfer", later)
    finally:
        stripe_client._state["secret_key"] = saved
    assert reload(late).status == "expired" and other.status == "pending_payment"
    assert live.intent(intent_id)["status"] == "requires_payment_method"  # still open at Stripe

    live.pay(intent_id)  # the player pays on the page they left open
    wait_for(lambda: reload(late).payment_status == "refunded", message="the webhook's automatic refund")
    status, payment_status, _, ledger, available = state(late)
    assert (status, payment_status) == ("expired", "refunded")
    assert [(kind, amount) for kind, _id, amount in ledger] == [
        ("intent", PRICE),
        ("payment", PRICE),
        ("refund", PRICE),
    ]
    assert live.charge(intent_id)["amount_refunded"] == PRICE
    assert reload(other).status == "pending_payment" and available == 0  # the new holder keeps it
    assert reload(late).refund_due_at is None
    assert find_violations() == []

    # Stripe delivers the same event again: nothing changes, no second refund.
    before = state(late)
    event = live.events("payment_intent.succeeded")[0]
    again = live.deliver(event)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert state(late) == before
    assert len(live.client.v1.refunds.list(params={"limit": 10}).data) == 1
