"""Typed errors raised by services. Each carries a stable code and a message a person understands.

HTTP status mapping happens once, at the edge (public/errors.py); services never know about HTTP.
"""


class ConfigError(Exception):
    """Bad or missing configuration; the message is one line naming the variable."""


class LoafyError(Exception):
    """Base of every refusal a service can give."""

    code = "error"
    status = 400
    message = "Something went wrong."

    def __init__(self, message=None, *, code=None, field=None):
        self.message = message or self.message
        self.code = code or self.code
        self.field = field
        super().__init__(self.message)


class NotFound(LoafyError):
    code = "not_found"
    status = 404
    message = "We could not find that."


class PermissionDenied(LoafyError):
    code = "forbidden"
    status = 403
    message = "You are not allowed to do that."


class ValidationError(LoafyError):
    code = "invalid"
    status = 422
    message = "Some of the details are not valid."


class Conflict(LoafyError):
    """The request is valid but the current state refuses it (full, duplicate, closed...)."""

    code = "conflict"
    status = 409
    message = "That cannot be done right now."


class Unavailable(LoafyError):
    """A dependency (database, payment provider) is down; nothing was changed."""

    code = "unavailable"
    status = 503
    message = "The service is temporarily unavailable. Please try again in a minute."


# Every table's id is a 32-bit SERIAL: a larger number names no row (and a prepared statement's
# integer parameter would refuse it with an error instead of finding nothing).
ID_LIMIT = 2**31


def as_id(value):
    """A row id from whatever a caller sent (a model, an int, decimal digits as text), else None.

    The one id parser: URLs, forms, JSON and services all read ids through it (parse_id raises).
    """
    raw = getattr(value, "id", value)
    if isinstance(raw, str):
        text = raw.strip()
        # isdigit() alone admits "²" and other digits; int() alone admits "1_000", "+5" and "٣".
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            return None
        raw = int(text)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < ID_LIMIT:
        return None
    return raw


def parse_id(value, message="We could not find that."):
    """as_id, or NotFound with `message` for anything that names no row."""
    number = as_id(value)
    if number is None:
        raise NotFound(message)
    return number
