"""E-mail notifications (outbox pattern): written with the change, sent by a job after commit."""

import logging

from loafy.db import db
from loafy.mail import send_email
from loafy.models import Notification, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def send_notification(notification_id, now=None):
    """Send one notification if it is still unsent; safe to run twice."""
    now = now or utcnow()
    notification = Notification.get_or_none(Notification.id == notification_id)
    if notification is None or notification.sent_at is not None:
        return False
    if notification.send_after > now or not notification.to_email:
        return False
    try:
        send_email(
            notification.to_email,
            notification.subject,
            notification.body,
            message_id=f"<loafy-{notification.dedupe_key.replace(':', '-')}@loafy.local>",
        )
    except Exception as exc:  # SMTP can fail in many ways; record it and let the sweep retry
        log.warning("sending notification %s failed: %s", notification_id, exc)
        Notification.update(attempts=Notification.attempts + 1, last_error=str(exc)[:500]).where(
            Notification.id == notification_id
        ).execute()
        return False
    with db.atomic():
        Notification.update(sent_at=now, attempts=Notification.attempts + 1).where(
            (Notification.id == notification_id) & Notification.sent_at.is_null()
        ).execute()
    return True


def send_due(now=None):
    """Send every due, unsent notification; returns how many went out."""
    now = now or utcnow()
    due = (
        Notification.select(Notification.id)
        .where(
            Notification.sent_at.is_null()
            & (Notification.send_after <= now)
            & (Notification.attempts < MAX_ATTEMPTS)
        )
        .order_by(Notification.send_after)
        .limit(500)
    )
    return sum(1 for row in list(due) if send_notification(row.id, now))
