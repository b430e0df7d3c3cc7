"""Buying a pass, paying for it, activating it, cancelling, granting and expiring passes, membership.

Every payment of a pass (card webhook, bank transfer matched by its code, cash at the desk, staff
"mark paid") goes through record_pass_payment: one ledger row keyed by its provider id (invariant
3), then the pass is activated. A pass has no scarce slots, so a payment that arrives after the
pass's deadline still activates it (invariant 4). Activation holds the holder's row lock, so two
passes paid at once stack one after the other instead of starting together.
"""

import logging
from datetime import timedelta

from peewee import IntegrityError, fn

from loafy import audit, queue
from loafy.booking.bookings import CODE_ATTEMPTS, new_code
from loafy.clock import format_local
from loafy.db import db, is_postgres
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError, parse_id
from loafy.models import LedgerEntry, Pass, PassProduct, User
from loafy.passes.credits import used_credits
from loafy.passes.products import get_product
from loafy.settings import get_settings

log = logging.getLogger(__name__)

BUY_METHODS = ("stripe", "bank_transfer", "cash")
DESK_METHODS = ("cash", "bank_transfer")
SETTLE_PASS_JOB = "jobs.payments.settle_pass"  # noqa: S105 - a job path, not a secret


class PassMethodUnavailable(ValidationError):
    code = "payment_method_unavailable"
    message = "That payment method is not available. Choose card, bank transfer or cash."


class PassNotPending(Conflict):
    code = "not_payable"
    message = "This pass is no longer waiting for payment."


class PassNotCancellable(Conflict):
    code = "not_active"
    message = "This pass is already cancelled or expired."


def new_pass_code():
    """LP- and five letters from the booking codes' unambiguous alphabet."""
    return "LP-" + new_code()[3:]


def _require_signed_in(actor):
    if actor is None or not getattr(actor, "is_authenticated", True):
        raise PermissionDenied("Please sign in first.")


def _require_admin(actor, message="Only an admin can do that."):
    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied(message)


