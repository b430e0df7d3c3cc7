"""E-mail notifications (outbox pattern).

A row is written in the same transaction as the change it reports, so it exists exactly when the
change does; a job sends it after commit, and the every-minute sweep sends anything a lost job or a
Redis outage left behind. Bodies are rendered at send time from templates/email (Vietnamese, then
English). Sending is at-least-once: a sender that dies between the SMTP call and marking the row
sent leaves it to be retried once its claim goes stale.
"""

import logging
from datetime import timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from peewee import IntegrityError

from loafy import queue
from loafy.clock import format_local, format_vnd
from loafy.db import db, raw_sql
from loafy.door.tickets import ticket_parts, ticket_url
from loafy.mail import mail_setting, send_email, smtp_batch
from loafy.models import Booking, ClubSession, Notification, User, utcnow
from loafy.settings import get_settings

log = logging.getLogger(__name__)

# A failed send waits longer each time (2, 4, 8 ... 256 minutes): an SMTP outage of up to about
# eight hours delays e-mails but loses none. Then the row is given up, loudly.
MAX_ATTEMPTS = 9
CLAIM_TIMEOUT = timedelta(minutes=5)
REMINDER_BEFORE_DEADLINE = timedelta(minutes=10)

SUBJECTS = {
    "booking_received": "Đã nhận đặt chỗ {code} / Booking received",
    "payment_reminder": "Còn 10 phút để thanh toán {code} / 10 minutes left to pay",
    "booking_confirmed": "Đã xác nhận {code} / Booking confirmed",
    "booking_expired": "Đặt chỗ {code} đã hết hạn / Booking expired",
    "booking_cancelled": "Đã huỷ {code} / Booking cancelled",
    "payment_refunded": "Đã hoàn tiền {code} / Refund made",
    "waitlist_joined": "Bạn đã vào danh sách chờ / You are on the waitlist",
    "waitlist_offer": "Có chỗ cho bạn: {code} / A spot for you from the waitlist",
    "waitlist_lapsed": "Lời mời {code} đã hết hạn / Your waitlist offer lapsed",
    "waitlist_booked": "Bạn đã có chỗ {code} / You are in: {code}",
    "pass_confirmed": "Thẻ {code} đã sẵn sàng / Your pass is active",
}
# A waitlist offer is a booking: its mails say so. Received is the offer, expired the offer lapsing,
# confirmed the place booked (the same rows, rendered from the waitlist's templates).
WAITLIST_TEMPLATES = {
    "booking_received": "waitlist_offer",
    "booking_expired": "waitlist_lapsed",
    "booking_confirmed": "waitlist_booked",
}
# Kinds about no booking (the owner renders their context); the rest need a booking.
UNBOOKED_KINDS = ("waitlist_joined", "pass_confirmed")  # passes: a pass's e-mail has no booking

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates" / "email"),
    autoescape=select_autoescape(enabled_extensions=("html",)),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_templates.filters["vnd"] = format_vnd
_templates.filters["local"] = format_local


def _create(kind, booking, now, send_after=None, extra_key=""):
    """Write one notification row (once per kind and booking) and send it after commit.

    A notification due later (the payment reminder) is not enqueued: the every-minute sweep sends
    it when due, which costs no Redis round trip on the booking's hot path.
    """
    send_after = max(send_after or now, now)
    try:
        with db.atomic():
            notification = Notification.create(
                user=booking.user_id,
                booking=booking.id,
                kind=kind,
                dedupe_key=f"{kind}:{booking.id}{extra_key}",
                send_after=send_after,
                created_at=now,
            )
    except IntegrityError:
        return None  # already written: the event was reported before
    if send_after <= now:
        queue.enqueue("jobs.tasks.send_booking_notifications", booking.id, queue_name="mail")
    return notification


INSERT_SQL = """
INSERT INTO notifications (user_id, booking_id, kind, dedupe_key, subject, body, send_after,
  created_at, attempts)
VALUES {rows}
"""
INSERT_ROW = "(?, ?, ?, ?, '', '', ?, ?, 0)"
FLUSH_JOB = "jobs.tasks.flush_notifications"
FLUSH_PENDING_KEY = "loafy:notifications:flush-pending"
# New bookings' e-mails go out in one batch a moment later: in a rush the web gets the CPU first
# (bench/rush.py) and one job sends the lot. The worker's scheduler runs it within a second after.
NEW_BOOKING_MAIL_DELAY = timedelta(seconds=2)


def for_new_booking(status, payment_deadline, now):
    """(kind, send_after) of a new booking's notifications: received, with the reminder 10 minutes
    before its deadline, or, when it is confirmed at once, confirmed."""
    if status == "pending_payment":
        remind_at = payment_deadline - REMINDER_BEFORE_DEADLINE
        if remind_at <= now:  # a deadline of 10 minutes or less: "10 minutes left" would be wrong
            return [("booking_received", now)]
        return [("booking_received", now), ("payment_reminder", remind_at)]
    return [("booking_confirmed", now)]


