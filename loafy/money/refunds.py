"""Refunds: card refunds through Stripe and money staff gave back by hand.

A card refund is a request recorded and committed first, then sent to Stripe outside any
transaction, then its result recorded: a crash between leaves a request the settle sweep finishes.
"""

import logging

from peewee import IntegrityError, fn

from loafy import audit, notifications
from loafy.booking import bookings
from loafy.db import db
from loafy.errors import Conflict, PermissionDenied, ValidationError
from loafy.locking import lock_booking
from loafy.models import Booking, LedgerEntry, RefundRequest
from loafy.money import ledger, stripe_client
from loafy.money.stripe_client import PaymentProviderError, PaymentUnavailable

log = logging.getLogger(__name__)


class NothingToRefund(Conflict):
    code = "nothing_to_refund"
    message = "There is no card payment left to refund on this booking."


class InvalidRefundAmount(ValidationError):
    code = "invalid_refund_amount"


MANUAL_REFUND_METHODS = ("cash", "bank_transfer")


def record_manual_refund(actor, booking_id, method, now):
    """An admin gave back, in cash or by transfer, what a booking is owed (money taken the same
    way: card payments go back through Stripe). Records it once and clears the refund-due mark.
    Returns the amount recorded."""
    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can record a refund.")
    if method not in MANUAL_REFUND_METHODS:
        raise ValidationError("Choose cash or bank transfer.", field="method")
    booking = bookings.get_booking(booking_id, actor)
    with db.atomic():
        booking = lock_booking(booking)
        refusal = manual_refund_refusal(actor, booking)
        if refusal is not None:
            raise refusal
        owed = ledger.owed_back(booking)
        provider_id = (
            f"{method}:refund:{booking.code}:{ledger.ledger_totals(booking.id)[1]}"  # once per state
        )
        LedgerEntry.create(
            booking=booking.id,
            kind="refund",
            provider=method,
            provider_id=provider_id,
            amount=owed,
            status="succeeded",
            note="given back by staff",
            recorded_by=actor.id,
            created_at=now,
        )
        notifications.refund_recorded(booking, provider_id, now)
        ledger.follow_ledger(booking.id, now)
    log.info("%s: %s given back by %s, recorded by user %s", booking.code, owed, method, actor.id)
    return owed


def manual_refund_refusal(actor, booking):
    """Why `actor` may not record giving `booking`'s money back by hand; None when they may."""
    if actor is None or not getattr(actor, "is_admin", False):
        return PermissionDenied("Only an admin can record a refund.")
    if ledger.card_payments(booking.id).exists():
        return Conflict("This booking was paid by card: refund it with Refund, through Stripe.", code="card")
    if ledger.owed_back(booking) <= 0:
        return NothingToRefund("Nothing is owed back on this booking.")
    return None


def card_refund_refusal(actor, booking):
    """Why `actor` may not refund `booking` by card; None when the ledger holds card money not yet
    refunded (Stripe, asked by refund_booking, has the last word on how much)."""
    if actor is None or not getattr(actor, "is_admin", False):
        return PermissionDenied("Only an admin can refund a payment.")
    paid = ledger.card_payments(booking.id).select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0)).scalar()
    refunded = (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(
            (LedgerEntry.booking == booking.id)
            & (LedgerEntry.kind == "refund")
            & (LedgerEntry.provider == "stripe")
            & LedgerEntry.status.in_(ledger.COUNTED_REFUND_STATUSES)
        )
        .scalar()
    )
    if int(paid) - int(refunded) <= 0:
        return NothingToRefund()
    return None


def refundable_charges(booking):
    """[(intent id, charge, refundable amount)] for the booking's card payments, newest first, from Stripe."""
    intent_ids = [row.provider_id for row in ledger.card_payments(booking.id).order_by(LedgerEntry.id.desc())]
    found = []
    for intent_id in intent_ids:
        intent = stripe_client.plain(stripe_client.client().v1.payment_intents.retrieve(intent_id))
        charge = stripe_client.charge_of(intent)
        if charge:
            found.append((intent_id, charge, charge["amount"] - (charge.get("amount_refunded") or 0)))
    return found


def refund_card_payments(booking, amount, actor, now, reason):
    """Refund `amount` across the booking's card payments: record the requests and commit, then
    call Stripe, then record what it did. Returns the amount the requests asked for."""
    charges = refundable_charges(booking)  # read from Stripe, before any transaction
    requested = request_refunds(booking, charges, amount, actor, now, reason)
    send_refund_requests(booking.id, now)
    # Every refund on these charges, not only this call's: one that a worker made and died before
    # recording is recorded now (the ledger keys refunds by Stripe id, so none counts twice).
    items = [
        (refund, intent_id) for intent_id, charge, _ in charges for refund in stripe_client.refunds_of(charge)
    ]
    ledger.record_refunds(booking.id, items, actor, now)
    log.info("refund of %s of %s (%s) for %s", requested, amount, reason, booking.code)
    return requested


