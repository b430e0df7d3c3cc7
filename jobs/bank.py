"""Bank-transfer jobs: ids in, idempotent. The rules live in loafy.money.bank."""

import logging

from jobs.runtime import job
from loafy.models import utcnow

log = logging.getLogger(__name__)


@job
def match_transaction(app, transaction_id):
    """Match one stored bank transaction (enqueued after the webhook's commit); a second run does nothing."""
    from loafy.money import bank

    return bank.match_transaction(transaction_id, utcnow())


@job
def match_pending(app):
    """Every minute: match what is still waiting (its job lost while Redis was down, say)."""
    from loafy.money import bank

    return bank.match_pending(utcnow())
