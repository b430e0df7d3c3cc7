"""Background jobs: enqueue after commit, by dotted name, never blocking the change itself.

The database is the source of truth (deadlines, unsent notifications); a failed enqueue is logged
and the periodic sweeps in jobs/ catch up, so Redis being down never loses or blocks a booking.
"""

import importlib
import logging
import time

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
    _coalesced_until.clear()


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


# enqueue_coalesced: pending key -> the monotonic time until which this process knows a flush is
# still to start and will see its commits (so it asks Redis nothing until then).
_coalesced_until = {}
# How long before a delayed job's due time a process stops relying on it: the scheduler (another
# machine's clock) may be that far ahead of ours.
COALESCED_SAFETY_SECONDS = 1.0


def enqueue_coalesced(func_path, pending_key, queue_name="default", delay=None, pending_seconds=60):
    """Enqueue the argument-less `func_path` after commit unless one is already waiting.

    One Redis round trip (SET NX and GET, pipelined) when a job is pending, instead of a whole RQ
    enqueue: the job calls `coalesced_job_started(pending_key)` before reading the database, so
    work committed before that read is seen by it and work committed after sets the key again and
    enqueues another. The key holds the pending job's due time: a delayed job never starts before
    it, so until shortly before then this process sends nothing at all (a rush's bookings cost
    Redis one round trip a second per process, not one each). The key's expiry bounds the wait if
    a job is lost; the periodic sweeps catch up in any case. With a `delay` (a timedelta) the job
    runs that much later, via the worker's scheduler.
    """

    def send():
        if _state["inline"]:
            _run_inline(func_path, ())
            return
        if time.monotonic() < _coalesced_until.get(pending_key, 0.0):
            return  # committed before a pending job can start: it will see this
        due = time.time() + (delay.total_seconds() if delay is not None else 0.0)
        try:
            pipe = redis_connection().pipeline(transaction=False)
            pipe.set(pending_key, repr(due), nx=True, ex=pending_seconds)
            pipe.get(pending_key)
            created, pending_due = pipe.execute()
            if created:
                if delay is None:
                    get_queue(queue_name).enqueue(func_path)
                else:
                    get_queue(queue_name).enqueue_in(delay, func_path)
            _remember_pending(pending_key, pending_due)
        except RedisError as exc:
            log.warning("could not enqueue %s (%s); the periodic sweep will catch up", func_path, exc)

    db.after_commit(send)


def _remember_pending(pending_key, pending_due):
    try:
        left = float(pending_due) - time.time() - COALESCED_SAFETY_SECONDS
    except (TypeError, ValueError):  # gone already, or set by an older release
        return
    if left > 0:
        _coalesced_until[pending_key] = time.monotonic() + min(left, 60.0)


def coalesced_job_started(pending_key):
    """Called first thing by a job enqueued with enqueue_coalesced."""
    _coalesced_until.pop(pending_key, None)  # a job run early by hand (tests): nothing to rely on
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
