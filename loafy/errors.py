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


def parse_id(value, message):
    """A row id from whatever a caller sent (a model, an int, text); anything else is NotFound."""
    raw = getattr(value, "id", value)
    if isinstance(raw, bool):
        raise NotFound(message)
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise NotFound(message)
    # Every table's id is a 32-bit SERIAL: a larger number names no row (and a prepared statement's
    # integer parameter would refuse it with an error instead of finding nothing).
    if not 0 < number < 2**31:
        raise NotFound(message)
    return number
