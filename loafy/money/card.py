"""Card payments: one Stripe PaymentIntent per booking, created or reused for the player.

Nothing in the database changes unless Stripe answered; the intent is stored in a short
transaction after the call, never around it.
"""

import logging

from peewee import IntegrityError

from loafy.booking import bookings
from loafy.clock import format_local
from loafy.clock import format_vnd as vnd
from loafy.db import db
from loafy.errors import Conflict, PermissionDenied, ValidationError
from loafy.models import Booking, LedgerEntry
from loafy.money import ledger, stripe_client
from loafy.money.stripe_client import (
    CURRENCY,
    MAX_AMOUNT,
    PaymentProviderError,
    PaymentsNotConfigured,
    PaymentUnavailable,
)

log = logging.getLogger(__name__)


# An intent in one of these states can still take the player's card.
REUSABLE_STATUSES = ("requires_payment_method", "requires_confirmation", "requires_action")


CANCELABLE_STATUSES = (*REUSABLE_STATUSES, "requires_capture")


class AmountTooLarge(ValidationError):
    code = "amount_too_large"
    message = (
        f"This booking costs more than {vnd(MAX_AMOUNT)}, the most a card can be charged at once. "
        "Please book fewer guests or pay by bank transfer."
    )


class NotPayable(Conflict):
    code = "not_payable"
    message = "This booking is no longer waiting for payment."


class NotCardPayment(Conflict):
    code = "not_card_payment"
    message = "This booking is not paid by card."


class AlreadyPaid(Conflict):
    code = "already_paid"
    message = "Your payment went through; we are confirming your booking."


def check_payable(booking, now):
    """Why this booking cannot be paid by card now, as a typed refusal; None when it can."""
    if booking.payment_method != "stripe":
        raise NotCardPayment()
    if not stripe_client.card_configured():
        raise PaymentsNotConfigured()
    if booking.status != "pending_payment" or booking.is_overdue(now):
        if booking.status == "confirmed":
            raise NotPayable("This booking is already confirmed.", code="already_confirmed")
        raise NotPayable()
    if booking.amount <= 0:
        raise NotPayable("This booking has nothing to pay.", code="nothing_to_pay")
    if booking.amount > MAX_AMOUNT:
        raise AmountTooLarge()


def create_intent(actor, booking_id, now):
    """One PaymentIntent per booking, reused while it can still take a card; returns a dict.

    Nothing in the database changes unless Stripe answered: if it is unreachable the player is
    told how long the spot stays held.
    """
    import stripe

    if actor is None or not getattr(actor, "is_authenticated", True):
        raise PermissionDenied("Please sign in to pay.")
    booking = bookings.get_own_booking(booking_id, actor)
    check_payable(booking, now)
    api = stripe_client.client()
    previous = booking.stripe_payment_intent_id
    try:
        intent = None
        if previous:
            current = stripe_client.plain(api.v1.payment_intents.retrieve(previous))
            if _reusable(current, booking):
                intent = current
            elif current["status"] == "succeeded" and ledger.amount_difference(current, booking.amount):
                pass  # paid the wrong amount: that paid nothing (kept, flagged); a fresh intent pays
            elif current["status"] in ("succeeded", "processing"):
                raise AlreadyPaid()
            elif current["status"] != "canceled":
                # A declined attempt: start afresh (localstripe cannot retry a declined intent, and
                # a clean intent is as good on real Stripe).
                cancel_quietly(api, previous)
        if intent is None:
            attempt = (
                LedgerEntry.select()
                .where((LedgerEntry.booking == booking.id) & (LedgerEntry.kind == "intent"))
                .count()
                + 1
            )
            intent = stripe_client.plain(
                api.v1.payment_intents.create(
                    params={
                        "amount": booking.amount,
                        "currency": CURRENCY,
                        "payment_method_types": ["card"],
                        "metadata": {"booking_id": str(booking.id), "booking_code": booking.code},
                    },
                    # Two tabs creating at once get the same intent from Stripe.
                    options={"idempotency_key": f"loafy-intent-{booking.id}-{booking.code}-{attempt}"},
                )
            )
    except stripe.StripeError as exc:
        if stripe_client.unreachable(exc):
            log.warning("Stripe unreachable creating an intent for %s: %s", booking.code, exc)
            held = format_local(booking.payment_deadline, "%H:%M")
            raise PaymentUnavailable(
                f"Payment is temporarily unavailable; your spot is held until {held}." if held else None
            )
        log.error("Stripe refused an intent for %s: %s", booking.code, exc)
        raise PaymentProviderError()

    if intent["id"] != previous:
        intent = _store_intent(booking, previous, intent, now)
    else:
        _record_intent(booking, intent, now)
    return {
        "client_secret": intent["client_secret"],
        "payment_intent_id": intent["id"],
        "amount": intent["amount"],
        "currency": CURRENCY,
    }


def _reusable(intent, booking):
    return (
        intent["status"] in REUSABLE_STATUSES
        and not intent.get("last_payment_error")
        and intent.get("amount") == booking.amount
        and intent.get("currency") == CURRENCY
    )


def _store_intent(booking, previous, intent, now):
    """Point the booking at its new intent unless someone else changed it first."""
    import stripe

    with db.atomic():
        changed = (
            Booking.update(stripe_payment_intent_id=intent["id"], updated_at=now)
            .where(
                (Booking.id == booking.id)
                & (Booking.status == "pending_payment")
                & (
                    Booking.stripe_payment_intent_id.is_null()
                    if previous is None
                    else (Booking.stripe_payment_intent_id == previous)
                )
            )
            .execute()
        )
        if changed:
            _record_intent(booking, intent, now)
    if changed:
        log.info("intent %s created for %s", intent["id"], booking.code)
        return intent
    # Lost a race: another tab, or the booking expired meanwhile.
    current = Booking.get_by_id(booking.id)
    if intent["id"] != current.stripe_payment_intent_id:
        cancel_quietly(stripe_client.client(), intent["id"])  # ours must not stay open
    # else: the other tab stored this very intent (the same idempotency key): keep it.
    if current.status != "pending_payment" or not current.stripe_payment_intent_id:
        raise NotPayable()
    if intent["id"] == current.stripe_payment_intent_id:
        return intent
    try:
        return stripe_client.plain(
            stripe_client.client().v1.payment_intents.retrieve(current.stripe_payment_intent_id)
        )
    except stripe.StripeError:
        raise PaymentUnavailable()


def _record_intent(booking, intent, now):
    try:
        with db.atomic():
            LedgerEntry.create(
                booking=booking.id,
                kind="intent",
                provider="stripe",
                provider_id=intent["id"],
                amount=intent["amount"],
                currency=intent.get("currency") or CURRENCY,
                status=intent["status"],
                created_at=now,
            )
    except IntegrityError:
        pass  # recorded already


def cancel_quietly(api, intent_id):
    import stripe

    try:
        api.v1.payment_intents.cancel(intent_id)
        return True
    except stripe.StripeError as exc:
        log.info("could not cancel intent %s: %s", intent_id, exc)
        return False
