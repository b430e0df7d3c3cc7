"""Bank transfers matched automatically: store what a bank feed reports once, then match it.

A transfer is stored once by (provider, provider id) with its raw payload, in the webhook's short
transaction; the match job (jobs.bank.match_transaction) runs after commit, and the every-minute
sweep is its backstop. Matching, under the transaction's row lock (so two runs decide once):

- only incoming transfers to the club's account count (others are kept, marked "ignored");
- the memo is searched for a code of a registered kind (bookings "LB-", passes "LP-", ...):
  case-insensitive, with or without its dash, among the bank's own words ("MBVCB.3317 lbk7q3m ck");
- no code, or a code that names nothing: "unmatched" (staff assign it in the admin);
- already paid: the money is recorded and flagged "duplicate" (and is owed back);
- less than due (with earlier short transfers for it): recorded, still unpaid, "underpaid";
- exact or more: paid through the same Core function as staff "mark paid" (ledger row, e-mail,
  audit), "matched" or "overpaid"; for a lapsed booking invariant 4 decides (re-confirmed if a slot
  is free, else "refund_due": a transfer cannot be refunded by API, so staff get the payer's
  details).

Other kinds of code plug in with register_code_kind (passes register "LP").
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from peewee import IntegrityError, fn

from loafy import audit, queue
from loafy.booking import staff
from loafy.booking.bookings import CODE_ALPHABET, CODE_LENGTH
from loafy.clock import format_vnd
from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.locking import lock_booking, lock_row
from loafy.models import BANK_FLAGGED_STATUSES, BankTransaction, Booking, LedgerEntry
from loafy.settings import get_settings

log = logging.getLogger(__name__)

MATCH_JOB = "jobs.bank.match_transaction"
# The ledger rows' notes (fixed, so every face can say them in the reader's language).
MATCHED_NOTE = "bank transfer, matched by its code"
ASSIGNED_NOTE = "bank transfer, assigned by staff"
SHORT_NOTE = "short bank transfer: not paid yet"


# --- the registry of codes a memo may hold -------------------------------------------------------


def _as_is(target):
    return target


@dataclass(frozen=True)
class CodeKind:
    """A kind of thing a transfer can pay, found by its code's prefix.

    lookup(code) -> the target or None · amount_due(target) -> VND · is_paid(target) -> bool ·
    record(actor, target, transaction, amount, now) -> "confirmed" | "reconfirmed" | "refund_due" |
    "duplicate" (pays it; the same function staff use) · record_partial(target, transaction, now)
    (money in, nothing confirmed) · describe(target) -> text for staff · lock(target) -> the
    target re-read under its lock.
    """

    name: str
    prefix: str
    lookup: Callable
    amount_due: Callable
    is_paid: Callable
    record: Callable
    record_partial: Callable
    describe: Callable = str
    # lock(target) -> the target re-read under its lock, inside the caller's transaction: two
    # transfers for one booking, matched at once, must see each other (the sum, already paid).
    lock: Callable = _as_is
    body_alphabet: str = CODE_ALPHABET
    body_length: int = CODE_LENGTH


_KINDS = {}


def register_code_kind(kind):
    """Add (or replace, by name) a kind of code the matcher recognises."""
    _KINDS[kind.name] = kind
    _patterns.clear()


def code_kinds():
    return dict(_KINDS)


_patterns = {}


def _pattern(kind):
    if kind.name not in _patterns:
        body = f"[{re.escape(kind.body_alphabet)}]{{{kind.body_length}}}"
        # Not inside a longer word ("CLB" is Vietnamese for club); the dash may be lost, or become a
        # space, dot or underscore.
        _patterns[kind.name] = re.compile(
            rf"(?<![^\W_]){re.escape(kind.prefix)}[-_. ]?({body})(?![^\W_])", re.IGNORECASE
        )
    return _patterns[kind.name]


def find_codes(memo):
    """[(kind, "PREFIX-BODY")] for every code in the memo, in order of appearance."""
    found = []
    text = memo or ""
    for kind in _KINDS.values():
        for match in _pattern(kind).finditer(text):
            found.append((match.start(), kind, f"{kind.prefix}-{match.group(1).upper()}"))
    return [(kind, code) for _, kind, code in sorted(found, key=lambda item: item[0])]


def resolve_memo(memo):
    """(kind, code, target) for the first code in the memo that names something, else
    (None, first code or None, None)."""
    codes = find_codes(memo)
    for kind, code in codes:
        target = kind.lookup(code)
        if target is not None:
            return kind, code, target
    return None, (codes[0][1] if codes else None), None


# --- bookings, the built-in kind -----------------------------------------------------------------


def _booking_lookup(code):
    return Booking.get_or_none(Booking.code == code)


def _booking_lock(booking):
    from loafy.booking.bookings import lock_booking

    return lock_booking(booking)


def _booking_record(actor, booking, transaction, amount, now):
    return staff.record_received(
        actor,
        booking,
        method="bank_transfer",
        provider_id=ledger_id(transaction),
        amount=amount,
        now=now,
        note=MATCHED_NOTE if actor is None else ASSIGNED_NOTE,
        action="booking.bank_transfer_matched" if actor is None else "booking.bank_transfer_assigned",
        details={"transaction": transaction.id, "memo": transaction.memo[:200]},
        refuse_settled=False,
    )


def _booking_record_partial(booking, transaction, now):
    """Money that does not pay the booking yet: in the ledger (it arrived), the booking untouched."""
    with db.atomic():
        lock_booking(booking)
        try:
            with db.atomic():
                LedgerEntry.create(
                    booking=booking.id,
                    kind="payment",
                    provider="bank_transfer",
                    provider_id=ledger_id(transaction),
                    amount=transaction.amount,
                    status="succeeded",
                    note=SHORT_NOTE,
                    created_at=now,
                )
        except IntegrityError:
            pass


register_code_kind(
    CodeKind(
        name="booking",
        prefix="LB",
        lookup=_booking_lookup,
        amount_due=lambda booking: booking.amount,
        is_paid=lambda booking: booking.payment_status in ("paid", "refunded"),
        record=_booking_record,
        record_partial=_booking_record_partial,
        describe=lambda booking: f"{booking.code} ({booking.status}, {booking.payment_status})",
        lock=_booking_lock,
    )
)


# --- storing what a feed reports -----------------------------------------------------------------


def ledger_id(transaction):
    """The ledger's provider id for a bank transaction (unique with provider "bank_transfer")."""
    return f"{transaction.provider}:{transaction.provider_id}"


