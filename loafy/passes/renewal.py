"""Auto-renew a period pass by card: a Stripe Subscription on a Plan (localstripe serves Plans,
Subscriptions and Invoices, not Prices or Checkout).

Turning it on saves the card on a Stripe customer and subscribes it to the product's Plan, the
first charge at the end of the running pass (trial_end). Each `invoice.payment_succeeded` of that
subscription adds one pass, stacked where the last one ends, once per invoice id (its ledger row is
keyed by the invoice id); `customer.subscription.deleted` stops renewal. Stripe is asked again for
each event's object: a webhook body is not trusted.
"""

import logging
from datetime import UTC, timedelta

from peewee import IntegrityError

from loafy import audit
from loafy.db import db
from loafy.errors import Conflict, PermissionDenied
from loafy.models import LedgerEntry, Pass, PassProduct, WebhookEvent
from loafy.passes import passes

log = logging.getLogger(__name__)

EVENTS = ("invoice.payment_succeeded", "customer.subscription.deleted")


class NotRenewable(Conflict):
    code = "not_renewable"
    message = "This pass cannot renew itself: only a running membership the club marks renewable can."


def _stripe():
    from loafy.passes.card import _money

    return _money()


def _plan_for(product):
    """The product's Stripe Plan (made once: interval = the product's days)."""
    payments = _stripe()
    if product.stripe_plan_id:
        return product.stripe_plan_id
    plan = payments.client().v1.plans.create(
        params={
            "amount": product.price,
            "currency": "vnd",
            "interval": "day",
            "interval_count": product.duration_days,
            "product": {"name": product.name[:100]},
            "metadata": {"pass_product_id": str(product.id)},
        }
    )
    PassProduct.update(stripe_plan_id=plan.id).where(
        (PassProduct.id == product.id) & PassProduct.stripe_plan_id.is_null()
    ).execute()
    return PassProduct.get_by_id(product.id).stripe_plan_id


def turn_on(actor, pass_id, payment_method, now):
    """Renew this running membership by card from its end on (`payment_method`: a card saved by
    Stripe.js, pm_...). Network calls first, then one short transaction."""
    club_pass = passes.get_pass(pass_id, actor)
    if club_pass.user_id != actor.id:
        raise PermissionDenied("Only the pass's holder can turn on auto-renew.")
    product = PassProduct.get_by_id(club_pass.product_id)
    state = club_pass.status_at(now)
    if club_pass.kind != "period" or not product.renewable or state not in ("active", "scheduled"):
        raise NotRenewable()
    if club_pass.auto_renew:
        return club_pass
    if not isinstance(payment_method, str) or not payment_method.startswith("pm_"):
        from loafy.errors import ValidationError

        raise ValidationError("Send the card's payment method id (pm_...).", field="payment_method")
    stripe_client = _stripe().client()
    customer = stripe_client.v1.customers.create(
        params={"email": actor.email or "", "metadata": {"user_id": str(actor.id)}}
    )
    stripe_client.v1.payment_methods.attach(payment_method, params={"customer": customer.id})
    stripe_client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": payment_method}}
    )
    trial_end = int(club_pass.ends_at.replace(tzinfo=UTC).timestamp())
    subscription = stripe_client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"plan": _plan_for(product)}],
            "trial_end": trial_end,
            "metadata": {"pass_id": str(club_pass.id), "pass_code": club_pass.code},
        }
    )
    with db.atomic():
        Pass.update(auto_renew=True, stripe_subscription_id=subscription.id, updated_at=now).where(
            Pass.id == club_pass.id
        ).execute()
        audit.record(
            actor, "pass.auto_renew_on", "pass", club_pass.id, {"subscription": subscription.id}, now
        )
    return Pass.get_by_id(club_pass.id)


def turn_off(actor, pass_id, now):
    """Stop renewing: the subscription is cancelled at Stripe; the running pass runs to its end."""
    club_pass = passes.get_pass(pass_id, actor)
    if club_pass.user_id != actor.id and not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only the pass's holder can turn off auto-renew.")
    if not club_pass.auto_renew:
        return club_pass
    if club_pass.stripe_subscription_id:
        import stripe

        try:
            _stripe().client().v1.subscriptions.cancel(club_pass.stripe_subscription_id)
        except stripe.InvalidRequestError as exc:
            log.info("subscription %s already gone: %s", club_pass.stripe_subscription_id, exc)
    with db.atomic():
        Pass.update(auto_renew=False, updated_at=now).where(Pass.id == club_pass.id).execute()
        audit.record(actor, "pass.auto_renew_off", "pass", club_pass.id, {}, now)
    return Pass.get_by_id(club_pass.id)


# --- webhook events ------------------------------------------------------------------------------


def handle_event(event_id, event_type, obj, now):
    """One subscription event, applied once (its event id, then its invoice id, decide)."""
    payments = _stripe()
    import stripe

    try:
        if event_type == "invoice.payment_succeeded":
            fetched = payments._fetch(lambda c: c.v1.invoices.retrieve(obj.get("id") or ""))
            subscription_id = fetched.get("subscription") if fetched else None
        else:
            fetched = payments._fetch(lambda c: c.v1.subscriptions.retrieve(obj.get("id") or ""))
            subscription_id = fetched.get("id") if fetched else None
    except stripe.StripeError as exc:
        raise payments.PaymentUnavailable(f"Stripe could not be reached; the event will be retried ({exc}).")
    with db.atomic():
        try:
            with db.atomic():
                WebhookEvent.create(
                    event_id=event_id, provider="stripe", type=event_type[:100], received_at=now
                )
        except IntegrityError:
            return "duplicate"
        holder = Pass.get_or_none(Pass.stripe_subscription_id == subscription_id) if subscription_id else None
        if holder is None:
            return "ignored"
        if event_type == "customer.subscription.deleted":
            if fetched.get("status") != "canceled":
                return "ignored"
            Pass.update(auto_renew=False, updated_at=now).where(Pass.id == holder.id).execute()
            return "renewal_stopped"
        if fetched.get("status") != "paid" or not fetched.get("amount_paid"):
            return "ignored"  # a trial's zero invoice renews nothing
        return _renew(holder, fetched, now)


def _renew(holder, invoice, now):
    """One more pass of the holder's product, stacked, paid by this invoice; once per invoice id."""
    product = PassProduct.get_by_id(holder.product_id)
    try:
        with db.atomic():
            new = passes._create_pass(
                holder.user_id, product, now, amount=invoice["amount_paid"], payment_method="stripe"
            )
            LedgerEntry.create(
                club_pass=new.id,
                kind="payment",
                provider="stripe",
                provider_id=invoice["id"],
                amount=invoice["amount_paid"],
                currency=invoice.get("currency") or "vnd",
                status="succeeded",
                note=f"renewal of {holder.code}",
                created_at=now,
            )
            passes._activate(new, now)
            # The subscription now renews the newest pass.
            Pass.update(auto_renew=False, stripe_subscription_id=None, updated_at=now).where(
                Pass.id == holder.id
            ).execute()
            Pass.update(auto_renew=True, stripe_subscription_id=holder.stripe_subscription_id).where(
                Pass.id == new.id
            ).execute()
    except IntegrityError:
        return "duplicate"
    renewed = Pass.get_by_id(new.id)
    log.info(
        "pass %s renewed as %s until %s (invoice %s)",
        holder.code,
        renewed.code,
        renewed.ends_at,
        invoice["id"],
    )
    return "renewed"


def days_left(club_pass, now):
    return max(0, (club_pass.ends_at - now) // timedelta(days=1)) if club_pass.ends_at else 0