def _create_pass(user_id, product, now, **fields):
    for _attempt in range(CODE_ATTEMPTS):
        try:
            with db.atomic():
                return Pass.create(
                    code=new_pass_code(),
                    user=user_id,
                    product=product.id,
                    kind=product.kind,
                    days=product.duration_days if product.kind == "period" else product.validity_days,
                    credits_total=product.credits if product.kind == "pack" else None,
                    early_access=product.early_access,
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
        except IntegrityError:
            log.info("pass code collision; retrying")
    raise Conflict("We could not create your pass just now. Please try again.")


# --- buying --------------------------------------------------------------------------------------


def buy_pass(actor, product_id, payment_method, now, card_available=True):
    """A pending pass for `actor`, to pay by card, bank transfer or cash at the desk before its
    deadline. A free product is active at once."""
    _require_signed_in(actor)
    product = get_product(product_id)
    settings = get_settings()
    if payment_method not in BUY_METHODS or payment_method not in settings["payment_methods"]:
        raise PassMethodUnavailable(field="payment_method")
    if payment_method == "stripe" and not card_available:
        raise PassMethodUnavailable("Card payments are not set up for this club.", field="payment_method")
    with db.atomic():
        club_pass = _create_pass(
            actor.id,
            product,
            now,
            amount=product.price,
            payment_method=payment_method,
            payment_deadline=now + timedelta(minutes=settings["payment_deadline_minutes"]),
        )
        if product.price == 0:
            _activate(club_pass, now)
    log.info("pass %s (%s) bought by user %s, %s", club_pass.code, product.name, actor.id, payment_method)
    return Pass.get_by_id(club_pass.id)


def _lock_user(user_id):
    query = User.select(User.id).where(User.id == user_id)
    if is_postgres():
        query = query.for_update()
    query.first()


def next_start(user_id, kind, now):
    """Where a newly paid pass starts: a period where the holder's last period ends (stacking),
    else now. Call under the holder's lock."""
    if kind != "period":
        return now
    last_end = (
        Pass.select(fn.MAX(Pass.ends_at))
        .where(
            (Pass.user == user_id) & (Pass.kind == "period") & (Pass.status == "paid") & (Pass.ends_at > now)
        )
        .scalar()
    )
    last_end = Pass.ends_at.python_value(last_end) if last_end is not None else None
    return max(now, last_end) if last_end else now


def _activate(club_pass, now, starts_at=None):
    """Paid: set its period (under the holder's lock, inside the caller's transaction)."""
    _lock_user(club_pass.user_id)
    starts = starts_at or next_start(club_pass.user_id, club_pass.kind, now)
    ends = starts + timedelta(days=club_pass.days)
    changed = (
        Pass.update(
            status="paid",
            starts_at=starts,
            ends_at=ends,
            paid_at=now,
            payment_deadline=None,
            expired_at=None,
            updated_at=now,
        )
        .where((Pass.id == club_pass.id) & Pass.status.in_(("pending_payment", "expired")))
        .execute()
    )
    if changed:
        from loafy.passes import mail

        mail.pass_confirmed(club_pass, now)
    return bool(changed)


# --- paying --------------------------------------------------------------------------------------


def record_pass_payment(pass_id, *, provider, provider_id, amount, now, actor=None, note="", currency="vnd"):
    """Money arrived for a pass: record it once and activate the pass.

    Returns "activated", "duplicate" (this payment was recorded before), "underpaid" (recorded,
    the pass waits for the rest), or "refund_due" (the pass is paid or cancelled already: the money
    goes back). Every path that pays a pass calls this.
    """
    number = parse_id(pass_id, "That pass does not exist.")
    with db.atomic():
        club_pass = Pass.get_or_none(Pass.id == number)
        if club_pass is None:
            raise NotFound("That pass does not exist.")
        _lock_user(club_pass.user_id)
        club_pass = Pass.get_by_id(number)
        try:
            with db.atomic():
                LedgerEntry.create(
                    club_pass=club_pass.id,
                    kind="payment",
                    provider=provider,
                    provider_id=provider_id,
                    amount=amount,
                    currency=currency,
                    status="succeeded",
                    note=note,
                    recorded_by=getattr(actor, "id", None),
                    created_at=now,
                )
        except IntegrityError:
            return "duplicate"
        if club_pass.status in ("pending_payment", "expired"):
            if paid_total(club_pass.id) < club_pass.amount:
                outcome = "underpaid"
            else:
                _activate(club_pass, now)
                outcome = "activated"
        else:  # paid twice, or paid after staff cancelled it: give the money back
            Pass.update(refund_due_at=now, updated_at=now).where(Pass.id == club_pass.id).execute()
            queue.enqueue(SETTLE_PASS_JOB, club_pass.id)
            outcome = "refund_due"
    log.info("payment %s/%s for pass %s: %s", provider, provider_id, club_pass.code, outcome)
    return outcome


def ledger_totals(pass_id):
    """(paid, refunded) for a pass from the ledger."""

    def total(kind, extra=True):
        return int(
            LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
            .where((LedgerEntry.club_pass == pass_id) & (LedgerEntry.kind == kind) & extra)
            .scalar()
        )

    return total("payment"), total("refund", LedgerEntry.status.in_(("succeeded", "pending")))


def paid_total(pass_id):
    paid, refunded = ledger_totals(pass_id)
    return paid - refunded


def owed_back(club_pass):
    """All the money of a cancelled pass; the excess over its price for a paid one."""
    paid, refunded = ledger_totals(club_pass.id)
    kept = club_pass.amount if club_pass.status == "paid" else 0
    return max(0, paid - refunded - kept)


def find_pass_by_code(code):
    """The pass with this code (LP-XXXXX; any case, with or without the dash), or None."""
    text = "".join(ch for ch in str(code or "").upper() if ch.isalnum())
    if text.startswith("LP"):
        text = text[2:]
    if len(text) != 5:
        return None
    return Pass.get_or_none(Pass.code == f"LP-{text}")


def mark_pass_paid(actor, pass_id, method, now, note=""):
    """Staff took the money for a pending pass (cash at the desk, or a transfer they checked):
    the same payment path as a matched transfer, audited. Returns the pass."""
    if actor is None or not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only staff can take payment for a pass.")
    if method not in DESK_METHODS:
        raise ValidationError("Choose cash or bank transfer.", field="method")
    club_pass = get_pass(pass_id, actor)
    if club_pass.status not in ("pending_payment", "expired"):
        raise PassNotPending("This pass is already paid or cancelled.")
    with db.atomic():
        outcome = record_pass_payment(
            club_pass.id,
            provider=method,
            provider_id=f"{method}:pass:{club_pass.code}",
            amount=club_pass.amount,
            now=now,
            actor=actor,
            note=note or "taken by staff",
        )
        if outcome == "duplicate":
            raise PassNotPending("This pass's payment is already recorded.")
        audit.record(
            actor, "pass.mark_paid", "pass", club_pass.id, {"code": club_pass.code, "method": method}, now
        )
    return Pass.get_by_id(club_pass.id)


def sell_at_desk(actor, user_id, product_id, method, now):
    """Staff sell a pass to a player at the desk, paid there and then (cash or transfer)."""
    _require_admin(actor, "Only an admin can sell passes at the desk.")
    if method not in DESK_METHODS:
        raise ValidationError("Choose cash or bank transfer.", field="method")
    user = User.get_or_none(User.id == parse_id(user_id, "That player does not exist."))
    if user is None:
        raise NotFound("That player does not exist.")
    product = get_product(product_id, include_inactive=True)
    with db.atomic():
        club_pass = _create_pass(
            user.id, product, now, amount=product.price, payment_method=method, created_by=actor.id
        )
        if product.price > 0:
            record_pass_payment(
                club_pass.id,
                provider=method,
                provider_id=f"{method}:pass:{club_pass.code}",
                amount=product.price,
                now=now,
                actor=actor,
                note="sold at the desk",
            )
        else:
            _activate(club_pass, now)
        audit.record(
            actor,
            "pass.sell",
            "pass",
            club_pass.id,
            {"code": club_pass.code, "user": user.id, "product": product.name, "method": method},
            now,
        )
    return Pass.get_by_id(club_pass.id)


def grant_pass(actor, user_id, product_id, now, starts_at=None, ends_at=None, note=""):
    """An admin gives a player a pass, no money involved; a period stacks unless dates are given."""
    _require_admin(actor, "Only an admin can grant passes.")
    user = User.get_or_none(User.id == parse_id(user_id, "That player does not exist."))
    if user is None:
        raise NotFound("That player does not exist.")
    product = get_product(product_id, include_inactive=True)
    if ends_at is not None and starts_at is not None and ends_at <= starts_at:
        raise ValidationError("The pass must end after it starts.", field="ends_at")
    with db.atomic():
        club_pass = _create_pass(
            user.id,
            product,
            now,
            amount=0,
            payment_method="grant",
            created_by=getattr(actor, "id", None),
            note=note,
        )
        _activate(club_pass, now, starts_at=starts_at)
        if ends_at is not None:
            Pass.update(ends_at=ends_at).where(Pass.id == club_pass.id).execute()
        club_pass = Pass.get_by_id(club_pass.id)
        audit.record(
            actor,
            "pass.grant",
            "pass",
            club_pass.id,
            {"code": club_pass.code, "user": user.id, "product": product.name, "ends_at": club_pass.ends_at},
            now,
        )
    return club_pass


# --- cancelling and expiring ---------------------------------------------------------------------


def cancel_pass(actor, pass_id, now, refund=True, reason=""):
    """An admin cancels a pass. Its money goes back when `refund`: by card through Stripe (a job
    after commit), cash or transfer given back by staff and recorded now. Bookings a pack already
    paid stay booked."""
    _require_admin(actor, "Only an admin can cancel a pass.")
    club_pass = get_pass(pass_id, actor)
    with db.atomic():
        _lock_user(club_pass.user_id)
        club_pass = Pass.get_by_id(club_pass.id)
        changed = (
            Pass.update(status="cancelled", cancelled_at=now, updated_at=now, payment_deadline=None)
            .where((Pass.id == club_pass.id) & Pass.status.in_(("pending_payment", "paid")))
            .execute()
        )
        if not changed:
            raise PassNotCancellable()
        paid, refunded = ledger_totals(club_pass.id)
        owed = paid - refunded
        card = _has_card_payment(club_pass.id)
        if refund and owed > 0:
            if card:
                Pass.update(refund_due_at=now).where(Pass.id == club_pass.id).execute()
                queue.enqueue(SETTLE_PASS_JOB, club_pass.id)
            else:
                method = club_pass.payment_method if club_pass.payment_method in DESK_METHODS else "cash"
                LedgerEntry.create(
                    club_pass=club_pass.id,
                    kind="refund",
                    provider=method,
                    provider_id=f"{method}:refund:{club_pass.code}:{refunded}",
                    amount=owed,
                    status="succeeded",
                    note="given back by staff",
                    recorded_by=actor.id,
                    created_at=now,
                )
        elif club_pass.stripe_payment_intent_id and not card:
            queue.enqueue(SETTLE_PASS_JOB, club_pass.id)  # an open intent must not take a card now
        audit.record(
            actor,
            "pass.cancel",
            "pass",
            club_pass.id,
            {"code": club_pass.code, "refund": bool(refund and owed > 0), "amount": owed, "reason": reason},
            now,
        )
    log.info("pass %s cancelled by user %s (refund %s)", club_pass.code, actor.id, owed if refund else 0)
    return Pass.get_by_id(club_pass.id)


def _has_card_payment(pass_id):
    return (
        LedgerEntry.select()
        .where(
            (LedgerEntry.club_pass == pass_id)
            & (LedgerEntry.kind == "payment")
            & (LedgerEntry.provider == "stripe")
        )
        .exists()
    )


def expire_unpaid_passes(now):
    """Pending passes past their deadline become expired (the every-minute sweep); returns codes.
    A payment arriving later still activates the pass."""
    codes = [
        p.code
        for p in Pass.select(Pass.code).where(
            (Pass.status == "pending_payment") & (Pass.payment_deadline <= now)
        )
    ]
    if codes:
        Pass.update(status="expired", expired_at=now, updated_at=now).where(
            (Pass.status == "pending_payment") & (Pass.payment_deadline <= now)
        ).execute()
        for row in Pass.select(Pass.id).where(
            Pass.code.in_(codes) & (Pass.status == "expired") & Pass.stripe_payment_intent_id.is_null(False)
        ):
            queue.enqueue(SETTLE_PASS_JOB, row.id)  # cancel its open PaymentIntent
        log.info("expired %d unpaid pass(es)", len(codes))
    return sorted(codes)


# --- reading -------------------------------------------------------------------------------------


def get_pass(pass_id, viewer):
    """A pass for its holder or an admin (organizers see passes too: they sell at the door)."""
    number = parse_id(pass_id, "That pass does not exist.")
    club_pass = Pass.select(Pass, PassProduct).join(PassProduct).where(Pass.id == number).first()
    owner = club_pass is not None and club_pass.user_id == getattr(viewer, "id", None)
    if club_pass is None or not (owner or getattr(viewer, "is_staff", False)):
        raise NotFound("That pass does not exist.")
    return club_pass


def list_passes(viewer, user_id=None, now=None):
    """The viewer's own passes (staff: any player's), newest first, with credits_left set."""
    _require_signed_in(viewer)
    target = viewer.id
    if user_id not in (None, ""):
        number = parse_id(user_id, "That player does not exist.")
        if number != viewer.id and not viewer.is_staff:
            raise PermissionDenied("Only staff can see another player's passes.")
        target = number
    passes = list(
        Pass.select(Pass, PassProduct)
        .join(PassProduct)
        .where(Pass.user == target)
        .order_by(Pass.created_at.desc(), Pass.id.desc())
    )
    used = used_credits([p.id for p in passes if p.kind == "pack"])
    for p in passes:
        p.credits_left = p.credits_total - used.get(p.id, 0) if p.kind == "pack" else None
    return passes


def membership(user_id, now):
    """{active, ends_at}: a member while a paid period pass runs; ends_at is the end of the last
    pass in the unbroken run (stacked passes that follow one another)."""
    rows = (
        Pass.select(Pass.starts_at, Pass.ends_at)
        .where(
            (Pass.user == user_id) & (Pass.kind == "period") & (Pass.status == "paid") & (Pass.ends_at > now)
        )
        .order_by(Pass.starts_at)
    )
    end = None
    for row in rows:
        if end is None:
            if row.starts_at > now:
                break
            end = row.ends_at
        elif row.starts_at <= end:
            end = max(end, row.ends_at)
        else:
            break
    return {"active": end is not None, "ends_at": end}


def describe_deadline(club_pass):
    return format_local(club_pass.payment_deadline) if club_pass.payment_deadline else ""


def sales_summary(since, now):
    """For the staff home: passes sold (paid, not granted) since `since`, and members now."""
    sold = (
        Pass.select()
        .where((Pass.paid_at >= since) & (Pass.payment_method != "grant") & (Pass.status != "expired"))
        .count()
    )
    members = (
        Pass.select(fn.COUNT(Pass.user.distinct()))
        .where(
            (Pass.kind == "period") & (Pass.status == "paid") & (Pass.starts_at <= now) & (Pass.ends_at > now)
        )
        .scalar()
    )
    return {"sold": sold, "members": int(members or 0)}
