"""Payments on the web: the Stripe PaymentIntent API, the Stripe webhook and the pay page."""

import logging

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from loafy.booking.bookings import get_own_booking
from loafy.errors import LoafyError, NotFound, ValidationError
from loafy.models import utcnow
from loafy.money import bank, card, stripe_client, vietqr, webhooks
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


@bp.post("/api/payments/stripe/intent")
@login_required
@endpoint(
    "A Stripe PaymentIntent for my booking, or for my pass (pass_id)",
    "owner",
    ok=PaymentIntent,
    json=NewPaymentIntent,
    errors=(400, 401, 404, 409, 413, 415, 422),
)
def create_intent():
    data = request.context.json
    sent = data.model_fields_set
    if "pass_id" in sent and "booking_id" not in sent:  # passes: paying a pass by card
        from loafy.passes import card as pass_card

        return answer(PaymentIntent, pass_card.create_pass_intent(current_user, data.pass_id, utcnow()))
    if "booking_id" not in sent:
        raise ValidationError(
            'Send JSON like {"booking_id": 12} (or {"pass_id": 3} for a pass).', field="booking_id"
        )
    return answer(PaymentIntent, card.create_intent(current_user, data.booking_id, utcnow()))


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
    outcome = webhooks.handle_webhook(
        request.get_data(cache=False), request.headers.get("Stripe-Signature"), utcnow()
    )
    return jsonify({"received": True, "outcome": outcome})


@bp.get("/bookings/<int:booking_id>/pay")
@login_required
def pay(booking_id):
    booking = get_own_booking(booking_id, current_user)
    now = utcnow()
    problem = None
    if booking.payment_method == "stripe":
        try:
            card.check_payable(booking, now)
        except LoafyError as exc:
            problem = error_text(exc)
    settings = get_settings()
    return render_template(
        "public/pay.html",
        booking=booking,
        status=booking.shown_status(now),  # past its deadline: expired, whether or not the job ran
        club_session=booking.club_session,
        problem=problem,
        script_errors=messages_for(PAY_ERROR_CODES),
        settings=settings,
        publishable_key=stripe_client.publishable_key(),
        stripe_js_url=stripe_client.stripe_js_url(),
        bank=vietqr.bank_details(settings, booking.code),
        simulate=current_app.config["LOAFY_ENV"] == "development"
        and booking.payment_method == "bank_transfer",
        vietqr=vietqr.qr_svg(settings, booking.amount, booking.code)
        if booking.payment_method == "bank_transfer"
        else None,
        now=now,
    )


@bp.post("/bookings/<int:booking_id>/simulate-transfer")
@login_required
def simulate_transfer(booking_id):
    """Development only: the bank feed reports this booking's transfer (matched by the worker)."""
    if current_app.config["LOAFY_ENV"] != "development":
        raise NotFound("That page does not exist.")
    booking = get_own_booking(booking_id, current_user)
    if booking.payment_method != "bank_transfer":
        raise NotFound("That booking is not paid by bank transfer.")
    settings = get_settings()
    bank.simulate_transfer(booking.code, booking.amount, settings["bank_account_number"], utcnow())
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify({"success": True})
    return redirect(url_for("payments.pay", booking_id=booking.id))


@bp.get("/bookings/<int:booking_id>/status.json")
@login_required
def booking_status(booking_id):
    booking = get_own_booking(booking_id, current_user)
    return jsonify({"status": booking.shown_status(utcnow()), "payment_status": booking.payment_status})
