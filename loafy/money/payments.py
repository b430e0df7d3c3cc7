"""Card payments through Stripe: intents, webhooks, refunds, settling and reconciling.

Stripe is the truth about money; the ledger records every movement once, keyed by its Stripe id
(invariant 3). Nothing here trusts a webhook body: each event is verified, recorded once by its id,
and the PaymentIntent it names is fetched again from Stripe. Network calls are made outside
database transactions; what they learned is then written in one short transaction, in the lock
order of loafy.booking.bookings (session first).
"""

import logging
import time
from datetime import UTC, datetime

from peewee import IntegrityError, fn

from loafy import notifications
from loafy.booking import bookings
from loafy.booking.bookings import lock_session
from loafy.clock import format_local
from loafy.clock import format_vnd as vnd
from loafy.db import db
from loafy.errors import Conflict, LoafyError, NotFound, PermissionDenied, ValidationError
from loafy.models import Booking, LedgerEntry, WebhookEvent
from loafy.money.stripe_client import (  # noqa: F401 - re-exported until the split
    CURRENCY,
    MAX_AMOUNT,
    PaymentProviderError,
    PaymentsNotConfigured,
    PaymentUnavailable,
    _state,
    card_configured,
    client,
    init_app,
    publishable_key,
    stripe_js_url,
)
from loafy.money.stripe_client import charge_of as _charge_of
from loafy.money.stripe_client import fetch as _fetch
from loafy.money.stripe_client import plain as _plain
from loafy.money.stripe_client import refunds_of as _refunds_of
from loafy.money.stripe_client import unreachable as _unreachable

log = logging.getLogger(__name__)

# An intent in one of these states can still take the player's card.
REUSABLE_STATUSES = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE_STATUSES = (*REUSABLE_STATUSES, "requires_capture")
# Refund states that mean the money went (or is going) back.
COUNTED_REFUND_STATUSES = ("succeeded", "pending")
# A card payment whose amount or currency is not what its booking owes: kept, flagged, never counted.
MISMATCH = "mismatch"
# Stripe's own tolerance refuses signatures older than 5 minutes; one from further ahead than this
# (a clock a little fast is fine) is refused too: a signed body must not be replayable for ever.
WEBHOOK_FUTURE_TOLERANCE_SECONDS = 60


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


class NothingToRefund(Conflict):
    code = "nothing_to_refund"
    message = "There is no card payment left to refund on this booking."


class InvalidRefundAmount(ValidationError):
    code = "invalid_refund_amount"


# --- intents -------------------------------------------------------------------------------------


def _own_booking(actor, booking_id):
    """The actor's own booking; anyone else's is 'not found' (no hint that it exists)."""
    if isinstance(booking_id, bool) or not isinstance(booking_id, (int, str)):
        raise NotFound("That booking does not exist.")
    if isinstance(booking_id, str) and not booking_id.strip().isdigit():
        raise NotFound("That booking does not exist.")
    booking = bookings.get_booking(booking_id, actor)
    if booking.user_id != actor.id:
        raise NotFound("That booking does not exist.")
    return booking


