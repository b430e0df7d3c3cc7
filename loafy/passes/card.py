"""Paying a pass by card: a PaymentIntent per pass, the same Stripe webhook as bookings, refunds.

The Stripe client and its helpers are the payments service's (imported inside the functions: that
module imports this one for its webhook hook). Network calls happen outside transactions.
"""

import logging

from peewee import IntegrityError

from loafy.clock import format_local
from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied
from loafy.models import LedgerEntry, Pass
from loafy.passes import passes

log = logging.getLogger(__name__)

CURRENCY = "vnd"


def _money():
    """The card helpers this module uses, from the money modules (imported late: they import it)."""
    from types import SimpleNamespace

    from loafy.money import card, refunds, stripe_client

    return SimpleNamespace(
        client=stripe_client.client,
        _plain=stripe_client.plain,
        _fetch=stripe_client.fetch,
        _charge_of=stripe_client.charge_of,
        _refunds_of=stripe_client.refunds_of,
        _unreachable=stripe_client.unreachable,
        has_secret_key=stripe_client.has_secret_key,
        PaymentUnavailable=stripe_client.PaymentUnavailable,
        PaymentProviderError=stripe_client.PaymentProviderError,
        MAX_AMOUNT=stripe_client.MAX_AMOUNT,
        AmountTooLarge=card.AmountTooLarge,
        AlreadyPaid=card.AlreadyPaid,
        REUSABLE_STATUSES=card.REUSABLE_STATUSES,
        CANCELABLE_STATUSES=card.CANCELABLE_STATUSES,
        _cancel_quietly=card.cancel_quietly,
        _refund_key=refunds._refund_key,
    )


class NotCardPass(Conflict):
    code = "not_card_payment"
    message = "This pass is not paid by card."


def _own_pass(actor, pass_id):
    club_pass = passes.get_pass(pass_id, actor)
    if club_pass.user_id != actor.id:
        raise NotFound("That pass does not exist.")
    return club_pass


def check_payable(club_pass, now):
    payments = _money()

    if club_pass.payment_method != "stripe":
        raise NotCardPass()
    if club_pass.status != "pending_payment" or (
        club_pass.payment_deadline and club_pass.payment_deadline <= now
    ):
        if club_pass.status == "paid":
            raise passes.PassNotPending("This pass is already paid.", code="already_confirmed")
        raise passes.PassNotPending()
    if club_pass.amount <= 0:
        raise passes.PassNotPending("This pass has nothing to pay.", code="nothing_to_pay")
    if club_pass.amount > payments.MAX_AMOUNT:
        raise payments.AmountTooLarge(
            "This pass costs more than a card can be charged at once. Please pay by bank transfer."
        )


