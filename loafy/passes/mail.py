"""Passes' e-mails (the notifications outbox): written in the transaction that activates a pass."""

from peewee import IntegrityError

from loafy import queue
from loafy.db import db
from loafy.models import Notification, Pass, PassProduct, User

FLUSH_JOB = "jobs.tasks.flush_notifications"


def pass_confirmed(club_pass, now):
    """Once per pass: "your pass is active" (from when, until when, credits)."""
    try:
        with db.atomic():
            Notification.create(
                user=club_pass.user_id,
                booking=None,
                kind="pass_confirmed",
                dedupe_key=f"pass_confirmed:{club_pass.id}",
                send_after=now,
                created_at=now,
            )
    except IntegrityError:
        return
    queue.enqueue(FLUSH_JOB, queue_name="mail")


def render_context(notification, base_url):
    """(user, template context) of a pass's e-mail, from the pass as it is now."""
    pass_id = int(notification.dedupe_key.rsplit(":", 1)[1])
    club_pass = (
        Pass.select(Pass, PassProduct, User)
        .join(PassProduct)
        .switch(Pass)
        .join(User)
        .where(Pass.id == pass_id)
        .get()
    )
    return club_pass.user, {
        "club_pass": club_pass,
        "product": club_pass.product,
        "user": club_pass.user,
        "passes_url": f"{base_url}/passes",
    }
