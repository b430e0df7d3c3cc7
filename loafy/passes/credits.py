"""A pack pays bookings: one credit per slot, from the holder's active pack that expires first.

Credits left are never stored: credits_total − the slots of the pack's non-cancelled bookings,
counted under the pack's row lock (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serializes
every writer), so parallel bookings cannot spend the same credit twice. Lock order: the session
(bookings.lock_session) first, then the packs, by expiry and id.
"""

from peewee import fn

from loafy.db import is_postgres
from loafy.errors import Conflict
from loafy.models import Booking, Pass


class NoCredits(Conflict):
    code = "no_credits"
    message = (
        "You have no session pack with enough credits left. Buy a pack or choose another payment method."
    )


def used_credits(pass_ids):
    """{pass id: slots of its non-cancelled bookings} (expired bookings never held credits)."""
    if not pass_ids:
        return {}
    rows = (
        Booking.select(Booking.club_pass, fn.SUM(Booking.slots).alias("used"))
        .where(Booking.club_pass.in_(list(pass_ids)) & (Booking.status != "cancelled"))
        .group_by(Booking.club_pass)
        .tuples()
    )
    return {pass_id: int(used) for pass_id, used in rows}


def credits_left(club_pass):
    if club_pass.kind != "pack":
        return None
    return club_pass.credits_total - used_credits([club_pass.id]).get(club_pass.id, 0)


def active_packs(user_id, now):
    """The user's running packs, the one expiring first first."""
    return Pass.active(user_id, now).where(Pass.kind == "pack").order_by(Pass.ends_at, Pass.id)


def packs_with_credits(user_id, now):
    """[(pack, credits left)] of the running packs, expiring first first (for pages and the API)."""
    packs = list(active_packs(user_id, now))
    used = used_credits([p.id for p in packs])
    return [(p, p.credits_total - used.get(p.id, 0)) for p in packs]


def take_pack(user_id, slots, now):
    """The pack that pays `slots` credits now, locked: call inside the booking's transaction, after
    the session's lock; the booking written there with club_pass = this pack spends them."""
    query = active_packs(user_id, now)
    if is_postgres():
        query = query.for_update()
    packs = list(query)
    used = used_credits([p.id for p in packs])
    best_left = 0
    for pack in packs:
        left = pack.credits_total - used.get(pack.id, 0)
        if left >= slots:
            return pack
        best_left = max(best_left, left)
    if not packs:
        raise NoCredits()
    if best_left == 0:
        raise NoCredits(
            "Your session pack has no credits left. Buy another pack or choose another payment method."
        )
    raise NoCredits(
        f"This booking needs {slots} credits but your pack has {best_left} left. "
        "Bring fewer guests or choose another payment method."
    )
