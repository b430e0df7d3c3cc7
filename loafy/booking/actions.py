"""Which actions an actor may take on a booking: the one answer the staff area's buttons and the
player's pages ask for.

Each answer is the refusal function the acting service raises from (cancel_refusal,
mark_paid_refusal, ...), so a button shows exactly when the service would accept; the service
checks again under its lock, for whatever changed in between.
"""

from functools import cached_property

from loafy.booking import bookings, staff
from loafy.money import refunds
from loafy.settings import get_settings

# Payments a player makes online from the pay page (cash is paid at the door, a pass at booking).
ONLINE_PAYMENT_METHODS = ("stripe", "bank_transfer")
ACTIONS = ("pay", "cancel", "mark_paid", "check_in", "refund", "manual_refund")


class BookingActions:
    """What `actor` may do with `booking` (its club_session loaded) at `now`. Each answer is worked
    out when first asked, so a list that only shows Cancel costs no ledger query."""

    def __init__(self, actor, booking, now, settings=None):
        self.actor, self.booking, self.now = actor, booking, now
        self._given_settings = settings

    @cached_property
    def settings(self):
        return self._given_settings if self._given_settings is not None else get_settings()

    @cached_property
    def pay(self):
        """The owner still owes an online payment, before the deadline."""
        booking = self.booking
        return (
            booking.user_id == getattr(self.actor, "id", None)
            and booking.status == "pending_payment"
            and not booking.is_overdue(self.now)
            and booking.payment_method in ONLINE_PAYMENT_METHODS
        )

    @cached_property
    def cancel(self):
        return bookings.cancel_refusal(self.actor, self.booking, self.now, self.settings) is None

    @cached_property
    def mark_paid(self):
        return staff.mark_paid_refusal(self.actor, self.booking) is None

    @cached_property
    def check_in(self):
        return staff.check_in_refusal(self.actor, self.booking, self.now) is None

    @cached_property
    def refund(self):
        return self._admin and refunds.card_refund_refusal(self.actor, self.booking) is None

    @cached_property
    def manual_refund(self):
        return self._admin and refunds.manual_refund_refusal(self.actor, self.booking) is None

    @property
    def _admin(self):
        # The money questions cost ledger queries: only an admin's can come out yes.
        return bool(self.actor is not None and getattr(self.actor, "is_admin", False))

    @property
    def any(self):
        return any(getattr(self, name) for name in ACTIONS)

    def as_dict(self):
        return {name: getattr(self, name) for name in ACTIONS}


def allowed_actions(actor, booking, now, settings=None):
    """Which of ACTIONS `actor` may take on `booking` now (attributes, worked out when read)."""
    return BookingActions(actor, booking, now, settings)