def create_pass_intent(actor, pass_id, now):
    """One PaymentIntent per pass, reused while it can still take a card; the same answer as for
    a booking: {client_secret, payment_intent_id, amount, currency}."""
    import stripe

    payments = _money()

    if actor is None or not getattr(actor, "is_authenticated", True):
        raise PermissionDenied("Please sign in to pay.")
    if isinstance(pass_id, bool) or not isinstance(pass_id, (int, str)):
        raise NotFound("That pass does not exist.")
    club_pass = _own_pass(actor, pass_id)
    check_payable(club_pass, now)
    stripe_client = payments.client()
    previous = club_pass.stripe_payment_intent_id
    try:
        intent = None
        if previous:
            current = payments._plain(stripe_client.v1.payment_intents.retrieve(previous))
            if (
                current["status"] in payments.REUSABLE_STATUSES
                and not current.get("last_payment_error")
                and current.get("amount") == club_pass.amount
                and current.get("currency") == CURRENCY
            ):
                intent = current
            elif current["status"] in ("succeeded", "processing"):
                raise payments.AlreadyPaid("Your payment went through; we are activating your pass.")
            elif current["status"] != "canceled":
                payments._cancel_quietly(stripe_client, previous)
        if intent is None:
            attempt = (
                LedgerEntry.select()
                .where((LedgerEntry.club_pass == club_pass.id) & (LedgerEntry.kind == "intent"))
                .count()
                + 1
            )
            intent = payments._plain(
                stripe_client.v1.payment_intents.create(
                    params={
                        "amount": club_pass.amount,
                        "currency": CURRENCY,
                        "payment_method_types": ["card"],
                        "metadata": {"pass_id": str(club_pass.id), "pass_code": club_pass.code},
                    },
                    options={
                        "idempotency_key": f"loafy-pass-intent-{club_pass.id}-{club_pass.code}-{attempt}"
                    },
                )
            )
    except stripe.StripeError as exc:
        if payments._unreachable(exc):
            held = format_local(club_pass.payment_deadline, "%H:%M")
            raise payments.PaymentUnavailable(
                f"Payment is temporarily unavailable; your pass is kept until {held}." if held else None
            )
        log.error("Stripe refused an intent for pass %s: %s", club_pass.code, exc)
        raise payments.PaymentProviderError()

    lost_race = False
    with db.atomic():
        if intent["id"] != previous:
            changed = (
                Pass.update(stripe_payment_intent_id=intent["id"], updated_at=now)
                .where(
                    (Pass.id == club_pass.id)
                    & (Pass.status == "pending_payment")
                    & (
                        Pass.stripe_payment_intent_id.is_null()
                        if previous is None
                        else (Pass.stripe_payment_intent_id == previous)
                    )
                )
                .execute()
            )
            if not changed:
                current = Pass.get_by_id(club_pass.id)
                lost_race = current.stripe_payment_intent_id != intent["id"]
        if not lost_race:
            _record_intent(club_pass, intent, now)
    if lost_race:  # another tab stored its intent first, or the pass changed: ours must not stay open
        payments._cancel_quietly(stripe_client, intent["id"])
        raise passes.PassNotPending("This pass changed meanwhile; please reload the page.")
    return {
        "client_secret": intent["client_secret"],
        "payment_intent_id": intent["id"],
        "amount": intent["amount"],
        "currency": CURRENCY,
    }


def _record_intent(club_pass, intent, now):
    try:
        with db.atomic():
            LedgerEntry.create(
                club_pass=club_pass.id,
                kind="intent",
                provider="stripe",
                provider_id=intent["id"],
                amount=intent["amount"],
                currency=intent.get("currency") or CURRENCY,
                status=intent["status"],
                created_at=now,
            )
    except IntegrityError:
        pass


# --- the webhook's hook --------------------------------------------------------------------------


def pass_for(intent):
    """The pass an intent pays, by our ledger, the pass's column, else the metadata; or None."""
    row = LedgerEntry.get_or_none(
        (LedgerEntry.provider == "stripe")
        & (LedgerEntry.kind == "intent")
        & (LedgerEntry.provider_id == intent["id"])
    )
    if row is not None and row.club_pass_id:
        return row.club_pass_id
    found = Pass.get_or_none(Pass.stripe_payment_intent_id == intent["id"])
    if found is not None:
        return found.id
    raw = str((intent.get("metadata") or {}).get("pass_id") or "")
    if raw.isdigit() and Pass.get_or_none(Pass.id == int(raw)) is not None:
        return int(raw)
    return None


def apply_intent(pass_id, intent, refunds, now):
    """What Stripe says about a pass's intent, applied once (inside the webhook's transaction).

    A succeeded intent is a payment only if its amount and currency are the pass's: anything else
    is recorded and given back."""
    outcome = intent["status"]
    if intent["status"] == "succeeded":
        club_pass = Pass.get_by_id(pass_id)
        amount = intent.get("amount_received") or intent["amount"]
        currency = intent.get("currency") or ""
        outcome = passes.record_pass_payment(
            pass_id,
            provider="stripe",
            provider_id=intent["id"],
            amount=amount,
            now=now,
            currency=currency[:3],
        )
        if outcome != "duplicate" and (amount != club_pass.amount or currency != CURRENCY):
            log.warning(
                "intent %s paid %s %s for pass %s of %s vnd: refunding",
                intent["id"],
                amount,
                currency,
                club_pass.code,
                club_pass.amount,
            )
            Pass.update(refund_due_at=now, updated_at=now).where(Pass.id == pass_id).execute()
            from loafy import queue

            queue.enqueue(passes.SETTLE_PASS_JOB, pass_id)
            outcome = "mismatch_refund_due"
    if refunds:
        _record_refunds(pass_id, refunds, None, now)
    return outcome


