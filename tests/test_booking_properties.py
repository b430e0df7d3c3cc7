"""Property-based: random sequences of book / cancel / pay / expire / clock advance keep every invariant."""

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from loafy.booking.bookings import book_session, cancel_booking, expire_unpaid, record_payment
from loafy.checks import find_violations
from loafy.errors import LoafyError
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, LedgerEntry
from tests.conftest import Factory, reset_database

PLAYERS = 6
SESSIONS = 2
SLOTS = 5


class BookingMachine(RuleBasedStateMachine):
    """A model of the club: a few players, two small sessions, a clock that moves forward."""

    start = None  # the test's fixed `now`, set before running

    def __init__(self):
        super().__init__()
        self.payments = 0

    @initialize()
    def setup(self):
        reset_database()
        self.factory = Factory(self.start)
        self.now = self.start
        self.players = [self.factory.user(member=i % 2 == 0) for i in range(PLAYERS)]
        self.admin = self.factory.user(role="admin")
        self.sessions = [
            self.factory.club_session(max_slots=SLOTS, starts_at=self.start + timedelta(hours=30 + i))
            for i in range(SESSIONS)
        ]

    def _attempt(self, action):
        try:
            return action()
        except LoafyError as exc:
            assert exc.status in (403, 404, 409, 422), exc
            return None

    @rule(player=st.integers(0, PLAYERS - 1), session=st.integers(0, SESSIONS - 1), guests=st.integers(-1, 4))
    def book(self, player, session, guests):
        booking = self._attempt(
            lambda: book_session(self.players[player], self.sessions[session], guests, "stripe", self.now)
        )
        if booking is not None:
            assert 0 <= guests <= 3 and booking.slots == 1 + guests
            assert ClubSession.get_by_id(self.sessions[session].id).available_slots >= 0

    @rule(pick=st.integers(0, 100), by_admin=st.booleans())
    def cancel(self, pick, by_admin):
        bookings = list(Booking.select().order_by(Booking.id))
        if not bookings:
            return
        booking = bookings[pick % len(bookings)]
        actor = self.admin if by_admin else booking.user
        self._attempt(lambda: cancel_booking(actor, booking.id, self.now))

    @rule(pick=st.integers(0, 100))
    def pay(self, pick):
        bookings = list(Booking.select().order_by(Booking.id))
        if not bookings:
            return
        booking = bookings[pick % len(bookings)]
        self.payments += 1
        record_payment(
            booking.id,
            provider="stripe",
            provider_id=f"pi_{self.payments}",
            amount=booking.amount,
            now=self.now,
        )

    @rule(pick=st.integers(0, 100))
    def pay_twice(self, pick):
        """The same payment delivered again changes nothing (invariant 3)."""
        entries = list(LedgerEntry.select().where(LedgerEntry.kind == "payment").order_by(LedgerEntry.id))
        if not entries:
            return
        entry = entries[pick % len(entries)]
        snapshot = list(Booking.select().order_by(Booking.id).tuples())
        outcome = record_payment(
            entry.booking_id,
            provider="stripe",
            provider_id=entry.provider_id,
            amount=entry.amount,
            now=self.now,
        )
        assert outcome == "duplicate"
        assert list(Booking.select().order_by(Booking.id).tuples()) == snapshot

    @rule()
    def expire(self):
        released = expire_unpaid(self.now)
        assert len(released) == len(set(released))
        assert expire_unpaid(self.now) == []  # a second run finds nothing

    @rule(minutes=st.sampled_from([1, 10, 29, 30, 31, 120]))
    def advance(self, minutes):
        self.now += timedelta(minutes=minutes)

    @invariant()
    def slots_add_up(self):
        if not hasattr(self, "sessions"):
            return
        assert find_violations() == []

    @invariant()
    def one_active_booking_per_player_and_session(self):
        if not hasattr(self, "sessions"):
            return
        active = list(
            Booking.select(Booking.user, Booking.club_session)
            .where(Booking.status.in_(ACTIVE_BOOKING_STATUSES))
            .tuples()
        )
        assert len(active) == len(set(active))

    @invariant()
    def money_is_never_lost(self):
        """Every recorded payment is either on a confirmed booking or marked for refund."""
        if not hasattr(self, "sessions"):
            return
        paid = Booking.select().where(Booking.payment_status == "paid")
        for booking in paid:
            if booking.amount > 0:
                assert booking.status == "confirmed" or booking.refund_due_at is not None, booking.code

    @invariant()
    def pending_bookings_have_a_future_or_unswept_deadline(self):
        if not hasattr(self, "sessions"):
            return
        for booking in Booking.select().where(Booking.status == "pending_payment"):
            assert booking.payment_deadline is not None


@pytest.mark.slow
def test_random_sequences_keep_every_invariant(app, now):
    BookingMachine.start = now
    run_state_machine_as_test(
        BookingMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
