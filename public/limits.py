"""Rate limits on booking creation and sign-in, shared by every web process via Redis.

Who is counted: a signed-in player (by session or token) per player, never per address: a club's
Wi-Fi or a mobile carrier's NAT puts hundreds of players behind one public address, and a rush for
a session must sell out, not answer 429. Anonymous requests and the sign-in steps are counted per
address, with budgets sized for carrier NAT (many phones, one address).

Counted by the `limits` library (fixed windows, the counters Flask-Limiter keeps) from a small
decorator: Flask-Limiter's own per-request machinery cost a fifth of a booking's time.
Storage: RATELIMIT_STORAGE_URI if set; else REDIS_URL in production and memory:// in development
and testing. Limits are on by default except under LOAFY_ENV=testing, where a test turns them on
with RATELIMIT_ENABLED=True (and may change the rates with the RATELIMIT_* keys below).
While the shared storage is unreachable, each process counts in its own memory: Redis down never
takes booking down with it. A breach raises RateLimited (429), rendered by public/errors.py (JSON
under /api, a page elsewhere) with a Retry-After header.
"""

import functools
import logging
import time

from flask import request
from flask_login import current_user
from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from loafy.queue import DEFAULT_REDIS_URL

log = logging.getLogger(__name__)

DEFAULT_RATES = {
    "RATELIMIT_BOOKING_PER_USER": "10 per minute",
    # Per address: a few hundred club members may share one carrier address in the same minute.
    "RATELIMIT_BOOKING_PER_IP": "120 per minute",  # anonymous attempts only
    "RATELIMIT_LOGIN_PER_IP": "120 per minute",
    "RATELIMIT_CALLBACK_PER_IP": "120 per minute",
}
# (endpoint, config key of its rate, key function name): applied after the blueprints exist, in
# this order. Endpoints naming the same config key share one counter (the rate's key is its scope).
LIMITED = (
    ("api.create_booking_view", "RATELIMIT_BOOKING_PER_USER", "player"),
    ("api.create_booking_view", "RATELIMIT_BOOKING_PER_IP", "anonymous_ip"),
    ("pages.book", "RATELIMIT_BOOKING_PER_USER", "player"),  # the booking form: the API's budget, shared
    ("pages.book", "RATELIMIT_BOOKING_PER_IP", "anonymous_ip"),
    ("api.join_waitlist_view", "RATELIMIT_BOOKING_PER_USER", "player"),  # joining: the booking budget
    ("pages.join_waitlist", "RATELIMIT_BOOKING_PER_USER", "player"),
    ("auth.login_with", "RATELIMIT_LOGIN_PER_IP", "ip"),
    # Each callback makes an HTTP call to the provider that can hold a web worker for seconds.
    ("auth.callback", "RATELIMIT_CALLBACK_PER_IP", "ip"),
    ("auth.apple_form_post", "RATELIMIT_CALLBACK_PER_IP", "ip"),
)


class RateLimited(TooManyRequests):
    """A breached limit; `retry_after` is the whole seconds until its window resets."""

    def __init__(self, retry_after):
        super().__init__()
        self.retry_after = retry_after


def client_address():
    """The client's address (behind TRUSTED_PROXIES, the one the nearest trusted proxy saw)."""
    return request.remote_addr or "127.0.0.1"


def signed_in_player():
    """The signed-in player (by session or token); None (not counted here) for anonymous requests."""
    return f"user:{current_user.id}" if current_user.is_authenticated else None


def anonymous_address():
    """The client address of an anonymous request; None for a signed-in player, counted per player."""
    return None if current_user.is_authenticated else f"ip:{client_address()}"


def client_ip():
    return f"ip:{client_address()}"


KEY_FUNCS = {"player": signed_in_player, "anonymous_ip": anonymous_address, "ip": client_ip}


class Counters:
    """The limits' counters: in the shared storage, or in this process's memory for a few seconds
    after the shared storage failed (then the shared storage is tried again)."""

    RETRY_SHARED_AFTER_SECONDS = 5.0

    def __init__(self, uri, prefix):
        options = {"socket_timeout": 2, "socket_connect_timeout": 2} if uri.startswith("redis") else {}
        self.shared = FixedWindowRateLimiter(storage_from_string(uri, **options))
        self.local = FixedWindowRateLimiter(MemoryStorage())
        # Only a remote storage can be unreachable (memory's "base exception" is ValueError).
        self.shared_errors = () if uri.startswith("memory") else self.shared.storage.base_exceptions
        self.prefix = prefix
        self.shared_down_until = 0.0

    def hit(self, item, *identifiers):
        """Counts one request; None when it is allowed, else the seconds until the window resets."""
        if time.monotonic() >= self.shared_down_until:
            try:
                return self._hit(self.shared, item, identifiers)
            except self.shared_errors as exc:
                log.warning("rate-limit storage unreachable (%s): counting in memory for now", exc)
                self.shared_down_until = time.monotonic() + self.RETRY_SHARED_AFTER_SECONDS
        return self._hit(self.local, item, identifiers)

    def _hit(self, limiter, item, identifiers):
        if limiter.hit(item, self.prefix, *identifiers):
            return None
        reset_at = limiter.get_window_stats(item, self.prefix, *identifiers).reset_time
        return max(1, int(reset_at - time.time() + 0.999))


def storage_uri(config):
    if config.get("RATELIMIT_STORAGE_URI"):
        return config["RATELIMIT_STORAGE_URI"]
    if config["LOAFY_ENV"] == "production":
        return config.get("REDIS_URL") or DEFAULT_REDIS_URL
    return "memory://"


def limited(view, counters, checks):
    """`view`, counting each request against `checks` [(rate item, scope, key function)] in order;
    the first breached one answers 429 (later ones are not counted); a key function answering
    None leaves the request out of that check."""

    @functools.wraps(view)
    def limited_view(*args, **kwargs):
        for item, scope, key_func in checks:
            key = key_func()
            if key is None:
                continue
            retry_after = counters.hit(item, scope, key)
            if retry_after is not None:
                raise RateLimited(retry_after)
        return view(*args, **kwargs)

    return limited_view


def init_app(app):
    """One set of counters per app (create_app may run many times in one process); call after the
    blueprints. No X-RateLimit-* headers on every answer (two more Redis reads a request)."""
    config = app.config
    config.setdefault("RATELIMIT_ENABLED", config["LOAFY_ENV"] != "testing")
    config["RATELIMIT_STORAGE_URI"] = storage_uri(config)
    config.setdefault("RATELIMIT_KEY_PREFIX", "loafy-limits")
    for key, rate in DEFAULT_RATES.items():
        config.setdefault(key, rate)
    if not config["RATELIMIT_ENABLED"]:
        return None

    counters = Counters(config["RATELIMIT_STORAGE_URI"], config["RATELIMIT_KEY_PREFIX"])
    app.extensions["loafy_limits"] = counters
    checks = {}
    for endpoint, rate_key, key_name in LIMITED:
        if endpoint not in app.view_functions:
            log.warning("rate limit for %s skipped: no such endpoint", endpoint)
            continue
        check = (parse(config[rate_key]), rate_key.lower(), KEY_FUNCS[key_name])
        checks.setdefault(endpoint, []).append(check)
    for endpoint, endpoint_checks in checks.items():
        app.view_functions[endpoint] = limited(app.view_functions[endpoint], counters, endpoint_checks)
    return counters
