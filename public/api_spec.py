"""The machinery behind public/api_schemas.py: spectree checks each request against its pydantic
model, turns a refusal into our `{"error": {"code", "message", "field"}}` 422, and derives the
OpenAPI 3.1 document (/api/openapi.json, /api/docs) from the same declarations.

Read public/api_schemas.py to add an endpoint; this module rarely changes.
"""

import json
import re
import threading
from copy import deepcopy
from datetime import UTC, datetime
from typing import Annotated

from flask import current_app, make_response, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError, PydanticUseDefault, core_schema
from spectree import Response, SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.plugins.werkzeug_utils import flask_response_unpack
from werkzeug.exceptions import BadRequest

from loafy.clock import to_local
from loafy.errors import ValidationError
from public.input_checks import require_json

# Who may call an operation: shown on /api/docs and as each operation's `x-loafy-who`.
ANYONE, SIGNED_IN, STAFF, ADMIN = "anyone", "signed in", "organizer, admin", "admin"

AUTH = [{"bearerAuth": []}, {"cookieAuth": []}]
OPTIONAL_AUTH = [{}, *AUTH]
NO_AUTH = [{}]

ERROR_TEXT = {
    400: "Malformed JSON, a body that is not an object, or a missing/expired CSRF token (cookie calls)",
    401: "Not signed in",
    403: "Signed in without the role",
    404: "Unknown, or not yours",
    409: "Refused by the current state (full, duplicate, closed, cancelled...)",
    413: "Body over 1 MiB",
    415: "A body that does not say it is JSON (Content-Type: application/json)",
    422: "Invalid field; `error.field` names it",
    429: "Rate-limited; retry after the Retry-After header",
}


# --- bases and field types ----------------------------------------------------------------------


def _whole(value):
    """JSON numbers only (no true/false, no text); 3.0 is 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("whole_number", "must be a whole number")
    return value


def _iso_text(value):
    """ISO-8601 text that parses; the service converts it (offset-less is UTC) and checks its range."""
    if not isinstance(value, str):
        raise PydanticCustomError("date_time", "must be an ISO-8601 date and time")
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError("date_time", "must be an ISO-8601 date and time")
    return value


def _blank_is_default(value):
    if value == "":
        raise PydanticUseDefault()
    return value


def _no_null_defaults(schema):
    """A field left out is simply not sent: `"default": null` would invite clients to send null."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


def _utc_text(value):
    return value.replace(tzinfo=UTC).isoformat() if value else None


def _local_text(value):
    local = to_local(value)
    return local.isoformat() if local else None


class Body(BaseModel):
    """A JSON request body. Unknown keys are ignored; text is trimmed before its length is checked."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", json_schema_extra=_no_null_defaults)


class Query(BaseModel):
    """Query-string parameters (each arrives as text; a blank one counts as not sent)."""

    model_config = ConfigDict(
        str_strip_whitespace=True, extra="ignore", populate_by_name=True, json_schema_extra=_no_null_defaults
    )


class Answer(BaseModel):
    """A response body, read from a model's attributes (or a dict); every field is always sent."""

    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)


