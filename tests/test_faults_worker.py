"""A worker SIGKILLed in the middle of a job: nothing is lost and nothing is done twice next time.

The job runs in a real child process (multiprocessing "spawn") on the test database; the child
pauses at a chosen point inside the operation and the test kills it there with SIGKILL.
"""

import multiprocessing
import os
import signal
from datetime import timedelta

import pytest

from loafy import clock, notifications
from loafy.booking.bookings import book_session, expire_unpaid
from loafy.checks import find_violations
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, Notification
from tests.fault_fixtures import child_expire_unpaid, child_send_notification
from tests.helpers import reload
from tests.stripe_fixtures import free_port


@pytest.fixture
def app_config(app_config):
    # Redis unreachable and no inline jobs: no notification is sent behind the test's back; the
    # test runs the sweeps itself.
    return dict(app_config, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", JOBS_INLINE="0")


def kill_when_paused(target, *args):
    """Start `target(*args, paused)` in a spawned process, wait for it to pause, SIGKILL it."""
    context = multiprocessing.get_context("spawn")
    paused = context.Event()
    process = context.Process(target=target, args=(*args, paused), daemon=True)
    process.start()
    try:
        if not paused.wait(timeout=60):
            pytest.fail(f"the child never reached its pause point (exit code {process.exitcode})")
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=10)
    finally:
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    assert process.exitcode == -signal.SIGKILL


def test_expiry_killed_mid_transaction_releases_everything_exactly_once_next_run(
    factory, now, database_url, tmp_path, sent
):
    sessions = [factory.club_session(max_slots=6, allow_pay_at_door=True) for _ in range(4)]
    overdue = {}  # session id -> bookings that will be overdue
    for club_session in sessions:
        overdue[club_session.id] = [
            book_session(factory.user(), club_session, guests, "stripe", now) for guests in (0, 2)
        ]
    # Not overdue: a later booking still inside its deadline, and a cash booking (confirmed).
    later = now + timedelta(minutes=31)
    fresh = book_session(factory.user(), sessions[1], 1, "stripe", now + timedelta(minutes=20))
    cash = book_session(factory.user(), sessions[2], 0, "cash", now)
    first_id, second_id = sorted(overdue)[:2]

    # Sessions are swept in id order, one per transaction: batch 1 commits, batch 2 is killed.
    kill_when_paused(child_expire_unpaid, database_url, str(tmp_path / "child"), later, 2)

    expired_by_child = {b.code for b in Booking.select().where(Booking.status == "expired")}
    assert expired_by_child == {b.code for b in overdue[first_id]}  # batch 1 committed
    # Batch 2 rolled back with the process: its bookings are pending and their slots still held.
    assert {reload(b).status for b in overdue[second_id]} == {"pending_payment"}
    assert find_violations() == []
    # The committed batch wrote its e-mails to the outbox table; the dead child sent none.
    assert Notification.select().where(Notification.kind == "booking_expired").count() == 2
    assert sent == []

    clock.freeze(later)
    released = expire_unpaid(later)
    everything = {b.code for group in overdue.values() for b in group}
    assert set(released) == everything - expired_by_child  # the rest, and only the rest
    assert expire_unpaid(later) == []  # a third run finds nothing

    for booking in (b for group in overdue.values() for b in group):
        row = reload(booking)
        assert (row.status, row.expired_at) == ("expired", later), booking.code
    assert reload(fresh).status == "pending_payment" and reload(cash).status == "confirmed"
    for club_session in sessions:
        held = sum(
            b.slots
            for b in Booking.select().where(
                (Booking.club_session == club_session.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
            )
        )
        assert ClubSession.get_by_id(club_session.id).available_slots == 6 - held
    assert find_violations() == []

    # One "expired" e-mail per booking, written once and sent once, by the catch-up sweep.
    expired_mail = Notification.select().where(Notification.kind == "booking_expired")
    assert sorted(n.booking_id for n in expired_mail) == sorted(
        b.id for group in overdue.values() for b in group
    )
    notifications.send_due(later)
    notifications.send_due(later + timedelta(minutes=1))
    expired_ids = [m for m in sent if "booking_expired" in m]
    assert len(expired_ids) == len(everything) == len(set(expired_ids))
    assert (
        Notification.select()
        .where((Notification.kind == "booking_expired") & Notification.sent_at.is_null())
        .count()
        == 0
    )


def test_notification_killed_after_claim_is_sent_once_after_the_claim_goes_stale(
    factory, now, database_url, tmp_path, sent, outbox
):
    booking = book_session(factory.user(email="kim@example.com"), factory.club_session(), 0, "stripe", now)
    received = Notification.get(
        (Notification.booking == booking.id) & (Notification.kind == "booking_received")
    )
    assert received.sent_at is None

    # Killed inside the SMTP call: claimed (attempts 1) but never marked sent.
    kill_when_paused(child_send_notification, database_url, str(tmp_path / "child"), received.id, now)
    row = reload(received)
    assert (row.claimed_at, row.attempts, row.sent_at) == (now, 1, None)
    assert sent == []

    # While the claim is fresh another worker may still be sending it: the sweep leaves it alone.
    assert notifications.send_due(now + timedelta(minutes=1)) == 0
    assert sent == []

    stale = now + notifications.CLAIM_TIMEOUT + timedelta(seconds=1)
    assert notifications.send_due(stale) == 1
    assert sent == [f"<loafy-booking_received-{booking.id}@loafy.local>"]
    row = reload(received)
    assert (row.sent_at, row.attempts, row.to_email) == (stale, 2, "kim@example.com")
    assert len(list(outbox.glob("*.eml"))) == 1

    # A second sweep, later still, sends nothing more (the reminder is not due before 03:20).
    assert notifications.send_due(stale + timedelta(minutes=2)) == 0
    assert len(sent) == 1