def booking_created(booking, now):
    """Write a new booking's notifications (one insert; the booking is new, so no earlier row can
    collide with these) and have them sent after commit."""
    params = []
    kinds = for_new_booking(booking.status, booking.payment_deadline, now)
    for kind, send_after in kinds:
        params += [booking.user_id, booking.id, kind, f"{kind}:{booking.id}", send_after, now]
    db.execute_sql(raw_sql(INSERT_SQL.format(rows=", ".join([INSERT_ROW] * len(kinds)))), params)
    new_booking_written()


def new_booking_written():
    """Have the new booking's notifications sent shortly after commit. On the booking hot path this
    costs one Redis SET while a flush is already waiting: a rush enqueues a handful of jobs, not
    one per booking."""
    queue.enqueue_coalesced(FLUSH_JOB, FLUSH_PENDING_KEY, queue_name="mail", delay=NEW_BOOKING_MAIL_DELAY)


def refund_recorded(booking, refund_id, now):
    """A refund reached the ledger (one e-mail per refund: a booking may have several)."""
    return _create("payment_refunded", booking, now, extra_key=f":{refund_id}")


def booking_confirmed(booking, now):
    return _create("booking_confirmed", booking, now)


def booking_cancelled(booking, now, refund=False):
    return _create("booking_cancelled", booking, now)


def bookings_expired(rows, now):
    """Many at once (the expiry sweep): bulk inserts, then one flush job."""
    if not rows:
        return
    values = [
        {
            "user": user_id,
            "booking": booking_id,
            "kind": "booking_expired",
            "dedupe_key": f"booking_expired:{booking_id}",
            "send_after": now,
            "created_at": now,
        }
        for booking_id, user_id in rows
    ]
    for start in range(0, len(values), 1000):
        Notification.insert_many(values[start : start + 1000]).on_conflict_ignore().execute()
    queue.enqueue("jobs.tasks.flush_notifications", queue_name="mail")


def render(notification, booking=None, settings=None):
    """(subject, body) for a notification, from the booking as it is now (read here unless given,
    with its session and player)."""
    if booking is None:
        booking = (
            Booking.select(Booking, ClubSession, User)
            .join(ClubSession)
            .switch(Booking)
            .join(User)
            .where(Booking.id == notification.booking_id)
            .get()
        )
    settings = settings or get_settings()
    base_url = mail_setting("BASE_URL").rstrip("/")
    context = {
        "booking": booking,
        "club_session": booking.club_session,
        "user": booking.user,
        "club_name": settings["club_name"],
        "settings": settings,
        "booking_url": f"{base_url}/bookings/{booking.id}",
        "pay_url": f"{base_url}/bookings/{booking.id}/pay",
        "ticket_url": ticket_url(booking),  # door
    }
    kind = notification.kind
    if getattr(booking, "source", "direct") == "waitlist":
        kind = WAITLIST_TEMPLATES.get(kind, kind)
    if notification.kind in ("booking_cancelled", "payment_refunded"):
        from loafy.money.ledger import ledger_totals  # the ledger imports bookings, which imports this

        # The ledger's figures, not the price: a cash booking may be unpaid, a refund partial.
        context["paid"], context["refunded"] = ledger_totals(booking.id)
    body = _templates.get_template(f"{kind}.txt").render(**context)
    return SUBJECTS[kind].format(code=booking.code), body


def _render_unbooked(notification, settings):
    """(user, subject, body) of a notification about no booking (a waitlist place, a pass)."""
    from loafy.booking import waitlist  # waitlist imports this module

    base_url = mail_setting("BASE_URL").rstrip("/")
    if notification.kind.startswith("pass_"):
        from loafy.passes import mail  # passes import this module

        user, context = mail.render_context(notification, base_url)
        context.update(club_name=settings["club_name"], settings=settings)
        body = _templates.get_template(f"{notification.kind}.txt").render(**context)
        return user, SUBJECTS[notification.kind].format(code=context["club_pass"].code), body
    user, context = waitlist.render_joined(notification, settings, base_url)
    context.update(club_name=settings["club_name"], settings=settings)
    body = _templates.get_template(f"{notification.kind}.txt").render(**context)
    return user, SUBJECTS[notification.kind], body


def _claimable(now):
    return (
        Notification.sent_at.is_null()
        & (Notification.send_after <= now)
        & (Notification.attempts < MAX_ATTEMPTS)
        & (Notification.claimed_at.is_null() | (Notification.claimed_at < now - CLAIM_TIMEOUT))
    )


