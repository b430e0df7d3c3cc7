"""Settling: a booking's money made to match its state (the settle job and its every-five-minutes
sweep): open intents of dead bookings cancelled, what is owed back refunded, refund requests sent.
"""

import logging

from loafy.models import Booking, LedgerEntry, RefundRequest
from loafy.money import card, ledger, refunds, stripe_client, webhooks
from loafy.money.stripe_client import PaymentProviderError

log = logging.getLogger(__name__)


def settle_booking(booking_id, now):
    """Make a booking's money match its state: cancel an open intent, refund what is owed back.

    Idempotent and safe to run twice; Stripe errors propagate so the job can be retried.
    """
    booking = Booking.get_or_none(Booking.id == booking_id)
    if booking is None:
        return "missing"
    outcome = "nothing"
    if stripe_client.has_secret_key() and refunds.pending_refund_requests(booking.id).exists():
        # Asked for, committed, then the process died or Stripe was down: send them now.
        refunds.send_refund_requests(booking.id, now)
        outcome = "refunded"
        booking = Booking.get_by_id(booking.id)
    intent_id = booking.stripe_payment_intent_id
    if (
        booking.status in ("expired", "cancelled")
        and intent_id
        and stripe_client.has_secret_key()
        and not ledger.payment_recorded(intent_id)
    ):
        intent = stripe_client.fetch(lambda c: c.v1.payment_intents.retrieve(intent_id))
        if intent and intent["status"] in card.CANCELABLE_STATUSES:
            if card.cancel_quietly(stripe_client.client(), intent["id"]):
                outcome = "intent_cancelled"
                _note_intent_closed(intent_id)
        elif intent and intent["status"] == "canceled":
            _note_intent_closed(intent_id)
        elif intent and intent["status"] == "succeeded":
            # Paid at the last moment: record it now rather than waiting for the webhook (invariant 4).
            outcome = webhooks.apply_intent(
                booking.id, intent, stripe_client.refunds_of(stripe_client.charge_of(intent)), now
            )
        booking = Booking.get_by_id(booking.id)
    if booking.refund_due_at is not None and booking.payment_status != "refunded":
        owed = ledger.owed_back(booking)
        if owed == 0:
            Booking.update(refund_due_at=None, updated_at=now).where(Booking.id == booking.id).execute()
        elif stripe_client.has_secret_key() and refunds.refundable_charges(booking):
            refunded = refunds.refund_card_payments(booking, owed, None, now, reason="automatic")
            outcome = "refunded" if refunded else outcome
        else:
            log.warning(
                "%s is owed %s back without a card payment: give it back, then record it on its page",
                booking.code,
                owed,
            )
            outcome = "manual_refund_needed"
    return outcome


def _note_intent_closed(intent_id):
    """Mark the intent's ledger row canceled, so the sweep stops asking Stripe about it."""
    LedgerEntry.update(status="canceled").where(
        (LedgerEntry.provider == "stripe")
        & (LedgerEntry.kind == "intent")
        & (LedgerEntry.provider_id == intent_id)
    ).execute()


def settle_due(now):
    """Catch-up sweep: every booking still owed money back, or expired/cancelled with an intent that
    may still be open at Stripe (its settle job lost, say, while Redis was down)."""
    import stripe

    stripe_rows = LedgerEntry.select(LedgerEntry.provider_id).where(LedgerEntry.provider == "stripe")
    not_closed = stripe_rows.where((LedgerEntry.kind == "intent") & (LedgerEntry.status != "canceled"))
    paid = stripe_rows.where(LedgerEntry.kind == "payment")
    refund_due = Booking.refund_due_at.is_null(False) & (Booking.payment_status != "refunded")
    open_intent = (
        Booking.status.in_(("expired", "cancelled"))
        & Booking.stripe_payment_intent_id.in_(not_closed)
        & Booking.stripe_payment_intent_id.not_in(paid)
    )
    requested = Booking.id.in_(
        RefundRequest.select(RefundRequest.booking).where(RefundRequest.status == "requested")
    )
    query = Booking.select(Booking.id).where(refund_due | open_intent | requested).order_by(Booking.id)
    done = {}
    for booking_id in [b.id for b in query]:
        try:
            done[booking_id] = settle_booking(booking_id, now)
        except (stripe.StripeError, PaymentProviderError) as exc:
            log.warning("settling booking %s failed: %s", booking_id, exc)
    return done
