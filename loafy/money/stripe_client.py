"""The Stripe client: its settings, whether card payment is set up at all, and the errors it raises.

Each function that talks to Stripe imports the SDK itself: loaded at start-up, it and the HTTP
clients it pulls in cost every web worker 5-6 MB (bench/scale.py), and most requests never pay.
"""

import logging

from loafy.db import db
from loafy.errors import LoafyError, Unavailable

log = logging.getLogger(__name__)

CURRENCY = "vnd"
MAX_AMOUNT = 99_999_999  # Stripe's cap for one VND charge
HTTP_TIMEOUT_SECONDS = 10  # default of STRIPE_TIMEOUT_SECONDS

_state = {}


class PaymentsNotConfigured(Unavailable):
    code = "payments_not_configured"
    message = "Card payments are not set up for this club yet. Please choose another payment method."


class PaymentUnavailable(Unavailable):
    code = "payment_unavailable"
    message = "Payment is temporarily unavailable. Please try again in a minute."


class PaymentProviderError(LoafyError):
    code = "payment_provider_error"
    status = 502
    message = "The payment provider refused the request. Nothing was charged; please try again later."


def init_app(app):
    """Keep the Stripe settings; the client itself is built on first use."""
    _state.clear()
    _state.update(
        secret_key=app.config.get("STRIPE_SECRET_KEY") or None,
        publishable_key=app.config.get("STRIPE_PUBLISHABLE_KEY") or None,
        webhook_secret=app.config.get("STRIPE_WEBHOOK_SECRET") or None,
        api_base=(app.config.get("STRIPE_API_BASE") or "").rstrip("/") or None,
        retries=int(app.config.get("STRIPE_MAX_NETWORK_RETRIES", 2)),
        timeout=float(app.config.get("STRIPE_TIMEOUT_SECONDS") or HTTP_TIMEOUT_SECONDS),
        client=None,
    )


def card_configured():
    """Card payment works end to end only with all three keys: the secret one to create intents,
    the publishable one for the card form, the webhook secret to hear that the money arrived."""
    return bool(_state.get("secret_key") and _state.get("publishable_key") and _state.get("webhook_secret"))


def has_secret_key():
    """Stripe can be called (to settle, refund or reconcile what was paid before)."""
    return bool(_state.get("secret_key"))


def publishable_key():
    return _state.get("publishable_key")


def webhook_secret():
    return _state.get("webhook_secret")


def stripe_js_url():
    """Stripe.js: localstripe's stand-in when the API is pointed at it, else the real one."""
    base = _state.get("api_base")
    return f"{base}/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"


class CalledInTransaction(RuntimeError):
    """A programming error: Stripe called while a database transaction is open (it would hold
    SQLite's write lock, or PostgreSQL's row locks, across a network call)."""


def client():
    """The Stripe client, for one call made now. Refuses inside a database transaction: record the
    intent, commit, call, then record the result."""
    import stripe

    if db.in_transaction():
        raise CalledInTransaction("Stripe must not be called inside a database transaction")
    if _state.get("client") is None:
        if not _state.get("secret_key"):
            raise PaymentsNotConfigured()
        options = {
            "max_network_retries": _state["retries"],
            "http_client": stripe.RequestsClient(timeout=_state["timeout"]),
        }
        if _state["api_base"]:
            options["base_addresses"] = {"api": _state["api_base"]}
        _state["client"] = stripe.StripeClient(_state["secret_key"], **options)
    return _state["client"]


def plain(obj):
    """A Stripe object as a dict (Stripe 16 objects are not dicts)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def unreachable(exc):
    """Stripe could not answer (network, rate limit, its own error): worth retrying later."""
    import stripe

    return isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError))


def fetch(call):
    """One Stripe read; None when Stripe says the object does not exist (a stale or foreign event)."""
    import stripe

    try:
        return plain(call(client()))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def charge_of(intent):
    """The intent's latest charge, as a dict (fetched when the intent names it only by id)."""
    latest = intent.get("latest_charge")
    if isinstance(latest, dict):
        return latest
    if isinstance(latest, str) and latest:
        return plain(client().v1.charges.retrieve(latest))
    return None


def refunds_of(charge):
    """Every refund Stripe holds for a charge."""
    if not charge:
        return []
    listing = client().v1.refunds.list(params={"charge": charge["id"], "limit": 100})
    return [plain(r) for r in listing.auto_paging_iter()]