def store_transaction(item, raw, now):
    """Store one transaction (a parsed feed item) once; enqueue its match after commit.

    Returns (transaction, created). A repeat delivery returns the stored row and changes nothing.
    """
    existing = _stored(item["provider"], item["provider_id"])
    if existing is not None:
        return existing, False
    fields = {k: item.get(k) for k in _FIELDS if k in item}
    try:
        with db.atomic():
            transaction = BankTransaction.create(raw=raw, received_at=now, status="received", **fields)
            queue.enqueue(MATCH_JOB, transaction.id)
    except IntegrityError:
        # A delivery racing this one stored it first (the unique index decides).
        return _stored(item["provider"], item["provider_id"]), False
    log.info(
        "bank transaction %s/%s stored: %s %s VND",
        item["provider"],
        item["provider_id"],
        item.get("direction"),
        item.get("amount"),
    )
    return transaction, True


_FIELDS = (
    "provider",
    "provider_id",
    "direction",
    "account_number",
    "amount",
    "memo",
    "bank_reference",
    "payer_name",
    "payer_account",
    "payer_bank",
    "transacted_at",
)


def _stored(provider, provider_id):
    return BankTransaction.get_or_none(
        (BankTransaction.provider == provider) & (BankTransaction.provider_id == provider_id)
    )


# --- matching ------------------------------------------------------------------------------------


def _lock(transaction_id):
    return lock_row(BankTransaction, transaction_id)


def _to_club_account(transaction, settings):
    ours = "".join(ch for ch in str(settings.get("bank_account_number") or "") if ch.isalnum())
    return bool(ours) and transaction.account_number == ours