def check_payable(booking, now):
    """Why this booking cannot be paid by card now, as a typed refusal; None when it can."""
    if booking.payment_method != "stripe":
        raise NotCardPayment()
    if not card_configured():
        raise PaymentsNotConfigured()
    if booking.status != "pending_payment" or (booking.payment_deadline and booking.payment_deadline <= now):
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
    booking = _own_booking(actor, booking_id)
    check_payable(booking, now)
    stripe_client = client()
    previous = booking.stripe_payment_intent_id
    try:
        intent = None
        if previous:
            current = _plain(stripe_client.v1.payment_intents.retrieve(previous))
            if _reusable(current, booking):
                intent = current
            elif current["status"] == "succeeded" and amount_difference(current, booking.amount):
                pass  # paid the wrong amount: that paid nothing (kept, flagged); a fresh intent pays
            elif current["status"] in ("succeeded", "processing"):
                raise AlreadyPaid()
            elif current["status"] != "canceled":
                # A declined attempt: start afresh (localstripe cannot retry a declined intent, and
                # a clean intent is as good on real Stripe).
                _cancel_quietly(stripe_client, previous)
        if intent is None:
            attempt = (
                LedgerEntry.select()
                .where((LedgerEntry.booking == booking.id) & (LedgerEntry.kind == "intent"))
                .count()
                + 1
            )
            intent = _plain(
                stripe_client.v1.payment_intents.create(
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
        if _unreachable(exc):
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
        _cancel_quietly(client(), intent["id"])  # ours must not stay open
    # else: the other tab stored this very intent (the same idempotency key): keep it.
    if current.status != "pending_payment" or not current.stripe_payment_intent_id:
        raise NotPayable()
    if intent["id"] == current.stripe_payment_intent_id:
        return intent
    try:
        return _plain(client().v1.payment_intents.retrieve(current.stripe_payment_intent_id))
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


def _cancel_quietly(stripe_client, intent_id):
    import stripe

    try:
        stripe_client.v1.payment_intents.cancel(intent_id)
        return True
    except stripe.StripeError as exc:
        log.info("could not cancel intent %s: %s", intent_id, exc)
        return False


# --- webhooks ------------------------------------------------------------------------------------


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

    secret = _state.get("webhook_secret")
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
    data = _plain(event)
    event_id, event_type = data.get("id"), data.get("type")
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(obj, dict)):
        raise BadPayload()
    if WebhookEvent.get_or_none(WebhookEvent.event_id == event_id) is not None:
        return "duplicate"  # cheap exit before calling Stripe; the insert below is the real guard

    intent = charge = None
    refunds = []
    try:
        intent_id = None
        if event_type.startswith("payment_intent."):
            intent_id = obj.get("id")
        elif event_type.startswith("charge.") and isinstance(obj.get("id"), str):
            fetched = _fetch(lambda c: c.v1.charges.retrieve(obj["id"]))
            intent_id = fetched.get("payment_intent") if fetched else None
        if isinstance(intent_id, str) and intent_id:
            intent = _fetch(lambda c: c.v1.payment_intents.retrieve(intent_id))
        if intent and intent["status"] == "succeeded":
            charge = _charge_of(intent)
            refunds = _refunds_of(charge)
    except stripe.StripeError as exc:
        log.warning("Stripe unreachable handling %s %s: %s", event_type, event_id, exc)
        raise PaymentUnavailable("Stripe could not be reached; the event will be retried.")
    booking_id = _booking_for(intent) if intent else None

    with db.atomic():
        try:
            with db.atomic():
                WebhookEvent.create(
                    event_id=event_id, provider="stripe", type=event_type[:100], received_at=now
                )
        except IntegrityError:
            return "duplicate"
        if booking_id is None:
            log.info("webhook %s %s: no booking of ours; ignored", event_type, event_id)
            return "ignored"
        outcome = _apply(booking_id, intent, refunds, now)
    log.info("webhook %s %s for booking %s: %s", event_type, event_id, booking_id, outcome)
    return outcome


def _booking_for(intent):
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
    raw = str((intent.get("metadata") or {}).get("booking_id") or "")
    if raw.isdigit() and Booking.get_or_none(Booking.id == int(raw)) is not None:
        return int(raw)
    return None


def _apply(booking_id, intent, refunds, now, actor=None):
    """Bring a booking in line with what Stripe says about one of its intents (idempotent)."""
    status = intent["status"]
    outcome = status
    if status == "succeeded":
        booking = Booking.get_by_id(booking_id)
        difference = amount_difference(intent, booking.amount)
        if difference:
            outcome = _record_mismatch(booking, intent, difference, now)
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
        and not _flagged(intent["id"])
        and _record_refunds(booking_id, [(r, intent["id"]) for r in refunds], actor, now)
    ):
        outcome = "refunded" if outcome == "duplicate" else f"{outcome}+refunded"
    return outcome


def _received(intent):
    """(amount, currency) Stripe took for a succeeded intent; amount None when it is not a number."""
    raw = intent.get("amount_received") or intent.get("amount")
    try:
        amount = None if isinstance(raw, bool) else int(raw)
    except (TypeError, ValueError):
        amount = None
    return amount, str(intent.get("currency") or "").lower()


def amount_difference(intent, owed):
    """Why a succeeded intent does not pay `owed` VND (its amount or currency differ); None if it does."""
    amount, currency = _received(intent)
    if currency != CURRENCY:
        return f"Stripe took {amount} {currency.upper() or '(no currency)'}; the booking costs {vnd(owed)}"
    if amount != owed:
        return f"Stripe took {vnd(amount or 0)}; the booking costs {vnd(owed)}"
    return None


def _record_mismatch(booking, intent, difference, now):
    """Keep a payment that does not match what is owed, flagged: it confirms nothing, counts as no
    payment, and staff see it (booking page, dashboard, `loafy payments reconcile`). Once per intent."""
    amount, currency = _received(intent)
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


