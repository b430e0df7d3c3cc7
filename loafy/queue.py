"""Background jobs: enqueue after commit, by dotted name, never blocking the change itself.

The database is the source of truth (deadlines, unsent notifications); a failed enqueue is logged
and the periodic sweeps in jobs/ catch up, so Redis being down never loses or blocks a booking.
"""

import importlib
import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from loafy.db import db

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUES = ("default", "mail")

_state = {"url": DEFAULT_REDIS_URL, "inline": False, "connection": None}


def init_app(app):
    inline = app.config.get("JOBS_INLINE")
    if inline is None:
        inline = app.config["LOAFY_ENV"] == "testing" and not app.config.get("REDIS_URL")
    _state["inline"] = str(inline).lower() in ("1", "true", "yes")
    _state["url"] = app.config.get("REDIS_URL") or DEFAULT_REDIS_URL
    _state["connection"] = None


def redis_connection():
    if _state["connection"] is None:
        _state["connection"] = Redis.from_url(
            _state["url"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return _state["connection"]


def get_queue(name="default"):
    return Queue(name, connection=redis_connection())


def enqueue(func_path, *args, queue_name="default", at=None):
    """Enqueue `func_path(*args)` once the current transaction commits (at once if none is open)."""

    def send():
        if _state["inline"]:
            if at is None:  # scheduled work is left to the periodic sweeps, which read the database
                _run_inline(func_path, args)
            return
        try:
            q = get_queue(queue_name)
            if at is None:
                q.enqueue(func_path, *args)
            else:
                q.enqueue_at(at, func_path, *args)
        except RedisError as exc:
            log.warning(
                "could not enqueue %s%r (%s); the periodic sweep will catch up",
                func_path,
                args,
                exc,
            )

    db.after_commit(send)


def enqueue_coalesced(func_path, pending_key, queue_name="default", delay=None, pending_seconds=60):
    """Enqueue the argument-less `func_path` after commit unless one is already waiting.

    One Redis SET NX when a job is pending, instead of a whole RQ enqueue: the job calls
    `coalesced_job_started(pending_key)` before reading the database, so work committed before
    that read is seen by it and work committed after sets the key again and enqueues another.
    The key's expiry bounds the wait if a job is lost; the periodic sweeps catch up in any case.
    With a `delay` (a timedelta) the job runs that much later, via the worker's scheduler.
    """

    def send():
        if _state["inline"]:
            _run_inline(func_path, ())
            return
        try:
            if redis_connection().set(pending_key, 1, nx=True, ex=pending_seconds):
                if delay is None:
                    get_queue(queue_name).enqueue(func_path)
                else:
                    get_queue(queue_name).enqueue_in(delay, func_path)
        except RedisError as exc:
            log.warning("could not enqueue %s (%s); the periodic sweep will catch up", func_path, exc)

    db.after_commit(send)


def coalesced_job_started(pending_key):
    """Called first thing by a job enqueued with enqueue_coalesced."""
    if _state["inline"]:
        return
    try:
        redis_connection().delete(pending_key)
    except RedisError as exc:
        log.warning("could not clear %s (%s)", pending_key, exc)


def _run_inline(func_path, args):
    """Tests and Redis-less runs: do the job right away, in-process; a failure is logged, not raised."""
    module_name, _, func_name = func_path.rpartition(".")
    try:
        getattr(importlib.import_module(module_name), func_name)(*args)
    except Exception:
        log.exception("inline job %s%r failed", func_path, args)


def redis_ok():
    try:
        return bool(redis_connection().ping())
    except RedisError:
        return False