def match_transaction(transaction_id, now):
    """Decide once what a stored transaction pays (idempotent: a matched one is left alone).

    Returns the transaction's status.
    """
    with db.atomic():
        transaction = _lock(transaction_id)
        if transaction is None:
            return "missing"
        if transaction.status != "received":
            return transaction.status
        if transaction.direction != "in" or not _to_club_account(transaction, get_settings()):
            _set(transaction, now, status="ignored")
            return "ignored"
        kind, code, target = resolve_memo(transaction.memo)
        if target is None:
            _set(transaction, now, status="unmatched", code=code)
            log.info("bank transaction %s: no code in %r", transaction.id, transaction.memo[:80])
            return "unmatched"
        status = _apply(None, transaction, kind, code, target, now)
    return status


def _apply(actor, transaction, kind, code, target, now):
    """Pay `target` with the transaction; record what happened on the transaction. Caller holds
    the transaction's lock."""
    target = kind.lock(target)
    due = kind.amount_due(target)
    if kind.is_paid(target):
        outcome = kind.record(actor, target, transaction, transaction.amount, now)
        status = "duplicate"
    else:
        earlier = _short_transfers(kind.name, target.id, transaction.id)
        total = earlier + transaction.amount
        if total < due:
            kind.record_partial(target, transaction, now)
            outcome, status = "underpaid", "underpaid"
        else:
            outcome = kind.record(actor, target, transaction, transaction.amount, now)
            if outcome == "refund_due":
                status = "refund_due"
            elif outcome == "duplicate":
                status = "duplicate"
            else:
                status = "overpaid" if total > due else "matched"
            if earlier:  # the short transfers before this one are now part of the payment
                BankTransaction.update(resolved_at=now, resolution="completed by a later transfer").where(
                    (BankTransaction.target_kind == kind.name)
                    & (BankTransaction.target_id == target.id)
                    & (BankTransaction.status == "underpaid")
                    & BankTransaction.resolved_at.is_null()
                ).execute()
    _set(
        transaction,
        now,
        status=status,
        code=code,
        target_kind=kind.name,
        target_id=target.id,
        outcome=outcome,
        matched_at=now,
    )
    log.info("bank transaction %s → %s %s: %s (%s)", transaction.id, kind.name, code, status, outcome)
    return status


def _short_transfers(kind_name, target_id, exclude_id):
    """What earlier short transfers for the same target brought, still waiting to add up."""
    return int(
        BankTransaction.select(fn.COALESCE(fn.SUM(BankTransaction.amount), 0))
        .where(
            (BankTransaction.target_kind == kind_name)
            & (BankTransaction.target_id == target_id)
            & (BankTransaction.status == "underpaid")
            & BankTransaction.resolved_at.is_null()
            & (BankTransaction.id != exclude_id)
        )
        .scalar()
    )


def _set(transaction, now, **fields):
    BankTransaction.update(**fields).where(BankTransaction.id == transaction.id).execute()
    for key, value in fields.items():
        setattr(transaction, key, value)


def match_pending(now, limit=500):
    """The backstop: match every transaction still "received" (its job lost, Redis down)."""
    ids = [
        row.id
        for row in BankTransaction.select(BankTransaction.id)
        .where(BankTransaction.status == "received")
        .order_by(BankTransaction.id)
        .limit(limit)
    ]
    return {transaction_id: match_transaction(transaction_id, now) for transaction_id in ids}


# --- staff: the queue, assigning, resolving ------------------------------------------------------


def _require_staff(actor):
    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can handle bank transactions.")


def queue_query():
    """Flagged transactions no one has dealt with yet, oldest first."""
    return (
        BankTransaction.select()
        .where(BankTransaction.status.in_(BANK_FLAGGED_STATUSES) & BankTransaction.resolved_at.is_null())
        .order_by(BankTransaction.received_at, BankTransaction.id)
    )


def queue_size():
    return queue_query().count()


def get_transaction(transaction_id):
    number = parse_id(transaction_id, "That bank transaction does not exist.")
    transaction = BankTransaction.get_or_none(BankTransaction.id == number)
    if transaction is None:
        raise NotFound("That bank transaction does not exist.")
    return transaction