def _send_claimable(condition, now, limit=None):
    """Claim the due, unsent notifications matching `condition` (oldest first), then send each.

    The claim is one UPDATE whose conditions are re-checked row by row, so two senders racing for
    the same rows never both get one; what a sender claims is read back in one query with its
    booking, session and player. Returns how many went out.
    """
    claimable = _claimable(now) if condition is None else _claimable(now) & condition
    candidates = Notification.select(Notification.id).where(claimable)
    candidates = candidates.order_by(Notification.send_after, Notification.id).limit(limit)
    ids = [row.id for row in candidates]
    if not ids:
        return 0
    claimed = [
        row.id
        for row in Notification.update(claimed_at=now, attempts=Notification.attempts + 1)
        .where(Notification.id.in_(ids) & _claimable(now))
        .returning(Notification.id)
        .execute()
    ]
    if not claimed:
        return 0
    rows = (
        Notification.select(Notification, Booking, ClubSession, User)
        .join(Booking)
        .join(ClubSession)
        .switch(Booking)
        .join(User)
        .where(Notification.id.in_(claimed))
        .order_by(Notification.send_after, Notification.id)
    )
    rows = list(rows)
    orphans = set(claimed) - {notification.id for notification in rows}
    unbooked = []
    if orphans:
        unbooked = list(
            Notification.select()
            .where(Notification.id.in_(orphans) & Notification.kind.in_(UNBOOKED_KINDS))
            .order_by(Notification.send_after, Notification.id)
        )
        orphans -= {notification.id for notification in unbooked}
    if orphans:  # its booking is gone (cannot happen while bookings are never deleted)
        Notification.update(sent_at=now, last_error="skipped: no booking").where(
            Notification.id.in_(orphans)
        ).execute()
    settings = get_settings()
    sent, marks = 0, []
    with smtp_batch():  # one SMTP connection for the whole claim, not one per message
        for notification in [*rows, *unbooked]:
            sent += _deliver(notification, settings, now, marks)
            if len(marks) >= MARK_EVERY:
                _apply(marks)
    _apply(marks)
    return sent


# Rows are marked sent (or failed) MARK_EVERY at a time, in one transaction: one commit for a
# handful of mails instead of one each. A sender that dies before a mark leaves at most that many
# rows to be sent again once their claim goes stale (at-least-once, as before).
MARK_EVERY = 20


def _apply(marks):
    """Run the pending marks (unexecuted UPDATEs) in one transaction, and forget them."""
    if not marks:
        return
    with db.atomic():
        for query in marks:
            query.execute()
    marks.clear()


def _deliver(notification, settings, now, marks):
    """Send one claimed notification and mark it sent (or skipped, or failed for a later retry)."""
    if notification.booking_id is None:
        try:
            user, subject, body = _render_unbooked(notification, settings)
        except Exception as exc:  # its row is gone, a template broke: the sweep retries
            return _failed(notification, exc, now, marks)
        booking, stale = None, False
    else:
        booking = notification.booking
        user = booking.user
        # "Please pay" mails that wait past the payment (a backlog, Redis down) are no longer true.
        asks_to_pay = notification.kind in ("booking_received", "payment_reminder")
        stale = asks_to_pay and booking.status != "pending_payment"
    if stale or not user.email:
        reason = "no e-mail address" if not stale else "no longer relevant"
        marks.append(
            Notification.update(sent_at=now, last_error=f"skipped: {reason}").where(
                Notification.id == notification.id
            )
        )
        return False
    try:
        if booking is not None:
            subject, body = render(notification, booking, settings)
        message_id = f"<loafy-{notification.dedupe_key.replace(':', '-')}@loafy.local>"
        extra = ticket_parts(notification.kind, booking)  # door: the ticket's QR as an inline PNG
        attachments = _attachments(notification, booking)  # calendar: the booking's .ics
        if attachments:
            extra["attachments"] = attachments
        send_email(user.email, subject, body, message_id=message_id, **extra)
    except Exception as exc:  # SMTP and templates can fail in many ways; the sweep retries
        return _failed(notification, exc, now, marks)
    marks.append(
        Notification.update(
            sent_at=now, to_email=user.email, subject=subject, body=body, last_error=None
        ).where(Notification.id == notification.id)
    )
    return True


def _attachments(notification, booking):
    """A confirmation carries the booking as an .ics file (the same event as the player's feed)."""
    if booking is None or notification.kind != "booking_confirmed":
        return ()
    from loafy.calendar.ics import booking_ics  # ics reads settings and the mail's base URL

    return ((f"{booking.code}.ics", "text/calendar", booking_ics(booking)),)


def _failed(notification, exc, now, marks):
    attempts = notification.attempts  # the claim counted this one
    if attempts >= MAX_ATTEMPTS:
        log.error("gave up notification %s after %d attempts: %s", notification.id, attempts, exc)
    else:
        log.warning("sending notification %s failed (attempt %d): %s", notification.id, attempts, exc)
    marks.append(
        Notification.update(
            claimed_at=None, last_error=str(exc)[:500], send_after=now + timedelta(minutes=2**attempts)
        ).where(Notification.id == notification.id)
    )
    return False


def send_notification(notification_id, now=None):
    """Send one notification if it is due and unsent; safe to run twice or concurrently."""
    return bool(_send_claimable(Notification.id == notification_id, now or utcnow(), limit=1))


def send_due_for_booking(booking_id, now=None):
    """Send one booking's due, unsent notifications (the job enqueued after each change to it)."""
    return _send_claimable(Notification.booking == booking_id, now or utcnow())


def send_due(now=None, limit=500):
    """Send every due, unsent notification (oldest first); returns how many went out."""
    return _send_claimable(None, now or utcnow(), limit=limit)