def whole_number(ge=None, le=None):
    """A JSON integer (no true/false, no text; 3.0 is 3) within the bounds given."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole)]  # bounds first: then documented


WholeNumber = whole_number()
DateTimeText = Annotated[
    str, BeforeValidator(_iso_text), WithJsonSchema({"type": "string", "format": "date-time"})
]


class _Blank:
    """For Query fields: `?status=` counts as not sent (the default applies), and the document
    says so (a client's form may send its empty fields)."""

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_before_validator_function(_blank_is_default, handler(source))

    def __get_pydantic_json_schema__(self, schema, handler):
        inner = handler(schema)
        return inner if inner == {"type": "string"} else {"anyOf": [inner, {"const": ""}]}


Blank = _Blank()
UtcTime = Annotated[
    datetime,
    PlainSerializer(_utc_text, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO-8601 with offset (UTC)"}),
]
LocalTime = Annotated[
    datetime,
    PlainSerializer(_local_text, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "ISO-8601 in the club's time zone"}
    ),
]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class Error(BaseModel):
    """Every 4xx/5xx of the API: a stable code, a sentence a person understands, the field at fault."""

    error: ErrorDetail


# --- answers ------------------------------------------------------------------------------------


class _With:
    """An object whose attributes are `obj`'s, but for the ones given (an answer's computed parts)."""

    __slots__ = ("_extra", "_obj")

    def __init__(self, obj, extra):
        self._obj, self._extra = obj, extra

    def __getattr__(self, name):
        extra = self._extra
        return extra[name] if name in extra else getattr(self._obj, name)


def including(obj, **extra):
    """`obj` (a row, a NamedTuple, a dict) with `extra` fields added or replaced, to be read by an
    Answer: for the parts of an answer that are not the row's own attributes."""
    return {**obj, **extra} if isinstance(obj, dict) else _With(obj, extra)


def answer(model, obj, status=200, **extra):
    """A JSON response: `obj` (a row, a NamedTuple, a dict) read through `model`, plus `extra` fields."""
    if extra:
        obj = including(obj, **extra)
    body = model.model_validate(obj).model_dump_json()
    return current_app.response_class(body, status=status, mimetype="application/json")


# --- requests: checked before the view, refusals in our error shape -----------------------------


def json_object():
    """The body as a JSON object: 415 when it does not say it is JSON, 400 when malformed or not
    an object (a list, a number, nothing)."""
    require_json()
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises 413
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest()
    if not isinstance(data, dict):
        raise BadRequest()
    return data


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, with our body rules first (415, 400) and answers left as built: they
    come from their model already (`answer`), so checking them again would only cost time."""

    def request_validation(self, request, query, json, form, headers, cookies):
        body = json_object() if json is not None else None
        request.context = Context(
            query.model_validate(request.args.to_dict()) if query is not None else None,
            json.model_validate(body) if json is not None else None,
            None,
            headers.model_validate(dict(request.headers)) if headers is not None else None,
            None,
        )

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        if isinstance(resp, current_app.response_class):
            return resp, None
        return make_response(*flask_response_unpack(resp)), None


def _refuse(req, resp, error, instance, model_adapter):
    """spectree's `before` hook: a refused request is our named 422."""
    if error is not None:
        message, field = describe(error)
        raise ValidationError(message, field=field)


def describe(error: PydanticError):
    """(message, field) for the first problem pydantic found, in words a person understands."""
    problem = error.errors(include_url=False)[0]
    loc = [str(part) for part in problem["loc"]]
    field = ".".join(loc) or None
    name = field or "The body"
    kind, ctx = problem["type"], problem.get("ctx") or {}
    if kind == "missing":
        return f"{name} is required.", field
    if kind in ("whole_number", "int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return f"{name} must be a whole number.", field
    if kind in ("greater_than_equal", "greater_than"):
        return f"{name} must be at least {_number(ctx.get('ge', ctx.get('gt')))}.", field
    if kind in ("less_than_equal", "less_than"):
        return f"{name} must be at most {_number(ctx.get('le', ctx.get('lt')))}.", field
    if kind == "string_type":
        return f"{name} must be text.", field
    if kind == "string_too_short":
        return f"{name} is required.", field
    if kind == "string_too_long":
        return f"{name} must be at most {ctx['max_length']:,} characters.", field
    if kind == "string_pattern_mismatch":
        return f"{name} is not in the expected form.", field
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} must be true or false.", field
    if kind in ("literal_error", "enum"):
        return f"{name} must be one of: {_choices(ctx.get('expected', ''))}.", field
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name} must be a JSON object.", field
    if kind in ("list_type", "tuple_type"):
        return f"{name} must be a list.", field
    if kind == "date_time":
        return f"{name} {problem['msg']}.", field
    if kind == "loafy":  # a model's own sentence (PydanticCustomError("loafy", "..."))
        return problem["msg"], field
    return f"{name}: {problem['msg']}.", field


def _number(value):
    return f"{value:,}" if isinstance(value, int) else str(value)


def _choices(expected):
    return ", ".join(re.findall(r"'([^']*)'", expected)) or expected


spec = SpecTree(
    "flask",
    backend=_Plugin,
    before=_refuse,
    validation_error_model=Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    mode="strict",  # only the views declared with `endpoint` are in the document
    annotations=False,
    title="Loafy JSON API",
    version="1.0.0",
    description="Sessions and bookings of the club. Errors are "
    '`{"error": {"code", "message"}}`; times are ISO-8601 with an offset; money is whole VND. '
    "Authenticate with a personal token (`Authorization: Bearer`) or the browser session "
    "(unsafe methods then need `X-CSRFToken` from /api/auth/me).",
)