def assign_transaction(actor, transaction_id, code, now):
    """Staff say what an unmatched transfer pays (a booking or pass code): it is then matched
    exactly as if the memo had held that code. Audited."""
    _require_staff(actor)
    transaction = get_transaction(transaction_id)
    kind, found, target = resolve_memo(str(code or ""))
    if target is None:
        raise ValidationError("No booking or pass has that code.", field="code")
    with db.atomic():
        transaction = _lock(transaction.id)
        if transaction.status != "unmatched" or transaction.resolved_at is not None:
            raise Conflict("Only an unmatched transaction can be assigned.", code="not_unmatched")
        if transaction.direction != "in":
            raise Conflict("Money sent out cannot pay a booking.", code="outgoing")
        status = _apply(actor, transaction, kind, found, target, now)
        audit.record(
            actor,
            "bank.assign",
            "bank_transaction",
            transaction.id,
            {"code": found, "amount": transaction.amount, "status": status},
            now,
        )
    return BankTransaction.get_by_id(transaction.id)


def resolve_transaction(actor, transaction_id, now, note="", refunded=False, bank_reference=""):
    """Staff dealt with a flagged transaction: the refund was sent (recorded in the ledger, with
    the bank's reference), or it needs nothing more. Audited; it leaves the queue."""
    _require_staff(actor)
    transaction = get_transaction(transaction_id)
    note = str(note or "").strip()[:500]
    bank_reference = str(bank_reference or "").strip()[:100]
    if transaction.status not in BANK_FLAGGED_STATUSES:
        raise Conflict("This transaction needs nothing from staff.", code="not_flagged")
    if transaction.resolved_at is not None:
        raise Conflict("This transaction was dealt with already.", code="resolved")
    if refunded and not bank_reference:
        raise ValidationError("Enter the bank's reference of the refund you sent.", field="bank_reference")
    refund_amount = 0
    with db.atomic():
        transaction = _lock(transaction.id)
        if transaction.resolved_at is not None:
            raise Conflict("This transaction was dealt with already.", code="resolved")
        if refunded and transaction.target_kind == "booking" and transaction.target_id:
            refund_amount = staff.record_manual_refund(actor, transaction.target_id, "bank_transfer", now)
        text = "; ".join(
            part for part in (f"refunded, bank reference {bank_reference}" if refunded else "", note) if part
        )
        _set(transaction, now, resolved_at=now, resolved_by=actor.id, resolution=text or "done")
        audit.record(
            actor,
            "bank.resolve",
            "bank_transaction",
            transaction.id,
            {
                "status": transaction.status,
                "refunded": bool(refunded),
                "refund_amount": refund_amount,
                "bank_reference": bank_reference,
                "note": note,
            },
            now,
        )
    return BankTransaction.get_by_id(transaction.id)


def payer_details(transaction):
    """Who sent the money, as far as the feed says (what staff need to send a refund)."""
    parts = [transaction.payer_name, transaction.payer_account, transaction.payer_bank]
    return " · ".join(p for p in parts if p) or "—"


def flagged_lines():
    """`loafy payments reconcile`: one line per transaction waiting for staff."""
    lines = []
    for transaction in queue_query():
        target = transaction.code or "no code"
        lines.append(
            f"bank {transaction.provider} {transaction.provider_id}: {transaction.status}, "
            f"{format_vnd(transaction.amount)}, {target}, memo {transaction.memo[:60]!r}, "
            f"payer {payer_details(transaction)}"
        )
    return lines


def simulate_transfer(code, amount, account_number, now, provider="sepay"):
    """Development: store an incoming transfer as the feed would report it (same parsing, same
    store, same match job) -- the pay page's "simulate transfer" button."""
    from loafy.money import bank_feeds

    _path, _headers, raw = bank_feeds.simulated_delivery(
        provider, f"MBVCB.{amount % 10000} {code} chuyen khoan", amount, account_number, now, "-", "-"
    )
    body = json.loads(raw)
    items = [bank_feeds.parse_sepay(body)] if provider == "sepay" else bank_feeds.parse_casso(body)
    return [store_transaction(item, raw.decode("utf-8"), now)[0] for item in items]


# Passes register their LP- codes (at the end: that module imports this one).
from loafy.passes import bank_codes  # noqa: E402, F401
