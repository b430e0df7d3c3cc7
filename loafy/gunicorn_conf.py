"""gunicorn settings for the Procfile's web process (tuned in bench/, see README)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
# gunicorn's most (default 4094): a longer request line gets gunicorn's own HTML 414, which an API
# client cannot read, so let the app see lines up to 8 KB and answer them (a JSON 422 for a
# 5,000-digit per_page). Headers keep gunicorn's limits.
limit_request_line = 8190
# Recycle workers now and then so memory stays flat; not every few seconds at peak (a fresh worker
# costs about a second of CPU to import the app: 5,000 requests recycled both workers mid-rush).
max_requests = 50_000
max_requests_jitter = 5_000
# No access log of our own (gunicorn's default): the platform's router logs every request, and
# formatting and writing a line under a lock cost 40 us of each request's CPU. To have one anyway:
# GUNICORN_CMD_ARGS="--access-logfile -".
# Its lines carry the path without the query string: sign-in callbacks carry one-time codes there.
access_log_format = ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """The app's import-time objects live as long as the worker: move them out of the collector's
    reach, so a full collection scans only what requests create (shorter pauses, lower p99)."""
    import gc

    gc.freeze()
