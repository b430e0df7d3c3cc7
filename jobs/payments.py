"""Payment jobs: ids in, idempotent. The rules live in loafy.money.payments."""

import logging

from jobs.runtime import job
from loafy.models import utcnow

log = logging.getLogger(__name__)


@job
def settle_booking(app, booking_id):
    """Move a booking's money to match its state: refund if refund-due, cancel an open intent."""
    from loafy.money import payments

    return payments.settle_booking(booking_id, utcnow())


@job
def settle_due(app):
    """Catch-up sweep: refund every booking still owed money back (after a lost job or a Stripe outage)."""
    from loafy.money import payments
    from loafy.passes import card

    done = payments.settle_due(utcnow())
    card.settle_due_passes(utcnow())
    return done


@job
def settle_pass(app, pass_id):
    """Move a pass's money to match its state: refund what is owed back, cancel an open intent."""
    from loafy.passes import card

    return card.settle_pass(pass_id, utcnow())
