"""What SePay and Casso post: verified and turned into one plain transaction dict each.

Nothing here touches the database. Secrets are compared in constant time; Casso's signature is
HMAC-SHA512 over `t + "." + the body re-serialised with sorted keys, no spaces and ensure_ascii=False`
(DESIGN.md), so a memo in Vietnamese is signed as its UTF-8 text, not as \\u escapes.
"""

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta

from loafy.errors import LoafyError, ValidationError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # one transaction is well under 2 kB; a batch from Casso a few dozen
CASSO_MAX_AGE = timedelta(minutes=5)
CASSO_MAX_AHEAD = timedelta(minutes=1)
MAX_AMOUNT = 10**12  # more VND than any club receives at once: a bigger number is a broken body


class BadFeedSignature(LoafyError):
    code = "bad_signature"
    status = 401
    message = "The bank feed's key or signature is not valid."


class BadFeedPayload(ValidationError):
    code = "bad_payload"
    status = 400
    message = "The body is not a bank transaction."


class FeedNotConfigured(LoafyError):
    code = "not_found"
    status = 404
    message = "Not found."


def same_secret(given, expected):
    """Constant-time comparison of two secrets (str or bytes)."""
    if not given or not expected:
        return False
    given = given.encode("utf-8") if isinstance(given, str) else given
    expected = expected.encode("utf-8") if isinstance(expected, str) else expected
    return hmac.compare_digest(given, expected)


# --- SePay ----------------------------------------------------------------------------------------


def verify_sepay(authorization, api_key):
    """`Authorization: Apikey <SEPAY_API_KEY>` (the scheme's case does not matter)."""
    if not api_key:
        raise FeedNotConfigured()
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() != "apikey" or not same_secret(key.strip(), api_key):
        raise BadFeedSignature()


def parse_sepay(body):
    """SePay's {id, gateway, transactionDate, accountNumber, code, content, transferType,
    transferAmount, accumulated, subAccount, referenceCode, description} → one transaction."""
    if not isinstance(body, dict):
        raise BadFeedPayload()
    provider_id = _id(body.get("id"))
    direction = str(body.get("transferType") or "").strip().lower()
    if direction not in ("in", "out"):
        raise BadFeedPayload('transferType must be "in" or "out".', field="transferType")
    memo = " ".join(_text(body.get(key), 1000) for key in ("content", "description", "code") if body.get(key))
    return {
        "provider": "sepay",
        "provider_id": provider_id,
        "direction": direction,
        "account_number": _digits(body.get("accountNumber") or body.get("subAccount")),
        "amount": _amount(body.get("transferAmount"), "transferAmount"),
        "memo": memo,
        "bank_reference": _text(body.get("referenceCode"), 100),
        "payer_name": "",
        "payer_account": "",
        "payer_bank": _text(body.get("gateway"), 100),
        "transacted_at": _local_time(body.get("transactionDate")),
    }


# --- Casso ----------------------------------------------------------------------------------------


def casso_signed_text(timestamp, body):
    """The exact text Casso signs (DESIGN.md)."""
    return f"{timestamp}." + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def casso_signature(secret, timestamp, body):
    return hmac.new(
        secret.encode("utf-8"), casso_signed_text(timestamp, body).encode("utf-8"), hashlib.sha512
    ).hexdigest()


def casso_header(secret, body, now):
    """`X-Casso-Signature` for `body` at `now` (naive UTC): what Casso sends, and what
    `loafy bank simulate` signs with."""
    timestamp = int(now.replace(tzinfo=UTC).timestamp() * 1000)
    return f"t={timestamp},v1={casso_signature(secret, timestamp, body)}"


def verify_casso(header, body, secret, now):
    """`X-Casso-Signature: t=<unix ms>,v1=<hex>`; older than 5 minutes or over a minute ahead is
    refused like a wrong signature."""
    if not secret:
        raise FeedNotConfigured()
    parts = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts[key.strip()] = value.strip()
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16 and given):
        raise BadFeedSignature()
    signed_at = datetime.fromtimestamp(int(timestamp) / 1000, UTC).replace(tzinfo=None)
    if signed_at < now - CASSO_MAX_AGE or signed_at > now + CASSO_MAX_AHEAD:
        raise BadFeedSignature("The signature's timestamp is too old or in the future.")
    if not same_secret(given.lower(), casso_signature(secret, timestamp, body)):
        raise BadFeedSignature()


