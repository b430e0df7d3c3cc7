"""Stripe unreachable: the player is told how long the spot is held, and nothing changes."""

import hashlib
import hmac
import json
import time

import pytest

from loafy.booking.bookings import book_session
from loafy.models import Booking, LedgerEntry, WebhookEvent
from loafy.money import card, stripe_client
from tests.helpers import csrf_token, login, reload
from tests.stripe_fixtures import WEBHOOK_SECRET, free_port, stripe_settings


@pytest.fixture
def app_config(app_config):
    # Nothing listens on this port: every Stripe call fails to connect.
    return {
        **app_config,
        **stripe_settings(f"http://127.0.0.1:{free_port()}"),
        "STRIPE_MAX_NETWORK_RETRIES": 0,
    }


def test_stripe_down_when_creating_an_intent(factory, now, client):
    club_session = factory.club_session(price=150_000)
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    before = Booking.select().where(Booking.id == booking.id).dicts().get()
    login(client, booking.user)
    response = client.post(
        "/api/payments/stripe/intent",
        json={"booking_id": booking.id},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "payment_unavailable"
    # 03:30 UTC deadline = 10:30 in Ho Chi Minh City.
    assert error["message"] == "Payment is temporarily unavailable; your spot is held until 10:30."
    assert Booking.select().where(Booking.id == booking.id).dicts().get() == before
    assert LedgerEntry.select().count() == 0
    assert reload(booking).stripe_payment_intent_id is None

    with pytest.raises(stripe_client.PaymentUnavailable):
        card.create_intent(booking.user, booking.id, now)


def test_stripe_down_when_a_webhook_arrives_answers_503(factory, now, client):
    body = json.dumps(
        {
            "id": "evt_down_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_unknown", "object": "payment_intent"}},
        }
    ).encode()
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    response = client.post(
        "/api/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={timestamp},v1={digest}"},
    )
    assert response.status_code == 503  # Stripe will retry
    assert WebhookEvent.select().count() == 0  # not recorded: the retry is processed in full
