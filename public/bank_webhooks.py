"""The bank feeds' webhooks: SePay (`Authorization: Apikey ...`) and Casso (`X-Casso-Signature`).

Thin and fast: check the size, verify, parse, store each transaction once; the match runs in a job
after commit. A provider that is not configured answers 404 (nothing to find there); a wrong key or
signature 401 and nothing is stored; a repeat delivery 200, changing nothing.
"""

import json
import logging

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from loafy.models import utcnow
from loafy.money import bank, bank_feeds
from public.api_schemas import (
    NO_AUTH,
    BankFeedReceived,
    CassoDelivery,
    CassoSignature,
    SepayAuthorization,
    SepayTransaction,
    answer,
    endpoint,
)

log = logging.getLogger(__name__)

bp = Blueprint("bank_webhooks", __name__)


def _body():
    """The raw body (at most bank_feeds.MAX_BODY_BYTES) and its JSON."""
    if (request.content_length or 0) > bank_feeds.MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=True)
    if len(raw) > bank_feeds.MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    try:
        return raw, json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bank_feeds.BadFeedPayload("The body is not JSON.")


def _text(raw):
    return raw.decode("utf-8", errors="replace")


@bp.post("/api/webhooks/bank/sepay")
@endpoint(
    "SePay's transfer notifications (Authorization: Apikey SEPAY_API_KEY); 404 when not configured",
    "SePay",
    ok=BankFeedReceived,
    json=SepayTransaction,
    headers=SepayAuthorization,
    errors=(400, 401, 404, 413, 422),
    security=NO_AUTH,
    raw=True,  # verified and parsed by the view, as the feed sent it
)
def sepay():
    api_key = current_app.config.get("SEPAY_API_KEY")
    if not api_key:
        raise bank_feeds.FeedNotConfigured()
    bank_feeds.verify_sepay(request.headers.get("Authorization"), api_key)
    raw, body = _body()
    item = bank_feeds.parse_sepay(body)
    bank.store_transaction(item, _text(raw), utcnow())
    return answer(BankFeedReceived, {"success": True})


@bp.post("/api/webhooks/bank/casso")
@endpoint(
    "Casso's transfer notifications (X-Casso-Signature, HMAC-SHA512 with a timestamp); 404 when not "
    "configured",
    "Casso",
    ok=BankFeedReceived,
    json=CassoDelivery,
    headers=CassoSignature,
    errors=(400, 401, 404, 413, 422),
    security=NO_AUTH,
    raw=True,  # the signature is over the body: the view checks it
)
def casso():
    secret = current_app.config.get("CASSO_WEBHOOK_SECRET")
    if not secret:
        raise bank_feeds.FeedNotConfigured()
    raw, body = _body()
    now = utcnow()
    bank_feeds.verify_casso(request.headers.get("X-Casso-Signature"), body, secret, now)
    for item in bank_feeds.parse_casso(body):
        bank.store_transaction(item, _text(raw), now)
    return answer(BankFeedReceived, {"success": True})
