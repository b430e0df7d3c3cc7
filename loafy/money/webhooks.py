"""Stripe's webhooks: verified, recorded once by event id, the intent fetched again from Stripe
(nothing in the body is trusted), then applied in one short transaction.
"""

import logging
import time

from peewee import IntegrityError

from loafy.booking import bookings
from loafy.db import db
from loafy.errors import LoafyError, as_id
from loafy.models import Booking, LedgerEntry, WebhookEvent
from loafy.money import ledger, stripe_client
from loafy.money.stripe_client import PaymentsNotConfigured, PaymentUnavailable
from loafy.passes import card as pass_card
from loafy.passes import renewal as pass_renewal

log = logging.getLogger(__name__)


# Stripe's own tolerance refuses signatures older than 5 minutes; one from further ahead than this
# (a clock a little fast is fine) is refused too: a signed body must not be replayable for ever.
WEBHOOK_FUTURE_TOLERANCE_SECONDS = 60


class BadSignature(LoafyError):
    code = "bad_signature"
    status = 400
    message = "The webhook signature is not valid."


class StaleSignature(BadSignature):
    code = "bad_timestamp"
    message = "The webhook signature's timestamp is in the future."


class BadPayload(LoafyError):
    code = "bad_payload"
    status = 400
    message = "The webhook body is not a Stripe event."


def _signed_at(signature):
    """The `t=` of a Stripe-Signature header (unix seconds), None when there is none."""
    for item in (signature or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return None


def handle_webhook(payload, signature, now, wall_clock=time.time):
    """Verify, record once by event id, re-fetch from Stripe, apply; all in one transaction.

    Returns what happened ("duplicate", "ignored", or record_payment's outcome, "mismatch",
    "failed", "canceled", "synced"). Raises BadSignature/BadPayload (400) or Unavailable (503,
    Stripe retries). The signature's age is measured on the wall clock, as Stripe signs it, not on
    the business `now`.
    """
    import stripe

    secret = stripe_client.webhook_secret()
    if not secret:
        raise PaymentsNotConfigured("Stripe webhooks are not configured.")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret)
    except stripe.SignatureVerificationError:
        raise BadSignature()
    except (ValueError, TypeError, KeyError):
        raise BadPayload()
    signed_at = _signed_at(signature)
    if signed_at is None or signed_at > wall_clock() + WEBHOOK_FUTURE_TOLERANCE_SECONDS:
        raise StaleSignature()
    data = stripe_client.plain(event)
    event_id, event_type = data.get("id"), data.get("type")
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(obj, dict)):
        raise BadPayload()
    if WebhookEvent.get_or_none(WebhookEvent.event_id == event_id) is not None:
        return "duplicate"  # cheap exit before calling Stripe; the insert below is the real guard
    if event_type in pass_renewal.EVENTS:  # passes: auto-renewal by subscription
        return pass_renewal.handle_event(event_id, event_type, obj, now)

    intent = charge = None
    refunds = []
    try:
        intent_id = None
        if event_type.startswith("payment_intent."):
            intent_id = obj.get("id")
        elif event_type.startswith("charge.") and isinstance(obj.get("id"), str):
            fetched = stripe_client.fetch(lambda c: c.v1.charges.retrieve(obj["id"]))
            intent_id = fetched.get("payment_intent") if fetched else None
        if isinstance(intent_id, str) and intent_id:
            intent = stripe_client.fetch(lambda c: c.v1.payment_intents.retrieve(intent_id))
        if intent and intent["status"] == "succeeded":
            charge = stripe_client.charge_of(intent)
            refunds = stripe_client.refunds_of(charge)
    except stripe.StripeError as exc:
        log.warning("Stripe unreachable handling %s %s: %s", event_type, event_id, exc)
        raise PaymentUnavailable("Stripe could not be reached; the event will be retried.")
    booking_id = booking_for(intent) if intent else None
    pass_id = pass_card.pass_for(intent) if intent and booking_id is None else None  # passes

    with db.atomic():
        try:
            with db.atomic():
                WebhookEvent.create(
                    event_id=event_id, provider="stripe", type=event_type[:100], received_at=now
                )
        except IntegrityError:
            return "duplicate"
        if booking_id is None and pass_id is not None:  # passes: a pass paid by card
            outcome = pass_card.apply_intent(pass_id, intent, [(r, intent["id"]) for r in refunds], now)
            log.info("webhook %s %s for pass %s: %s", event_type, event_id, pass_id, outcome)
            return outcome
        if booking_id is None:
            log.info("webhook %s %s: no booking of ours; ignored", event_type, event_id)
            return "ignored"
        outcome = apply_intent(booking_id, intent, refunds, now)
    log.info("webhook %s %s for booking %s: %s", event_type, event_id, booking_id, outcome)
    return outcome


def booking_for(intent):
    """The booking an intent belongs to: by our ledger first, else by the id we put in metadata."""
    row = LedgerEntry.get_or_none(
        (LedgerEntry.provider == "stripe")
        & (LedgerEntry.kind == "intent")
        & (LedgerEntry.provider_id == intent["id"])
    )
    if row is not None and row.booking_id:
        return row.booking_id
    booking = Booking.get_or_none(Booking.stripe_payment_intent_id == intent["id"])
    if booking is not None:
        return booking.id
    number = as_id(str((intent.get("metadata") or {}).get("booking_id") or ""))
    if number is not None and Booking.get_or_none(Booking.id == number) is not None:
        return number
    return None


def apply_intent(booking_id, intent, refunds, now, actor=None):
    """Bring a booking in line with what Stripe says about one of its intents (idempotent)."""
    status = intent["status"]
    outcome = status
    if status == "succeeded":
        booking = Booking.get_by_id(booking_id)
        difference = ledger.amount_difference(intent, booking.amount)
        if difference:
            outcome = ledger.record_mismatch(booking, intent, difference, now)
        else:
            outcome = bookings.record_payment(
                booking_id,
                provider="stripe",
                provider_id=intent["id"],
                amount=booking.amount,
                now=now,
                actor=actor,
            )
    elif status == "requires_payment_method" and intent.get("last_payment_error"):
        # Declined: the booking stays pending until its deadline; the player may try again.
        Booking.update(payment_status="failed", updated_at=now).where(
            (Booking.id == booking_id)
            & (Booking.status == "pending_payment")
            & (Booking.payment_status == "unpaid")
            & (Booking.stripe_payment_intent_id == intent["id"])
        ).execute()
        outcome = "failed"
    # A flagged payment counts for nothing, and so do refunds of it (staff settle those at Stripe).
    if (
        refunds
        and not ledger.is_flagged(intent["id"])
        and ledger.record_refunds(booking_id, [(r, intent["id"]) for r in refunds], actor, now)
    ):
        outcome = "refunded" if outcome == "duplicate" else f"{outcome}+refunded"
    return outcome
