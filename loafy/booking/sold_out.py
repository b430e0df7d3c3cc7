"""Sessions this process saw sold out: the hint that lets a crowd be answered "full" cheaply.

Set by the booking service's authoritative read (no slot left, no lapsed hold to release). It
holds for one second and never past the session's next payment deadline (a hold lapsing frees a
slot); this process drops it at once when it returns slots itself (expiry, a cancellation, more
capacity). A slot another process returns is offered again within the second.
"""

import time

from loafy.clock import utcnow

HINT_SECONDS = 1.0
_hints = {}  # session id -> (monotonic time it ends, next payment deadline or None)


def remember(session_id, next_deadline):
    _hints[session_id] = (time.monotonic() + HINT_SECONDS, next_deadline)


def forget(session_ids):
    for session_id in session_ids:
        _hints.pop(session_id, None)


def forget_all():
    """A new app starts with no hints (tests build one per test, on a fresh database)."""
    _hints.clear()


def is_sold_out(session_id):
    hint = _hints.get(session_id)
    if hint is None:
        return False
    ends, next_deadline = hint
    if time.monotonic() < ends and (next_deadline is None or utcnow() < next_deadline):
        return True
    _hints.pop(session_id, None)
    return False