_DOC = "_loafy_operation"


def endpoint(
    summary,
    who,
    *,
    ok=None,
    status=200,
    json=None,
    query=None,
    headers=None,
    errors=(),
    description=None,
    security=None,
    raw=False,
    content=None,
):
    """Declare a view (decorate it under its route and guard): `ok` is the answer's model at
    `status`; `json` / `query` / `headers` the request's models, checked before the view runs
    (`request.context.json` etc. hold the parsed models); `errors` the 4xx it may answer (each
    documented with the Error shape); `raw=True` leaves the body to the view (webhooks);
    `content` a non-JSON answer's media type (its `ok` is then None)."""
    security = security if security is not None else (OPTIONAL_AUTH if who == ANYONE else AUTH)
    codes = {f"HTTP_{status}": ok} if ok is not None else {}
    for code in errors:
        codes[f"HTTP_{code}"] = (Error, ERROR_TEXT[code])
    takes_input = any(model is not None for model in (json, query, headers)) and not raw

    def decorate(view):
        validated = spec.validate(
            json=json,
            query=query,
            headers=headers,
            resp=Response(**codes),
            security=security,
            skip_validation=raw,
            operation_id=view.__name__,
        )(view)
        setattr(
            validated,
            _DOC,
            {
                "summary": summary,
                "who": who,
                "status": status,
                "description": description,
                "takes_input": takes_input,
                "errors": set(errors),
                "content": content,
            },
        )
        return validated

    return decorate


# --- the document -------------------------------------------------------------------------------


def _operation_details(view):
    while view is not None:
        details = getattr(view, _DOC, None)
        if details is not None:
            return details
        view = getattr(view, "__wrapped__", None)
    return None


_building = threading.Lock()  # spectree's first build rewrites its models: one thread at a time


def build_document():
    """The OpenAPI 3.1 document of the current app's declared views (a fresh copy: callers may
    change it). Built once per app, on first use."""
    cached = current_app.extensions.get("loafy_openapi")
    if cached is None:
        with _building:
            cached = current_app.extensions.get("loafy_openapi") or json.dumps(_derive())
            current_app.extensions["loafy_openapi"] = cached
    return json.loads(cached)


def _derive():
    document = deepcopy(spec.spec)  # spectree builds it once a process; every app has the same views
    details = {}
    for rule in current_app.url_map.iter_rules():
        found = _operation_details(current_app.view_functions[rule.endpoint])
        if found is None:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            details[(path, method.lower())] = found
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            found = details[(path, method)]
            operation["summary"] = found["summary"]
            operation["x-loafy-who"] = found["who"]
            operation.pop("tags", None)
            if found["description"]:
                operation["description"] = found["description"]
            else:
                operation.pop("description", None)
            if not operation.get("parameters"):
                operation.pop("parameters", None)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    parameter["schema"] = {"type": "integer"}  # any size: past 32 bits names no row
                if not parameter.get("description"):
                    parameter.pop("description", None)
            responses = operation["responses"]
            if "422" in responses and not found["takes_input"] and 422 not in found["errors"]:
                del responses["422"]  # spectree adds one to every operation
            if "422" in responses:
                responses["422"]["description"] = ERROR_TEXT[422]
            ok = str(found["status"])
            if found["content"]:
                responses[ok] = {
                    "description": "OK",
                    "content": {found["content"]: {"schema": {"type": "string"}}},
                }
            responses[ok]["description"] = "Created (Location: the new resource)" if ok == "201" else "OK"
            if "429" in responses:
                responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
            operation["responses"] = dict(sorted(responses.items()))
    document.pop("tags", None)
    document.pop("security", None)
    document["servers"] = [{"url": "/"}]
    document["components"]["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A personal API token"},
        "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
    }
    document["paths"] = dict(sorted(document["paths"].items()))
    return document


def endpoint_rows(document):
    """(method, path, who, summary) for each operation, in document order."""
    return [
        (method.upper(), path, operation.get("x-loafy-who", ""), operation.get("summary", ""))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
