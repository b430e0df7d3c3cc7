"""The ledger: every money movement once, keyed by its provider id (invariant 3), and what it adds up to.

One definition of what counts: a payment counts when it succeeded (a card payment of the wrong
amount or currency is kept, flagged `mismatch`, and counts for nothing); a refund counts when it
succeeded or is pending. The booking's totals, the refund it is owed, and the revenue on the staff
dashboard are all read from here.
"""

import logging

from peewee import Case, IntegrityError, fn

from loafy import notifications
from loafy.clock import format_vnd as vnd
from loafy.db import db
from loafy.locking import lock_session
from loafy.models import Booking, LedgerEntry
from loafy.money.stripe_client import CURRENCY

log = logging.getLogger(__name__)


# Refund states that mean the money went (or is going) back.
COUNTED_REFUND_STATUSES = ("succeeded", "pending")


# A card payment whose amount or currency is not what its booking owes: kept, flagged, never counted.
MISMATCH = "mismatch"


def received(intent):
    """(amount, currency) Stripe took for a succeeded intent; amount None when it is not a number."""
    raw = intent.get("amount_received") or intent.get("amount")
    try:
        amount = None if isinstance(raw, bool) else int(raw)
    except (TypeError, ValueError):
        amount = None
    return amount, str(intent.get("currency") or "").lower()


def amount_difference(intent, owed):
    """Why a succeeded intent does not pay `owed` VND (its amount or currency differ); None if it does."""
    amount, currency = received(intent)
    if currency != CURRENCY:
        return f"Stripe took {amount} {currency.upper() or '(no currency)'}; the booking costs {vnd(owed)}"
    if amount != owed:
        return f"Stripe took {vnd(amount or 0)}; the booking costs {vnd(owed)}"
    return None


def record_mismatch(booking, intent, difference, now):
    """Keep a payment that does not match what is owed, flagged: it confirms nothing, counts as no
    payment, and staff see it (booking page, dashboard, `loafy payments reconcile`). Once per intent."""
    amount, currency = received(intent)
    try:
        with db.atomic():
            LedgerEntry.create(
                booking=booking.id,
                kind="payment",
                provider="stripe",
                provider_id=intent["id"],
                amount=max(0, amount or 0),
                currency=(currency or "?")[:3],
                status=MISMATCH,
                note=f"not counted: {difference}"[:1000],
                created_at=now,
            )
    except IntegrityError:
        return "duplicate"
    log.warning("%s: card payment %s does not match: %s", booking.code, intent["id"], difference)
    return "mismatch"


def is_flagged(intent_id):
    return (
        LedgerEntry.select()
        .where(
            (LedgerEntry.kind == "payment")
            & (LedgerEntry.provider == "stripe")
            & (LedgerEntry.provider_id == intent_id)
            & (LedgerEntry.status == MISMATCH)
        )
        .exists()
    )


def mismatched_payments(since=None):
    """The flagged card payments (newest first), with their bookings: what staff must look at."""
    query = (
        LedgerEntry.select(LedgerEntry, Booking)
        .join(Booking)
        .where((LedgerEntry.kind == "payment") & (LedgerEntry.status == MISMATCH))
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
    )
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    return query


# What counts, once: the ledger's totals, a booking's refund and the dashboard's revenue use these.
COUNTED_PAYMENT = (LedgerEntry.kind == "payment") & (LedgerEntry.status == "succeeded")
COUNTED_REFUND = (LedgerEntry.kind == "refund") & LedgerEntry.status.in_(COUNTED_REFUND_STATUSES)


def net_received_since(*starts):
    """Money received minus money refunded (whole VND), every provider, from each of `starts` on:
    one query however many periods (read from the ledger's revenue index alone)."""
    signed = Case(None, [(LedgerEntry.kind == "refund", LedgerEntry.amount * -1)], LedgerEntry.amount)
    sums = [
        fn.COALESCE(fn.SUM(Case(None, [(LedgerEntry.created_at >= start, signed)], 0)), 0).alias(f"p{n}")
        for n, start in enumerate(starts)
    ]
    row = (
        LedgerEntry.select(*sums)
        .where((COUNTED_PAYMENT | COUNTED_REFUND) & (LedgerEntry.created_at >= min(starts)))
        .dicts()
        .get()
    )
    return [int(row[f"p{n}"] or 0) for n in range(len(starts))]


def ledger_totals(booking_id):
    """(paid, refunded) for a booking from the ledger, every provider, as counted above."""

    def total(counted):
        return (
            LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
            .where((LedgerEntry.booking == booking_id) & counted)
            .scalar()
        )

    return int(total(COUNTED_PAYMENT)), int(total(COUNTED_REFUND))


def owed_back(booking):
    """Money to return: all of it for a cancelled/expired booking, the excess for a confirmed one."""
    paid, refunded = ledger_totals(booking.id)
    kept = booking.amount if booking.status == "confirmed" else 0
    return max(0, paid - refunded - kept)


def record_refunds(booking_id, items, actor, now):
    """Ledger rows for refunds (by Stripe id, once); then the booking's payment status follows.

    Returns how many rows were new.
    """
    booking = Booking.get_by_id(booking_id)
    new = 0
    with db.atomic():
        lock_session(booking.club_session_id)
        for refund, intent_id in items:
            if refund.get("status") not in COUNTED_REFUND_STATUSES:
                continue
            try:
                with db.atomic():
                    LedgerEntry.create(
                        booking=booking_id,
                        kind="refund",
                        provider="stripe",
                        provider_id=refund["id"],
                        amount=refund["amount"],
                        currency=refund.get("currency") or CURRENCY,
                        status=refund["status"],
                        note=intent_id or "",
                        recorded_by=actor.id if actor else None,
                        created_at=now,
                    )
                notifications.refund_recorded(booking, refund["id"], now)
                new += 1
            except IntegrityError:
                pass
        follow_ledger(booking_id, now)
    return new


def follow_ledger(booking_id, now):
    """After new refund rows: the booking's payment status and refund-due mark follow the ledger."""
    booking = Booking.get_by_id(booking_id)
    paid, refunded = ledger_totals(booking_id)
    updates = {}
    if paid > 0 and refunded >= paid and booking.payment_status != "refunded":
        updates[Booking.payment_status] = "refunded"
    if booking.refund_due_at is not None and owed_back(booking) == 0:
        updates[Booking.refund_due_at] = None
    if updates:
        updates[Booking.updated_at] = now
        Booking.update(updates).where(Booking.id == booking_id).execute()


def card_payments(booking_id):
    """The booking's counted card payments in the ledger (their provider ids are Stripe intent ids)."""
    return LedgerEntry.select(LedgerEntry.provider_id).where(
        (LedgerEntry.booking == booking_id)
        & (LedgerEntry.kind == "payment")
        & (LedgerEntry.provider == "stripe")
        & (LedgerEntry.status == "succeeded")
    )


def payment_recorded(intent_id):
    return (
        LedgerEntry.select()
        .where(
            (LedgerEntry.kind == "payment")
            & (LedgerEntry.provider == "stripe")
            & (LedgerEntry.provider_id == intent_id)
        )
        .exists()
    )
