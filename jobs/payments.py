"""Payment jobs: ids in, idempotent. The rules live in loafy.money.settle."""

import logging

from jobs.runtime import job
from loafy.models import utcnow

log = logging.getLogger(__name__)


@job
def settle_booking(app, booking_id):
    """Move a booking's money to match its state: refund if refund-due, cancel an open intent."""
    from loafy.money import settle

    return settle.settle_booking(booking_id, utcnow())


@job
def settle_due(app):
    """Catch-up sweep: refund every booking still owed money back (after a lost job or a Stripe outage)."""
    from loafy.money import settle
    from loafy.passes import card

    done = settle.settle_due(utcnow())
    card.settle_due_passes(utcnow())
    return done


@job
def settle_pass(app, pass_id):
    """Move a pass's money to match its state: refund what is owed back, cancel an open intent."""
    from loafy.passes import card

    return card.settle_pass(pass_id, utcnow())
