"""Rate limits (Flask-Limiter) on booking creation and sign-in, shared by every web process via Redis.

Storage: RATELIMIT_STORAGE_URI if set; else REDIS_URL in production and memory:// in development
and testing. Limits are on by default except under LOAFY_ENV=testing, where a test turns them on
with RATELIMIT_ENABLED=True (and may change the rates with the RATELIMIT_* keys below).
A breach raises RateLimitExceeded (429), rendered by public/errors.py (JSON under /api, a page
elsewhere) with a Retry-After header.
"""

import logging
import time

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user

from loafy.queue import DEFAULT_REDIS_URL

log = logging.getLogger(__name__)

DEFAULT_RATES = {
    "RATELIMIT_BOOKING_PER_USER": "10 per minute",
    "RATELIMIT_BOOKING_PER_IP": "30 per minute",
    "RATELIMIT_LOGIN_PER_IP": "20 per minute",
}
# (endpoint, config key of its rate, key function name): applied after the blueprints exist.
# Endpoints naming the same config key share one counter (the rate's key is the limit's scope).
LIMITED = (
    ("api.create_booking_view", "RATELIMIT_BOOKING_PER_USER", "user"),
    ("api.create_booking_view", "RATELIMIT_BOOKING_PER_IP", "ip"),
    ("pages.book", "RATELIMIT_BOOKING_PER_USER", "user"),  # the booking form: the API's budget, shared
    ("pages.book", "RATELIMIT_BOOKING_PER_IP", "ip"),
    ("auth.login_with", "RATELIMIT_LOGIN_PER_IP", "ip"),
)


def user_or_ip():
    """The signed-in user (by session or token), else the client address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"anonymous:{get_remote_address()}"


def client_ip():
    return f"ip:{get_remote_address()}"


KEY_FUNCS = {"user": user_or_ip, "ip": client_ip}


def retry_after_seconds():
    """Seconds until the breached limit's window resets (read from the limiter's storage on a 429 only)."""
    limiter = current_app.extensions.get("loafy_limiter")
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return 60
    return max(1, int(limit.reset_at - time.time()))


def storage_uri(config):
    if config.get("RATELIMIT_STORAGE_URI"):
        return config["RATELIMIT_STORAGE_URI"]
    if config["LOAFY_ENV"] == "production":
        return config.get("REDIS_URL") or DEFAULT_REDIS_URL
    return "memory://"


def init_app(app):
    """One Limiter per app (create_app may run many times in one process); call after blueprints."""
    config = app.config
    config.setdefault("RATELIMIT_ENABLED", config["LOAFY_ENV"] != "testing")
    config["RATELIMIT_STORAGE_URI"] = storage_uri(config)
    # No X-RateLimit-* headers on every answer: they cost two Redis reads per limited request
    # (a quarter of a booking's time in bench/rush.py). A 429 still says when to retry.
    config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    config.setdefault("RATELIMIT_KEY_PREFIX", "loafy-limits")
    # Redis down must not take booking down with it: count in memory until it is back.
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    for key, rate in DEFAULT_RATES.items():
        config.setdefault(key, rate)

    limiter = Limiter(key_func=get_remote_address, app=app)
    app.extensions["loafy_limiter"] = limiter
    for endpoint, rate_key, key_name in LIMITED:
        view = app.view_functions.get(endpoint)
        if view is None:
            log.warning("rate limit for %s skipped: no such endpoint", endpoint)
            continue
        rate = config[rate_key]
        # A shared limit scoped by the rate's key: alternating the form and the API gives no extra budget.
        app.view_functions[endpoint] = limiter.shared_limit(
            lambda rate=rate: rate, scope=rate_key.lower(), key_func=KEY_FUNCS[key_name]
        )(view)
    return limiter
