"""Stripe slow or unreachable: bounded waits, a clear message, the spot stays held, nothing recorded.

"Slow" is a real local server that accepts the connection and then answers nothing for longer
than the client timeout (STRIPE_TIMEOUT_SECONDS, set small here).
"""

import hashlib
import hmac
import json
import time

import pytest

from loafy.booking.bookings import book_session
from loafy.checks import find_violations
from loafy.models import Booking, ClubSession, LedgerEntry, WebhookEvent
from tests.fault_fixtures import SlowServer
from tests.helpers import csrf_token, login
from tests.stripe_fixtures import WEBHOOK_SECRET, free_port, stripe_settings

TIMEOUT = 0.5
RETRIES = 2  # the client's default: every call is tried 1 + 2 times


@pytest.fixture
def slow_stripe():
    with SlowServer(delay=30) as server:
        yield server


@pytest.fixture
def app_config(app_config, slow_stripe):
    return {
        **app_config,
        **stripe_settings(slow_stripe.url),
        "STRIPE_TIMEOUT_SECONDS": str(TIMEOUT),
        "STRIPE_MAX_NETWORK_RETRIES": RETRIES,
    }


def held_state(booking):
    """The booking row and its session's free slots: what a failed payment attempt must not change."""
    return (
        Booking.select().where(Booking.id == booking.id).dicts().get(),
        ClubSession.get_by_id(booking.club_session_id).available_slots,
    )


def post_intent(client, booking_id):
    return client.post(
        "/api/payments/stripe/intent",
        json={"booking_id": booking_id},
        headers={"X-CSRFToken": csrf_token(client)},
    )


def test_slow_stripe_times_out_with_a_clear_message_and_the_spot_stays_held(
    factory, now, client, slow_stripe
):
    club_session = factory.club_session(price=150_000, max_slots=4)
    booking = book_session(factory.user(), club_session, 1, "stripe", now)
    before = held_state(booking)
    assert before[1] == 2 and before[0]["status"] == "pending_payment"
    login(client, booking.user)
    token = csrf_token(client)

    started = time.monotonic()
    response = client.post(
        "/api/payments/stripe/intent", json={"booking_id": booking.id}, headers={"X-CSRFToken": token}
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.get_json() == {
        "error": {
            "code": "payment_unavailable",
            # The deadline, 03:30 UTC, is 10:30 in Ho Chi Minh City.
            "message": "Payment is temporarily unavailable; your spot is held until 10:30.",
        }
    }
    # Each attempt waited out the timeout (the server really was slow) and no longer: three tries
    # of 0.5 s plus the client's back-off between them, far below a web worker's 30 s limit.
    assert slow_stripe.accepted == 1 + RETRIES
    assert (1 + RETRIES) * TIMEOUT <= elapsed < 8, elapsed
    assert held_state(booking) == before  # still pending, same deadline, slots still held
    assert LedgerEntry.select().count() == 0 and find_violations() == []


def test_slow_stripe_during_a_webhook_answers_503_so_stripe_retries(factory, now, client, slow_stripe):
    booking = book_session(factory.user(), factory.club_session(price=150_000), 0, "stripe", now)
    before = held_state(booking)
    body = json.dumps(
        {
            "id": "evt_slow_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_slow_1", "object": "payment_intent"}},
        }
    ).encode()
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

    started = time.monotonic()
    response = client.post(
        "/api/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={timestamp},v1={digest}"},
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_unavailable"
    assert elapsed < 8, elapsed
    assert WebhookEvent.select().count() == 0  # not recorded: Stripe's retry is processed in full
    assert held_state(booking) == before


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "121"])
def test_a_bad_stripe_timeout_stops_start_up_with_one_line(timeout):
    from loafy.config import load_config
    from loafy.errors import ConfigError

    with pytest.raises(ConfigError, match="STRIPE_TIMEOUT_SECONDS"):
        load_config({"LOAFY_ENV": "testing", "STRIPE_TIMEOUT_SECONDS": timeout})


def test_unreachable_stripe_fails_fast(factory, now, app):
    """Nothing listening at all: connection refused, retried, and answered well within the timeout."""
    from loafy.money import card, stripe_client

    stripe_client._state.update(api_base=f"http://127.0.0.1:{free_port()}", client=None)
    booking = book_session(factory.user(), factory.club_session(price=150_000), 0, "stripe", now)
    before = held_state(booking)
    started = time.monotonic()
    with app.app_context(), pytest.raises(stripe_client.PaymentUnavailable, match="held until 10:30"):
        card.create_intent(booking.user, booking.id, now)
    assert time.monotonic() - started < 8
    assert held_state(booking) == before