def parse_casso(body):
    """Casso v2 `{"error": 0, "data": {...}}` (data may also be a list) → transactions."""
    if not isinstance(body, dict) or body.get("error") not in (0, "0", None):
        raise BadFeedPayload()
    data = body.get("data")
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 100:
        raise BadFeedPayload()
    return [_casso_item(item) for item in items]


def _casso_item(item):
    if not isinstance(item, dict):
        raise BadFeedPayload()
    signed_amount = item.get("amount")
    if isinstance(signed_amount, bool) or not isinstance(signed_amount, (int, float, str)):
        raise BadFeedPayload("amount must be a number.", field="amount")
    try:
        value = int(float(str(signed_amount).strip()))
    except ValueError:
        raise BadFeedPayload("amount must be a number.", field="amount")
    return {
        "provider": "casso",
        "provider_id": _id(item.get("id")),
        "direction": "out" if value < 0 else "in",  # Casso reports money out as a negative amount
        "account_number": _digits(item.get("accountNumber") or item.get("subAccId")),
        "amount": _amount(abs(value), "amount"),
        "memo": _text(item.get("description"), 1000),
        "bank_reference": _text(item.get("reference"), 100),
        "payer_name": _text(item.get("counterAccountName"), 200),
        "payer_account": _text(item.get("counterAccountNumber"), 60),
        "payer_bank": _text(item.get("counterAccountBankName") or item.get("counterAccountBankId"), 100),
        "transacted_at": _local_time(item.get("transactionDateTime") or item.get("when")),
    }


# --- shared ---------------------------------------------------------------------------------------


def _id(value):
    if isinstance(value, bool) or value is None:
        raise BadFeedPayload("The transaction has no id.", field="id")
    text = str(value).strip()
    if not text or len(text) > 100 or not text.isprintable():
        raise BadFeedPayload("The transaction id is not valid.", field="id")
    return text


def _amount(value, field):
    if isinstance(value, bool):
        raise BadFeedPayload(f"{field} must be a whole number of VND.", field=field)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise BadFeedPayload(f"{field} must be a whole number of VND.", field=field)
    return value


def _text(value, limit):
    if value is None:
        return ""
    text = str(value).replace("\x00", "").strip()
    return text[:limit]


def _digits(value):
    return "".join(ch for ch in str(value or "") if ch.isascii() and ch.isalnum())[:40]


def _local_time(value):
    """The bank's 'YYYY-MM-DD HH:MM:SS' (Vietnam time, UTC+7) as naive UTC; None if unreadable."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed - timedelta(hours=7)
    return parsed.astimezone(UTC).replace(tzinfo=None)


# --- development: what a feed would post -----------------------------------------------------------


def simulated_delivery(
    provider, memo, amount, account_number, now, api_key=None, secret=None, provider_id=None
):
    """(path, headers, body bytes) of a correctly signed delivery of one incoming transfer, as SePay
    or Casso would send it: `loafy bank simulate` and the pay page's button in development."""
    import secrets as random

    provider_id = provider_id or f"sim-{random.token_hex(6)}"
    local = (now + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    if provider == "sepay":
        body = {
            "id": provider_id,
            "gateway": "Simulated",
            "transactionDate": local,
            "accountNumber": account_number,
            "code": None,
            "content": memo,
            "transferType": "in",
            "transferAmount": int(amount),
            "accumulated": 0,
            "subAccount": None,
            "referenceCode": f"SIM{provider_id[-6:].upper()}",
            "description": memo,
        }
        headers = {"Authorization": f"Apikey {api_key}"}
    elif provider == "casso":
        body = {
            "error": 0,
            "data": {
                "id": provider_id,
                "reference": f"SIM{provider_id[-6:].upper()}",
                "description": memo,
                "amount": int(amount),
                "runningBalance": 0,
                "transactionDateTime": local,
                "accountNumber": account_number,
                "bankName": "Simulated",
                "counterAccountName": "NGUOI CHUYEN THU",
                "counterAccountNumber": "0000000000",
                "counterAccountBankName": "Simulated",
            },
        }
        headers = {"X-Casso-Signature": casso_header(secret, body, now)}
    else:
        raise ValidationError("Choose sepay or casso.", field="provider")
    headers["Content-Type"] = "application/json"
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return f"/api/webhooks/bank/{provider}", headers, raw
