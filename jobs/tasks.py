"""RQ job functions: ids in, reload, return early when there is nothing to do. All idempotent."""

import logging

from jobs.runtime import job
from loafy import notifications, queue
from loafy.booking import bookings, waitlist
from loafy.models import utcnow
from loafy.passes import passes

log = logging.getLogger(__name__)


@job
def expire_unpaid(app):
    """Every minute: release unpaid bookings past their deadline (deadlines live in the database),
    and expire unpaid passes past theirs."""
    now = utcnow()
    released = bookings.expire_unpaid(now)
    passes.expire_unpaid_passes(now)
    return released


@job
def send_booking_notifications(app, booking_id):
    """Send what is due for one booking (enqueued after each change to it)."""
    return notifications.send_due_for_booking(booking_id)


@job
def flush_notifications(app):
    """Send every due, unsent notification (after new bookings, and every minute to catch up after
    a lost job or a Redis outage)."""
    queue.coalesced_job_started(notifications.FLUSH_PENDING_KEY)
    return notifications.send_due()


@job
def offer_waitlists(app):
    """Every minute, the backstop: free slots that a waiting entry fits are offered (after a crash
    between a freeing commit and its offer; normally there is nothing to do)."""
    return waitlist.offer_everywhere(utcnow())


@job
def generate_sessions(app):
    """Nightly: the coming weeks' sessions of every template (idempotent: one per template and start)."""
    from loafy.calendar.templates import generate_sessions as generate

    return len(generate(utcnow()))


@job
def mark_attendance(app):
    """Every few minutes: attended / no-show for sessions ended past the grace period (idempotent)."""
    from loafy.calendar.attendance import mark_attendance as mark

    return mark(utcnow())