def _flagged(intent_id):
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


# --- refunds -------------------------------------------------------------------------------------


def ledger_totals(booking_id):
    """(paid, refunded) for a booking from the ledger, every provider."""

    def total(kind, extra=True):
        return (
            LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
            .where((LedgerEntry.booking == booking_id) & (LedgerEntry.kind == kind) & extra)
            .scalar()
        )

    return (
        int(total("payment", LedgerEntry.status == "succeeded")),
        int(total("refund", LedgerEntry.status.in_(COUNTED_REFUND_STATUSES))),
    )


def owed_back(booking):
    """Money to return: all of it for a cancelled/expired booking, the excess for a confirmed one."""
    paid, refunded = ledger_totals(booking.id)
    kept = booking.amount if booking.status == "confirmed" else 0
    return max(0, paid - refunded - kept)


def _record_refunds(booking_id, items, actor, now):
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
        _follow_ledger(booking_id, now)
    return new


def _follow_ledger(booking_id, now):
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
        booking = bookings.lock_booking(booking)
        if _card_payments(booking.id).exists():
            raise Conflict(
                "This booking was paid by card: refund it with Refund, through Stripe.", code="card"
            )
        owed = owed_back(booking)
        if owed <= 0:
            raise NothingToRefund("Nothing is owed back on this booking.")
        provider_id = f"{method}:refund:{booking.code}:{ledger_totals(booking.id)[1]}"  # once per state
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
        _follow_ledger(booking.id, now)
    log.info("%s: %s given back by %s, recorded by user %s", booking.code, owed, method, actor.id)
    return owed


def _card_payments(booking_id):
    """The booking's counted card payments in the ledger (their provider ids are Stripe intent ids)."""
    return LedgerEntry.select(LedgerEntry.provider_id).where(
        (LedgerEntry.booking == booking_id)
        & (LedgerEntry.kind == "payment")
        & (LedgerEntry.provider == "stripe")
        & (LedgerEntry.status == "succeeded")
    )


def _refundable(booking):
    """[(intent id, charge, refundable amount)] for the booking's card payments, newest first, from Stripe."""
    intent_ids = [row.provider_id for row in _card_payments(booking.id).order_by(LedgerEntry.id.desc())]
    found = []
    for intent_id in intent_ids:
        intent = _plain(client().v1.payment_intents.retrieve(intent_id))
        charge = _charge_of(intent)
        if charge:
            found.append((intent_id, charge, charge["amount"] - (charge.get("amount_refunded") or 0)))
    return found


def _refund(booking, amount, actor, now, reason):
    """Refund `amount` across the booking's card payments at Stripe, then record every refund."""
    left = amount
    charges = _refundable(booking)
    for intent_id, charge, refundable in charges:
        if left <= 0:
            break
        part = min(left, refundable)
        if part <= 0:
            continue
        client().v1.refunds.create(
            params={
                "payment_intent": intent_id,
                "amount": part,
                "metadata": {"booking_id": str(booking.id), "booking_code": booking.code, "reason": reason},
            },
            # Derived from Stripe's own state: a retry of the same refund is the same refund.
            options={"idempotency_key": _refund_key(intent_id, charge, part)},
        )
        left -= part
    # Every refund on these charges, not only this call's: one that a worker made and died before
    # recording is recorded now (the ledger keys refunds by Stripe id, so none counts twice).
    items = [(refund, intent_id) for intent_id, charge, _ in charges for refund in _refunds_of(charge)]
    _record_refunds(booking.id, items, actor, now)
    log.info("refunded %s of %s (%s) for %s", amount - left, amount, reason, booking.code)
    return amount - left


def _refund_key(intent_id, charge, part):
    return f"loafy-refund-{intent_id}-{charge.get('amount_refunded') or 0}-{part}"


def refund_booking(actor, booking_id, now, amount=None):
    """An admin refunds a card payment, in full (default) or in part; returns the booking."""
    import stripe

    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can refund a payment.")
    booking = bookings.get_booking(booking_id, actor)
    try:
        refundable = sum(part for _, _, part in _refundable(booking))
        if refundable <= 0:
            raise NothingToRefund()
        if amount is None:
            amount = refundable
        elif isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= refundable:
            raise InvalidRefundAmount(
                f"Enter a whole amount in VND from 1 to {refundable:,}.".replace(",", "."), field="amount"
            )
        _refund(booking, amount, actor, now, reason="staff refund")
    except stripe.StripeError as exc:
        if _unreachable(exc):
            raise PaymentUnavailable("Stripe cannot be reached; nothing was refunded. Please try again.")
        log.error("Stripe refused a refund for %s: %s", booking.code, exc)
        raise PaymentProviderError("Stripe refused the refund: nothing was refunded.")
    return Booking.get_by_id(booking.id)


