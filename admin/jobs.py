"""The job queue's health (admins): queue lengths and failed/scheduled counts per queue, via RQ."""

import logging

from flask_admin import BaseView, expose
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from admin.base import StaffOnly
from loafy import queue

log = logging.getLogger(__name__)


def queue_health():
    """Counts per queue, or {"ok": False, "error": ...} when Redis cannot be reached (never raises)."""
    try:
        connection = queue.redis_connection()
        connection.ping()
        rows = []
        for name in queue.QUEUES:
            q = Queue(name, connection=connection)
            rows.append(
                {
                    "name": name,
                    "queued": q.count,
                    "started": StartedJobRegistry(queue=q).count,
                    "scheduled": ScheduledJobRegistry(queue=q).count,
                    "deferred": DeferredJobRegistry(queue=q).count,
                    "failed": FailedJobRegistry(queue=q).count,
                }
            )
        workers = Worker.count(connection=connection)
    except (RedisError, OSError) as exc:
        log.warning("job queue health unavailable: %s", exc)
        return {
            "ok": False,
            "error": "Redis is not reachable: the job queue's state is unknown.",
            "queues": [],
        }
    return {
        "ok": True,
        "error": None,
        "queues": rows,
        "workers": workers,
        "failed": sum(r["failed"] for r in rows),
        "queued": sum(r["queued"] for r in rows),
    }


class JobsView(StaffOnly, BaseView):
    roles = ("admin",)

    @expose("/")
    def index(self):
        return self.render("admin/loafy/jobs.html", health=queue_health())
