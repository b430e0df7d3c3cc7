"""What every request is checked for before a view sees it (a before_request hook).

- A body sent to an endpoint that takes JSON must say it is JSON (`Content-Type:
  application/json` or `+json`): anything else is a 415 (`require_json`, called by the API's body
  parser after the access guard, so a stranger still gets 401/403 first). Endpoints that take no
  body (a logout, a DELETE) ignore what they are sent; webhooks keep their own rules (signatures
  over the raw bytes), so /api/webhooks/ is left alone.
- No text may hold a NUL character (query string, form or JSON): it means nothing in a name or a
  title, PostgreSQL refuses it in text columns (a 500), and SQLite would store it.
- No JSON string may hold half of a UTF-16 surrogate pair (`"\\ud800"` alone): it is not Unicode,
  and encoding it for the database failed with a 500.
"""

import re

from flask import request
from flask_babel import gettext as _

from loafy.errors import LoafyError, ValidationError
from public.errors import wants_json

WEBHOOKS = "/api/webhooks/"
BODY_METHODS = ("POST", "PUT", "PATCH")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins a valid pair into one character


class NotJson(LoafyError):
    code = "unsupported_media_type"
    status = 415
    message = "Send the body as JSON, with the header Content-Type: application/json."


def check_input():
    """Refuse text holding NUL (query, form, JSON) or a lone surrogate (JSON) with a 422."""
    if request.path.startswith(WEBHOOKS):
        return
    field = _nul_in(request.args)
    if field is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        field = _nul_in(request.form)
    if field is not None:
        raise _refusal("nul", field)
    if request.method in BODY_METHODS and request.is_json and _has_body():
        problem = _bad_text(request.get_json(silent=True))  # parsed once, cached for the view
        if problem is not None:
            raise _refusal(*problem)


def require_json():
    """415 for a body that does not say it is JSON, on an endpoint that takes JSON."""
    if _has_body() and not request.is_json:
        raise NotJson()


def _has_body():
    return bool(request.content_length) or bool(request.get_data(cache=True))


def _nul_in(multidict):
    for key, values in multidict.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return key.replace("\x00", "")
    return None


def _bad_text(value):
    """(problem, field) for the first string in a parsed JSON value holding a NUL or a lone
    surrogate, else None; walked without recursion (a body may nest as deep as JSON allows)."""
    stack = [(value, None)]
    while stack:
        item, field = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "nul", field
            if LONE_SURROGATE.search(item):
                return "surrogate", field
        elif isinstance(item, dict):
            for key, inner in item.items():
                stack.append((key, field))
                stack.append((inner, field or key))
        elif isinstance(item, list):
            stack.extend((inner, field) for inner in item)
    return None


def _refusal(problem, field):
    field = LONE_SURROGATE.sub("", field) if isinstance(field, str) else None
    where = f" ({field})" if field else ""
    if problem == "nul":
        english = f"Text may not contain the NUL character (\\u0000){where}: remove it and send again."
        translated = _("The text you sent contains a character that is not allowed (NUL). Please retype it.")
    else:
        english = (
            f"Text must be valid Unicode{where}: half of a UTF-16 surrogate pair was sent without "
            "its other half."
        )
        translated = _("The text you sent is not valid Unicode. Please retype it.")
    return ValidationError(english if wants_json() else translated, code="invalid_text", field=field)
