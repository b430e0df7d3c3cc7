"""Payments on the web: the Stripe PaymentIntent API, the Stripe webhook and the pay page."""

from flask import Blueprint

bp = Blueprint("payments", __name__)
