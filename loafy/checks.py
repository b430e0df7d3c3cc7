"""`loafy check`: verify DESIGN.md's invariants against the stored data and list every violation,
one line each. Read-only, a constant number of queries whatever the size of the club."""

from datetime import timedelta

from peewee import JOIN, Case, fn

from loafy.booking import waitlist
from loafy.clock import format_vnd, utcnow
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, LedgerEntry
from loafy.money.ledger import COUNTED_REFUND_STATUSES

# The expiry sweep runs every minute: a hold lapsed longer than this still holding its slots means
# it is not running (new bookings release lapsed holds themselves, so nobody is refused meanwhile).
LAPSED_HOLD_GRACE = timedelta(minutes=10)
# Card money owed back is refunded by the settle job at once and by the sweep as a backstop: left
# undone this long, it is a violation (what staff give back by hand is listed to them instead).
REFUND_DUE_GRACE = timedelta(hours=1)


def find_violations(now=None):
    """Every invariant: slots, lapsed holds, the ledger per booking, refunds due, packs' credits,
    the waitlist's (no waiting entry fits while slots are free, no offer beyond its party). One
    line each."""
    now = now or utcnow()
    violations = _slots() + _lapsed_holds(now) + _ledger_sums() + _refunds_due(now)
    from loafy.door.checkin import door_violations  # door: tickets and people in

    return violations + _overspent_packs() + waitlist.find_violations(now) + door_violations()


def _slots():
    """Invariant 1 for every session: available = max − active slots, within 0..max."""
    held = (
        Booking.select(Booking.club_session, fn.SUM(Booking.slots).alias("held"))
        .where(Booking.status.in_(ACTIVE_BOOKING_STATUSES))
        .group_by(Booking.club_session)
        .alias("held")
    )
    rows = (
        ClubSession.select(
            ClubSession.id,
            ClubSession.title,
            ClubSession.max_slots,
            ClubSession.available_slots,
            fn.COALESCE(held.c.held, 0).alias("held"),
        )
        .join(held, JOIN.LEFT_OUTER, on=(held.c.club_session_id == ClubSession.id))
        .order_by(ClubSession.id)
        .dicts()
    )
    violations = []
    for row in rows:
        expected = row["max_slots"] - int(row["held"])
        if row["available_slots"] != expected:
            violations.append(
                f"session {row['id']} ({row['title']}): available_slots is {row['available_slots']}, "
                f"expected {expected} (max {row['max_slots']} − {int(row['held'])} held)"
            )
        if not 0 <= row["available_slots"] <= row["max_slots"]:
            violations.append(
                f"session {row['id']} ({row['title']}): available_slots {row['available_slots']} "
                f"is outside 0..{row['max_slots']}"
            )
    return violations


def _lapsed_holds(now):
    """Invariant 2's backstop: no unpaid booking keeps its slots long after its deadline."""
    rows = (
        Booking.select(Booking.code, Booking.slots, Booking.payment_deadline, Booking.club_session)
        .where(Booking.overdue(now - LAPSED_HOLD_GRACE))
        .order_by(Booking.payment_deadline, Booking.id)
    )
    return [
        f"booking {b.code} (session {b.club_session_id}): unpaid since its deadline "
        f"{b.payment_deadline:%Y-%m-%d %H:%M} UTC and still holds {b.slots} slot(s): "
        "is the expiry sweep running?"
        for b in rows
    ]


def _ledger_sums():
    """Invariant 3 per booking: what the ledger kept (payments taken, less refunds) is what the
    booking's payment status says: its amount when paid, nothing when unpaid or refunded, and
    never less than nothing. Bookings paid by a pass's credits move no money and are skipped."""
    paid = fn.COALESCE(
        fn.SUM(
            Case(
                None,
                [((LedgerEntry.kind == "payment") & (LedgerEntry.status == "succeeded"), LedgerEntry.amount)],
                0,
            )
        ),
        0,
    )
    refunded = fn.COALESCE(
        fn.SUM(
            Case(
                None,
                [
                    (
                        (LedgerEntry.kind == "refund") & LedgerEntry.status.in_(COUNTED_REFUND_STATUSES),
                        LedgerEntry.amount,
                    )
                ],
                0,
            )
        ),
        0,
    )
    rows = (
        Booking.select(
            Booking.id,
            Booking.code,
            Booking.status,
            Booking.payment_status,
            Booking.payment_method,
            Booking.amount,
            Booking.refund_due_at,
            paid.alias("paid"),
            refunded.alias("refunded"),
        )
        .join(LedgerEntry, JOIN.LEFT_OUTER, on=(LedgerEntry.booking == Booking.id))
        .where(Booking.payment_method != "pass")
        .group_by(Booking.id)
        .having((Booking.amount > 0) | (fn.COUNT(LedgerEntry.id) > 0))
        .order_by(Booking.id)
        .dicts()
    )
    violations = []
    for row in rows:
        kept = int(row["paid"]) - int(row["refunded"])
        label = f"booking {row['code']} ({row['status']}, {row['payment_status']})"
        if kept < 0:
            violations.append(f"{label}: refunded {format_vnd(-kept)} more than the ledger received")
        elif (
            row["payment_status"] == "paid" and row["status"] == "confirmed" and row["refund_due_at"] is None
        ):
            if kept != row["amount"]:
                violations.append(
                    f"{label}: the ledger kept {format_vnd(kept)} "
                    f"for an amount of {format_vnd(row['amount'])}"
                )
        elif row["payment_status"] in ("unpaid", "failed", "refunded") and kept != 0:
            violations.append(f"{label}: the ledger still holds {format_vnd(kept)} of the player's money")
    return violations


def _refunds_due(now):
    """Card money owed back is refunded by the settle job at once (the sweep retries it): none stays
    refund-due for more than REFUND_DUE_GRACE. Cash and transfers are given back by staff, from the
    list the staff area shows them; they are not the machine's to finish."""
    card_paid = LedgerEntry.select(LedgerEntry.id).where(
        (LedgerEntry.booking == Booking.id)
        & (LedgerEntry.kind == "payment")
        & (LedgerEntry.provider == "stripe")
        & (LedgerEntry.status == "succeeded")
    )
    rows = (
        Booking.select(Booking.code, Booking.refund_due_at)
        .where(
            Booking.refund_due_at.is_null(False)
            & (Booking.refund_due_at < now - REFUND_DUE_GRACE)
            & fn.EXISTS(card_paid)
        )
        .order_by(Booking.refund_due_at, Booking.id)
    )
    return [
        f"booking {b.code}: card payment owed back since {b.refund_due_at:%Y-%m-%d %H:%M} UTC "
        "and not refunded yet"
        for b in rows
    ]


def _overspent_packs():
    """passes: no pack has paid for more spots than it has credits."""
    from loafy.models import Pass

    spent = (
        Booking.select(Booking.club_pass, fn.SUM(Booking.slots).alias("used"))
        .where(Booking.club_pass.is_null(False) & (Booking.status != "cancelled"))
        .group_by(Booking.club_pass)
        .alias("spent")
    )
    rows = (
        Pass.select(Pass.code, Pass.credits_total, spent.c.used)
        .join(spent, on=(spent.c.pass_id == Pass.id))
        .where(spent.c.used > Pass.credits_total)
        .tuples()
    )
    return [f"pass {code}: {int(used)} credits spent of {total}" for code, total, used in rows]
