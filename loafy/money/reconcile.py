"""Reconciliation (`loafy payments reconcile`): the ledger compared with Stripe, every difference
listed: missing or different payments and refunds, flagged payments, unfinished refund requests.
"""

import logging
from datetime import UTC, datetime

from loafy.clock import format_vnd as vnd
from loafy.errors import ValidationError
from loafy.models import Booking, LedgerEntry
from loafy.money import ledger, refunds, stripe_client, webhooks
from loafy.money.stripe_client import PaymentUnavailable

log = logging.getLogger(__name__)


def reconcile(since=None):
    """Compare the ledger with Stripe's PaymentIntents (created since `since`); list the differences."""
    import stripe

    since_ts = int(since.replace(tzinfo=UTC).timestamp()) if since else None
    api = stripe_client.client()
    try:
        intents = [
            stripe_client.plain(pi)
            for pi in api.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
            if since_ts is None or pi.created >= since_ts
        ]
        refunds_at_stripe = {}
        for intent in intents:
            if intent["status"] == "succeeded":
                for refund in stripe_client.refunds_of(stripe_client.charge_of(intent)):
                    refunds_at_stripe[refund["id"]] = (refund, intent)
    except stripe.StripeError as exc:
        raise PaymentUnavailable(f"Stripe cannot be reached: {exc.user_message or exc}")

    entries = LedgerEntry.select().where(LedgerEntry.provider == "stripe")
    if since is not None:
        entries = entries.where(LedgerEntry.created_at >= since)
    rows = {(row.kind, row.provider_id): row for row in entries}
    codes = dict(Booking.select(Booking.id, Booking.code).tuples())
    seen = set()
    mismatched = set()  # their refunds are not in the ledger either: the flag says it all
    differences = []

    for intent in intents:
        seen.add(("intent", intent["id"]))
        intent_row = rows.get(("intent", intent["id"]))
        booking_id = intent_row.booking_id if intent_row else webhooks.booking_for(intent)
        if booking_id is None and not (intent.get("metadata") or {}).get("booking_id"):
            continue  # not one of ours
        label = f"{intent['id']} ({codes.get(booking_id, 'no booking')})"
        payment = rows.get(("payment", intent["id"]))
        seen.add(("payment", intent["id"]))
        received = intent.get("amount_received") or intent["amount"]
        if payment is not None and payment.status == ledger.MISMATCH:
            differences.append(f"{label}: flagged, {payment.note}")
            mismatched.add(intent["id"])
        elif intent["status"] == "succeeded":
            if payment is None:
                differences.append(f"{label}: paid {vnd(received)} at Stripe but no payment in the ledger")
            elif payment.amount != received:
                differences.append(
                    f"{label}: paid {vnd(received)} at Stripe but the ledger says {vnd(payment.amount)}"
                )
        elif payment is not None:
            differences.append(
                f"{label}: the ledger has a payment of {vnd(payment.amount)} but Stripe says "
                f"{intent['status']}"
            )

    for refund_id, (refund, intent) in refunds_at_stripe.items():
        seen.add(("refund", refund_id))
        row = rows.get(("refund", refund_id))
        if refund.get("status") not in ledger.COUNTED_REFUND_STATUSES or intent["id"] in mismatched:
            continue
        if row is None:
            differences.append(
                f"refund {refund_id} of {intent['id']}: {vnd(refund['amount'])} at Stripe, not in the ledger"
            )
        elif row.amount != refund["amount"]:
            differences.append(
                f"refund {refund_id} of {intent['id']}: {vnd(refund['amount'])} at Stripe but "
                f"{vnd(row.amount)} in the ledger"
            )

    for request in refunds.pending_refund_requests():
        differences.append(
            f"refund request {request.id} of {vnd(request.amount)} for "
            f"{codes.get(request.booking_id, 'no booking')} ({request.payment_intent_id}) is not finished: "
            "the settle sweep sends it, or records it if Stripe made it already"
        )

    for (kind, provider_id), row in sorted(rows.items(), key=lambda item: item[1].id):
        if (kind, provider_id) in seen:
            continue
        if kind == "intent" and since_ts is not None:
            continue  # an intent older than the window is not listed at Stripe; nothing to compare
        differences.append(
            f"ledger {kind} {provider_id} ({codes.get(row.booking_id, 'no booking')}, {vnd(row.amount)}) "
            "is not at Stripe"
        )
    return differences


def parse_day(text):
    """--since as YYYY-MM-DD (UTC midnight)."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d")
    except (AttributeError, ValueError):
        raise ValidationError("Use a date like 2026-11-01.", field="since")