def _record_refunds(pass_id, refunds, actor, now):
    new = 0
    for refund, intent_id in refunds:
        if refund.get("status") not in ("succeeded", "pending"):
            continue
        try:
            with db.atomic():
                LedgerEntry.create(
                    club_pass=pass_id,
                    kind="refund",
                    provider="stripe",
                    provider_id=refund["id"],
                    amount=refund["amount"],
                    currency=refund.get("currency") or CURRENCY,
                    status=refund["status"],
                    note=intent_id or "",
                    recorded_by=getattr(actor, "id", None),
                    created_at=now,
                )
            new += 1
        except IntegrityError:
            pass
    club_pass = Pass.get_by_id(pass_id)
    if club_pass.refund_due_at is not None and passes.owed_back(club_pass) == 0:
        Pass.update(refund_due_at=None, updated_at=now).where(Pass.id == pass_id).execute()
    return new


# --- settling (the job body) ---------------------------------------------------------------------


def settle_pass(pass_id, now):
    """Make a pass's money match its state: cancel the open intent of an expired or cancelled pass,
    refund by card what is owed back. Idempotent; Stripe errors propagate (the job retries)."""
    payments = _money()

    club_pass = Pass.get_or_none(Pass.id == pass_id)
    if club_pass is None:
        return "missing"
    outcome = "nothing"
    if not payments.has_secret_key():
        return "not_configured"
    intent_id = club_pass.stripe_payment_intent_id
    if club_pass.status in ("expired", "cancelled") and intent_id and not passes._has_card_payment(pass_id):
        intent = payments._fetch(lambda c: c.v1.payment_intents.retrieve(intent_id))
        if intent and intent["status"] in payments.CANCELABLE_STATUSES:
            if payments._cancel_quietly(payments.client(), intent_id):
                outcome = "intent_cancelled"
        elif intent and intent["status"] == "succeeded":
            refunds = [(r, intent_id) for r in payments._refunds_of(payments._charge_of(intent))]
            with db.atomic():
                outcome = apply_intent(pass_id, intent, refunds, now)
        club_pass = Pass.get_by_id(pass_id)
    if club_pass.refund_due_at is not None:
        owed = passes.owed_back(club_pass)
        if owed > 0:
            outcome = "refunded" if _refund(club_pass, owed, now) else "manual_refund_needed"
        else:
            Pass.update(refund_due_at=None, updated_at=now).where(Pass.id == pass_id).execute()
    return outcome


def _refund(club_pass, amount, now):
    payments = _money()

    intent_ids = [
        row.provider_id
        for row in LedgerEntry.select(LedgerEntry.provider_id)
        .where(
            (LedgerEntry.club_pass == club_pass.id)
            & (LedgerEntry.kind == "payment")
            & (LedgerEntry.provider == "stripe")
        )
        .order_by(LedgerEntry.id.desc())
    ]
    left = amount
    items = []
    for intent_id in intent_ids:
        intent = payments._plain(payments.client().v1.payment_intents.retrieve(intent_id))
        charge = payments._charge_of(intent)
        if not charge:
            continue
        refundable = charge["amount"] - (charge.get("amount_refunded") or 0)
        part = min(left, refundable)
        if part > 0:
            payments.client().v1.refunds.create(
                params={
                    "payment_intent": intent_id,
                    "amount": part,
                    "metadata": {"pass_id": str(club_pass.id), "pass_code": club_pass.code},
                },
                options={"idempotency_key": payments._refund_key(intent_id, charge, part)},
            )
            left -= part
        items += [(r, intent_id) for r in payments._refunds_of(charge)]
    if not intent_ids:
        log.warning(
            "pass %s is owed %s back without a card payment: give it back by hand", club_pass.code, amount
        )
        return False
    with db.atomic():
        _record_refunds(club_pass.id, items, None, now)
    log.info("refunded %s of %s for pass %s", amount - left, amount, club_pass.code)
    return True


def settle_due_passes(now):
    """Catch-up: every pass still owed money back (its job lost)."""
    ids = [p.id for p in Pass.select(Pass.id).where(Pass.refund_due_at.is_null(False)).order_by(Pass.id)]
    return {pass_id: settle_pass(pass_id, now) for pass_id in ids}
