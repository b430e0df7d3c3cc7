"""Payments on the web: the Stripe PaymentIntent API, the Stripe webhook and the pay page."""

import logging

from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user, login_required

from loafy.booking.bookings import get_booking
from loafy.errors import LoafyError, NotFound
from loafy.models import utcnow
from loafy.money import payments
from loafy.settings import get_settings
from public.api_schemas import (
    NO_AUTH,
    NewPaymentIntent,
    PaymentIntent,
    StripeEvent,
    StripeSignature,
    WebhookReceived,
    answer,
    endpoint,
)
from public.i18n import PAY_ERROR_CODES, error_text, messages_for

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__)


def _own_booking(booking_id):
    """The signed-in player's own booking; staff and other players get 404 here too."""
    booking = get_booking(booking_id, current_user)
    if booking.user_id != current_user.id:
        raise NotFound("That booking does not exist.")
    return booking


@bp.post("/api/payments/stripe/intent")
@login_required
@endpoint(
    "A Stripe PaymentIntent for my booking",
    "owner",
    ok=PaymentIntent,
    json=NewPaymentIntent,
    errors=(400, 401, 404, 409, 413, 415, 422),
)
def create_intent():
    booking_id = request.context.json.booking_id
    return answer(PaymentIntent, payments.create_intent(current_user, booking_id, utcnow()))


@bp.post("/api/webhooks/stripe")
@endpoint(
    "Stripe events (signature verified): payment_intent.succeeded, .payment_failed, .canceled, "
    "charge.refunded",
    "Stripe",
    ok=WebhookReceived,
    json=StripeEvent,
    headers=StripeSignature,
    errors=(400, 413),
    security=NO_AUTH,
    raw=True,  # the signature is over the raw bytes: the view reads them itself
)
def stripe_webhook():
    """Stripe's deliveries. 2xx only once the change is committed; 4xx for a forged or broken
    body; 5xx (database or Stripe down) makes Stripe retry."""
    outcome = payments.handle_webhook(
        request.get_data(cache=False), request.headers.get("Stripe-Signature"), utcnow()
    )
    return jsonify({"received": True, "outcome": outcome})


@bp.get("/bookings/<int:booking_id>/pay")
@login_required
def pay(booking_id):
    booking = _own_booking(booking_id)
    now = utcnow()
    problem = None
    if booking.payment_method == "stripe":
        try:
            payments.check_payable(booking, now)
        except LoafyError as exc:
            problem = error_text(exc)
    settings = get_settings()
    return render_template(
        "public/pay.html",
        booking=booking,
        club_session=booking.club_session,
        problem=problem,
        script_errors=messages_for(PAY_ERROR_CODES),
        settings=settings,
        publishable_key=payments.publishable_key(),
        stripe_js_url=payments.stripe_js_url(),
        vietqr=_vietqr_svg(booking, settings) if booking.payment_method == "bank_transfer" else None,
        now=now,
    )


@bp.get("/bookings/<int:booking_id>/status.json")
@login_required
def booking_status(booking_id):
    booking = _own_booking(booking_id)
    return jsonify({"status": booking.status, "payment_status": booking.payment_status})


# --- VietQR (EMVCo merchant-presented QR, NAPAS "QRIBFTTA" account transfer) -----------------------


def _tlv(tag, value):
    return f"{tag}{len(value):02d}{value}"


def _crc16(text):
    crc = 0xFFFF
    for byte in text.encode("utf-8"):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return f"{crc:04X}"


def vietqr_payload(bank_bin, account, amount, reference):
    """The text a Vietnamese banking app reads: bank BIN + account, amount in VND, the code as note."""
    beneficiary = _tlv("00", bank_bin) + _tlv("01", account)
    merchant = _tlv("00", "A000000727") + _tlv("01", beneficiary) + _tlv("02", "QRIBFTTA")
    body = (
        _tlv("00", "01")
        + _tlv("01", "12")  # dynamic: one payment
        + _tlv("38", merchant)
        + _tlv("53", "704")  # VND
        + _tlv("54", str(int(amount)))
        + _tlv("58", "VN")
        + _tlv("62", _tlv("08", reference))
        + "6304"
    )
    return body + _crc16(body)


def _vietqr_svg(booking, settings):
    bank_bin = str(settings.get("bank_bin") or "")
    account = str(settings.get("bank_account_number") or "")
    if not (bank_bin.isdigit() and account and booking.amount > 0):
        return None
    try:
        import segno

        qr = segno.make(vietqr_payload(bank_bin, account, booking.amount, booking.code), error="m")
        return qr.svg_inline(scale=5, title=f"VietQR {booking.code}")
    except Exception:  # a QR is a convenience: the bank details are shown in text anyway
        log.exception("could not draw the VietQR code for %s", booking.code)
        return None
