"""`loafy check`: verify the stored invariants and list every violation."""

from peewee import JOIN, fn

from loafy.booking import waitlist
from loafy.clock import utcnow
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession


def find_violations(now=None):
    """Invariant 1 for every session: available = max − active slots, within 0..max; and the
    waitlist's: no waiting entry fits while slots are free, no offer beyond its party."""
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
    violations.extend(_overspent_packs())
    from loafy.door.checkin import door_violations  # door: tickets and people in

    return violations + waitlist.find_violations(now or utcnow()) + door_violations()


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
