"""Core refusals in the reader's language, by their stable code: one table for every face.

Services raise LoafyError with an English message and a `code`; the public pages and the staff
area both show the refusal through `error_text`, so a code has the same words everywhere.
"""

from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l

from loafy.clock import format_local, format_vnd
from loafy.money.stripe_client import MAX_AMOUNT as MAX_CARD_AMOUNT
from loafy.web.locale import current_locale

# Service refusals come in English from loafy/; the view layer shows them by their stable code.
ERROR_MESSAGES = {
    "full": _l("Sorry, this session is full."),
    "already_booked": _l(
        "You already have a booking for this session. Add guests to it instead of booking twice."
    ),
    "closed": _l("This session is not open for booking."),
    "not_open": _l("Booking for this session is not open yet."),
    "started": _l("This session has already started."),
    "too_many_guests": _l("That is more guests than allowed."),
    "invalid_guest_count": _l("The number of guests must be a whole number from 0 to 3."),
    "payment_method_unavailable": _l("That payment method is not available for this session."),
    "cancellation_closed": _l("It is too late to cancel this booking online. Please contact the club."),
    "not_active": _l("This booking is no longer active."),
    # waitlist
    "not_full": _l("This session still has room for you: book it instead of joining the waitlist."),
    "duplicate": _l("You already have a booking or a waitlist place for this session."),
    "invalid_party": _l("Choose a party of you and up to 3 guests, and the smallest offer you would take."),
    "not_found": _l("We could not find that."),
    "forbidden": _l("You are not allowed to do that."),
    "invalid": _l("Some of the details are not valid."),
    "conflict": _l("That cannot be done right now."),
    "unavailable": _l("The service is temporarily unavailable. Please try again in a minute."),
    # payments
    "payments_not_configured": _l(
        "Card payments are not set up for this club yet. Please choose another payment method."
    ),
    "payment_unavailable": _l(
        "Payment is temporarily unavailable; your spot is still held. Please try again in a minute."
    ),
    "payment_provider_error": _l(
        "The payment provider refused the request. Nothing was charged; please try again later."
    ),
    "amount_too_large": _l(
        "This booking costs more than %(most)s, the most a card can be charged at once. "
        "Please book fewer guests or pay by bank transfer.",
        most=format_vnd(MAX_CARD_AMOUNT),
    ),
    "not_payable": _l("This booking is no longer waiting for payment."),
    "nothing_to_pay": _l("This booking has nothing to pay."),
    "already_confirmed": _l("This booking is already confirmed."),
    "not_card_payment": _l("This booking is not paid by card."),
    "already_paid": _l("Your payment went through; we are confirming your booking."),
    # passes
    "no_credits": _l(
        "You have no session pack with enough credits left. Buy a pack or choose another payment method."
    ),
    # sign-in and profile
    "sign_in_conflict": _l("We could not sign you in just now. Please try again."),
    "last_identity": _l("This is your only way to sign in: link another account before removing it."),
    "too_many_tokens": _l("You have too many tokens. Revoke one you no longer use first."),
    "bad_email": _l(
        "Your sign-in account gave an e-mail address that is not valid, so we cannot sign you in "
        "with it. Correct the address at your provider, or sign in another way."
    ),
}
# The refusals the pay page's script may meet when it asks for a PaymentIntent.
PAY_ERROR_CODES = (
    "payments_not_configured",
    "payment_unavailable",
    "payment_provider_error",
    "amount_too_large",
    "not_payable",
    "nothing_to_pay",
    "already_confirmed",
    "not_card_payment",
    "already_paid",
    "not_found",
)


def error_text(exc, **context):
    """A service refusal in the reader's language: English as the service said it, else by its code.

    `context` may give `left` (spots still free) and `max_guests` for the messages that name them.
    """
    if current_locale() == "en":
        return exc.message
    if exc.code == "full" and context.get("left"):
        left = context["left"]
        return ngettext(
            "Only %(num)d spot left: bring fewer guests.",
            "Only %(num)d spots left: bring fewer guests.",
            left,
        )
    if exc.code == "too_many_guests" and context.get("max_guests") is not None:
        return ngettext(
            "You can bring at most %(num)d guest.",
            "You can bring at most %(num)d guests.",
            context["max_guests"],
        )
    if exc.code == "blocked" and getattr(exc, "until", None):  # calendar: the attendance policy
        return gettext(
            "Online booking is paused for your account until %(time)s: %(limit)d missed sessions or late "
            "cancellations within %(days)d days. Please contact the club if this is a mistake.",
            time=format_local(exc.until),
            limit=exc.limit,
            days=exc.days,
        )
    message = ERROR_MESSAGES.get(exc.code)
    return str(message) if message is not None else exc.message


def messages_for(codes):
    """Refusal texts by code for a page's script, in the reader's language; in English the
    server's own (more specific) message is shown, so nothing is sent."""
    if current_locale() == "en":
        return {}
    return {code: str(ERROR_MESSAGES[code]) for code in codes}