# --- settling (the job body) ---------------------------------------------------------------------


def _payment_recorded(intent_id):
    return (
        LedgerEntry.select()
        .where(
            (LedgerEntry.kind == "payment")
            & (LedgerEntry.provider == "stripe")
            & (LedgerEntry.provider_id == intent_id)
        )
        .exists()
    )


def settle_booking(booking_id, now):
    """Make a booking's money match its state: cancel an open intent, refund what is owed back.

    Idempotent and safe to run twice; Stripe errors propagate so the job can be retried.
    """
    booking = Booking.get_or_none(Booking.id == booking_id)
    if booking is None:
        return "missing"
    outcome = "nothing"
    intent_id = booking.stripe_payment_intent_id
    if (
        booking.status in ("expired", "cancelled")
        and intent_id
        and _state.get("secret_key")
        and not _payment_recorded(intent_id)
    ):
        intent = _fetch(lambda c: c.v1.payment_intents.retrieve(intent_id))
        if intent and intent["status"] in CANCELABLE_STATUSES:
            if _cancel_quietly(client(), intent["id"]):
                outcome = "intent_cancelled"
                _note_intent_closed(intent_id)
        elif intent and intent["status"] == "canceled":
            _note_intent_closed(intent_id)
        elif intent and intent["status"] == "succeeded":
            # Paid at the last moment: record it now rather than waiting for the webhook (invariant 4).
            outcome = _apply(booking.id, intent, _refunds_of(_charge_of(intent)), now)
        booking = Booking.get_by_id(booking.id)
    if booking.refund_due_at is not None and booking.payment_status != "refunded":
        owed = owed_back(booking)
        if owed == 0:
            Booking.update(refund_due_at=None, updated_at=now).where(Booking.id == booking.id).execute()
        elif _state.get("secret_key") and _refundable(booking):
            refunded = _refund(booking, owed, None, now, reason="automatic")
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
    ids = [b.id for b in Booking.select(Booking.id).where(refund_due | open_intent).order_by(Booking.id)]
    done = {}
    for booking_id in ids:
        try:
            done[booking_id] = settle_booking(booking_id, now)
        except stripe.StripeError as exc:
            log.warning("settling booking %s failed: %s", booking_id, exc)
    return done


# --- reconciliation ------------------------------------------------------------------------------


def reconcile(since=None):
    """Compare the ledger with Stripe's PaymentIntents (created since `since`); list the differences."""
    import stripe

    since_ts = int(since.replace(tzinfo=UTC).timestamp()) if since else None
    stripe_client = client()
    try:
        intents = [
            _plain(pi)
            for pi in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
            if since_ts is None or pi.created >= since_ts
        ]
        refunds_at_stripe = {}
        for intent in intents:
            if intent["status"] == "succeeded":
                for refund in _refunds_of(_charge_of(intent)):
                    refunds_at_stripe[refund["id"]] = (refund, intent)
    except stripe.StripeError as exc:
        raise PaymentUnavailable(f"Stripe cannot be reached: {exc.user_message or exc}")

    ledger = LedgerEntry.select().where(LedgerEntry.provider == "stripe")
    if since is not None:
        ledger = ledger.where(LedgerEntry.created_at >= since)
    rows = {(row.kind, row.provider_id): row for row in ledger}
    codes = dict(Booking.select(Booking.id, Booking.code).tuples())
    seen = set()
    mismatched = set()  # their refunds are not in the ledger either: the flag says it all
    differences = []

    for intent in intents:
        seen.add(("intent", intent["id"]))
        intent_row = rows.get(("intent", intent["id"]))
        booking_id = intent_row.booking_id if intent_row else _booking_for(intent)
        if booking_id is None and not (intent.get("metadata") or {}).get("booking_id"):
            continue  # not one of ours
        label = f"{intent['id']} ({codes.get(booking_id, 'no booking')})"
        payment = rows.get(("payment", intent["id"]))
        seen.add(("payment", intent["id"]))
        received = intent.get("amount_received") or intent["amount"]
        if payment is not None and payment.status == MISMATCH:
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
        if refund.get("status") not in COUNTED_REFUND_STATUSES or intent["id"] in mismatched:
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
