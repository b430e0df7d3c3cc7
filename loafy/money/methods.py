"""Which payment methods a session accepts now: the one rule the pages, the API and the admin ask.

A method is accepted when the club enables it in the settings, when it can actually be used (card
only with Stripe's keys set: a card booking nobody can pay holds spots for nothing), and when the
session takes it (cash only where the session allows paying at the door). A free session asks for
no payment at all.
"""

from loafy.errors import ValidationError
from loafy.money import stripe_client
from loafy.settings import recent_settings


class PaymentMethodUnavailable(ValidationError):
    code = "payment_method_unavailable"
    message = "That payment method is not available for this session."


def offered_methods(settings=None):
    """The methods the club offers at all, in the settings' order: the enabled ones that work."""
    settings = settings if settings is not None else recent_settings()
    methods = list(settings["payment_methods"])
    if "stripe" in methods and not stripe_client.card_configured():
        methods.remove("stripe")
    return methods


def method_unavailable_reason(method):
    """Why the club cannot take `method` at all (None when it can): the part of the rule that does
    not depend on a session, checked before any session is read (the booking hot path)."""
    if method == "stripe" and not stripe_client.card_configured():
        return (
            "Card payment is not set up for this club (no Stripe keys). Please choose another payment method."
        )
    return None


def accepted_payment_methods(club_session, now, settings=None):
    """The methods `club_session` accepts at `now`: [] for a free session (nothing to pay)."""
    if club_session.price <= 0:
        return []
    methods = offered_methods(settings)
    if "cash" in methods and not club_session.allow_pay_at_door:
        methods.remove("cash")
    return methods


def check_payment_method(club_session, method, now, settings=None):
    """Refuse a method the session does not accept, saying why."""
    if club_session.price <= 0:
        return  # free: confirmed at once whatever was chosen, nothing is charged
    if method in accepted_payment_methods(club_session, now, settings):
        return
    reason = method_unavailable_reason(method)
    if reason is None and method == "cash":
        reason = "This session does not take cash at the door; please pay by card or bank transfer."
    raise PaymentMethodUnavailable(reason, field="payment_method")


def booking_form_methods(club_session, now, settings=None):
    """The choices a booking form offers: the accepted methods. A free session accepts none, but a
    booking records one, so its form offers the club's methods (nothing is charged either way)."""
    if club_session.price <= 0:
        return offered_methods(settings)
    return accepted_payment_methods(club_session, now, settings)
