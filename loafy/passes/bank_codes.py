"""Passes' LP- codes for the bank matcher (loafy.money.bank): a transfer whose memo holds a pass's
code pays it through record_pass_payment, the function staff "mark paid" uses too."""

from peewee import IntegrityError

from loafy import audit
from loafy.db import db
from loafy.models import LedgerEntry, Pass
from loafy.money import bank
from loafy.passes import passes

OUTCOMES = {
    "activated": "confirmed",
    "duplicate": "duplicate",
    "refund_due": "refund_due",
    "underpaid": "underpaid",
}


def _record(actor, club_pass, transaction, amount, now):
    with db.atomic():
        outcome = passes.record_pass_payment(
            club_pass.id,
            provider="bank_transfer",
            provider_id=bank.ledger_id(transaction),
            amount=amount,
            now=now,
            actor=actor,
            note=f"bank transfer {transaction.provider} {transaction.provider_id}",
        )
        action = "pass.bank_transfer_matched" if actor is None else "pass.bank_transfer_assigned"
        details = {"code": club_pass.code, "transaction": transaction.id, "outcome": outcome}
        audit.record(actor, action, "pass", club_pass.id, details, now)
    return OUTCOMES.get(outcome, outcome)


def _record_partial(club_pass, transaction, now):
    """Money that does not pay the pass yet: in the ledger (it arrived), the pass untouched."""
    try:
        with db.atomic():
            LedgerEntry.create(
                club_pass=club_pass.id,
                kind="payment",
                provider="bank_transfer",
                provider_id=bank.ledger_id(transaction),
                amount=transaction.amount,
                status="succeeded",
                note="short bank transfer: the pass is not paid yet",
                created_at=now,
            )
    except IntegrityError:
        pass


bank.register_code_kind(
    bank.CodeKind(
        name="pass",
        prefix="LP",
        lookup=passes.find_pass_by_code,
        amount_due=lambda club_pass: club_pass.amount,
        is_paid=lambda club_pass: club_pass.status in ("paid", "cancelled"),
        record=_record,
        record_partial=_record_partial,
        describe=lambda club_pass: f"{club_pass.code} (pass, {Pass.get_by_id(club_pass.id).status})",
    )
)