def request_refunds(booking, charges, amount, actor, now, reason):
    """The refund requests for `amount`, newest payment first, committed in one transaction with
    the staff's audit row. The same request twice (a double click, two sweeps) is one row."""
    left, parts = amount, []
    for intent_id, charge, refundable in charges:
        part = min(left, refundable)
        if part > 0:
            parts.append((intent_id, _refund_key(intent_id, charge, part), part))
            left -= part
    with db.atomic():
        for intent_id, key, part in parts:
            try:
                with db.atomic():
                    RefundRequest.create(
                        booking=booking.id,
                        payment_intent_id=intent_id,
                        amount=part,
                        idempotency_key=key,
                        reason=reason[:50],
                        requested_by=actor.id if actor else None,
                        created_at=now,
                    )
            except IntegrityError:
                pass  # asked for already: it is sent once
        if actor is not None:
            details = {"code": booking.code, "amount": amount - left}
            audit.record(actor, "booking.refund", "booking", booking.id, details, now)
    return amount - left


def _refund_key(intent_id, charge, part):
    # Derived from Stripe's own state: a retry of the same refund is the same refund.
    return f"loafy-refund-{intent_id}-{charge.get('amount_refunded') or 0}-{part}"


def pending_refund_requests(booking_id=None):
    """Refunds asked for and not yet sent to Stripe (a crash or an outage between): the sweep's work."""
    query = RefundRequest.select().where(RefundRequest.status == "requested").order_by(RefundRequest.id)
    return query if booking_id is None else query.where(RefundRequest.booking == booking_id)


def send_refund_requests(booking_id, now):
    """Send the booking's pending refund requests to Stripe, each outside any transaction, and
    record each result in a short one. A request already carried out at Stripe (the process died
    before recording it) is found there by its id and recorded, never sent twice. Raises Stripe's
    error when it cannot be reached (the requests stay, for the sweep); a refusal marks the request
    failed and is raised as PaymentProviderError."""
    import stripe

    refused = None
    for request in pending_refund_requests(booking_id):
        try:
            refund = _refund_at_stripe(request) or stripe_client.plain(
                stripe_client.client().v1.refunds.create(
                    params={
                        "payment_intent": request.payment_intent_id,
                        "amount": request.amount,
                        "metadata": {
                            "booking_id": str(booking_id),
                            "refund_request": str(request.id),
                            "reason": request.reason,
                        },
                    },
                    options={"idempotency_key": request.idempotency_key},
                )
            )
        except stripe.StripeError as exc:
            if stripe_client.unreachable(exc):
                raise
            log.error("Stripe refused refund request %s: %s", request.id, exc)
            RefundRequest.update(status="failed", error=str(exc)[:1000], finished_at=now).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == "requested")
            ).execute()
            refused = exc
            continue
        with db.atomic():
            ledger.record_refunds(
                booking_id, [(refund, request.payment_intent_id)], request.requested_by, now
            )
            RefundRequest.update(status="sent", stripe_refund_id=refund["id"], finished_at=now).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == "requested")
            ).execute()
    if refused is not None:
        raise PaymentProviderError("Stripe refused the refund: nothing was refunded.")


def _refund_at_stripe(request):
    """The refund Stripe already made for this request (by the request id in its metadata), or None."""
    intent = stripe_client.fetch(lambda c: c.v1.payment_intents.retrieve(request.payment_intent_id))
    for refund in stripe_client.refunds_of(stripe_client.charge_of(intent)) if intent else []:
        if (refund.get("metadata") or {}).get("refund_request") == str(request.id):
            return refund
    return None


def refund_booking(actor, booking_id, now, amount=None):
    """An admin refunds a card payment, in full (default) or in part; returns the booking."""
    import stripe

    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can refund a payment.")
    booking = bookings.get_booking(booking_id, actor)
    refusal = card_refund_refusal(actor, booking)
    if refusal is not None:
        raise refusal  # before asking Stripe: the ledger holds no card money to give back
    try:
        refundable = sum(part for _, _, part in refundable_charges(booking))
    except stripe.StripeError as exc:
        if stripe_client.unreachable(exc):
            raise PaymentUnavailable("Stripe cannot be reached; nothing was refunded. Please try again.")
        log.error("Stripe refused to show %s's payments: %s", booking.code, exc)
        raise PaymentProviderError("Stripe refused the refund: nothing was refunded.")
    if refundable <= 0:
        raise NothingToRefund()
    if amount is None:
        amount = refundable
    elif isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= refundable:
        raise InvalidRefundAmount(
            f"Enter a whole amount in VND from 1 to {refundable:,}.".replace(",", "."), field="amount"
        )
    try:
        refund_card_payments(booking, amount, actor, now, reason="staff refund")
    except stripe.StripeError as exc:
        if stripe_client.unreachable(exc):
            log.warning("Stripe unreachable refunding %s: %s; the sweep will send it", booking.code, exc)
            raise PaymentUnavailable(
                "Stripe did not answer. The refund is saved and will be sent automatically within minutes."
            )
        log.error("Stripe refused a refund for %s: %s", booking.code, exc)
        raise PaymentProviderError("Stripe refused the refund: nothing was refunded.")
    return Booking.get_by_id(booking.id)
