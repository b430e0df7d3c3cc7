"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json and listed at /api/docs.

tests/test_api_openapi.py checks every /api rule of the app against it (and back), and Schemathesis
checks the running app's answers against it: change a route, change this file.
"""

from copy import deepcopy

from loafy.booking.club_sessions import MAX_PER_PAGE
from loafy.models import BOOKING_STATUSES, PAYMENT_METHODS, PAYMENT_STATUSES, SESSION_STATUSES

# Who may call an operation: shown on /api/docs and in each operation's `x-loafy-who`.
ANYONE, SIGNED_IN, STAFF, ADMIN = "anyone", "signed in", "organizer, admin", "admin"
# Operations served by public/payments.py (another module); documented here all the same.
PAYMENTS_OPERATIONS = {("/api/payments/stripe/intent", "post"), ("/api/webhooks/stripe", "post")}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema):
    schema = dict(schema)
    kind = schema.get("type")
    if kind:
        schema["type"] = [kind, "null"]
    return schema


TIME = {"type": "string", "format": "date-time", "description": "ISO-8601 with offset (UTC)"}
LOCAL_TIME = {"type": "string", "format": "date-time", "description": "ISO-8601 in the club's time zone"}
VND = {"type": "integer", "minimum": 0, "description": "Whole VND (no minor unit)"}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable machine-readable code"},
                    "message": {"type": "string", "description": "A sentence a person understands"},
                    "field": {"type": "string", "description": "The request field at fault (422)"},
                },
            }
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "name", "role", "roles", "membership"],
        "properties": {
            "id": {"type": "integer"},
            "email": _nullable({"type": "string"}),
            "name": {"type": "string"},
            "avatar_url": _nullable({"type": "string"}),
            "role": {"type": "string", "enum": ["player", "organizer", "admin"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "membership": {
                "type": "object",
                "required": ["active", "until"],
                "properties": {"active": {"type": "boolean"}, "until": _nullable(TIME)},
            },
        },
    },
    "SessionSummary": {
        "type": "object",
        "required": ["id", "title", "location", "status", "starts_at", "starts_at_local", "ends_at"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "location": {"type": "string"},
            "status": {"type": "string", "enum": list(SESSION_STATUSES)},
            "starts_at": TIME,
            "starts_at_local": LOCAL_TIME,
            "ends_at": TIME,
        },
    },
    "Session": {
        "allOf": [
            _ref("SessionSummary"),
            {
                "type": "object",
                "required": [
                    "description",
                    "ends_at_local",
                    "max_slots",
                    "available_slots",
                    "price",
                    "currency",
                    "booking_opens_at",
                    "early_access_opens_at",
                    "allow_pay_at_door",
                    "created_by",
                ],
                "properties": {
                    "description": {"type": "string"},
                    "ends_at_local": LOCAL_TIME,
                    "max_slots": {"type": "integer", "minimum": 1},
                    "available_slots": {"type": "integer", "minimum": 0},
                    "price": VND,
                    "currency": {"const": "vnd"},
                    "booking_opens_at": _nullable(TIME),
                    "early_access_opens_at": _nullable(TIME),
                    "allow_pay_at_door": {"type": "boolean"},
                    "created_by": _nullable({"type": "integer"}),
                    "created_at": TIME,
                    "updated_at": TIME,
                    "cancelled_at": _nullable(TIME),
                },
            },
        ]
    },
    "SessionInput": {
        "type": "object",
        "description": "All fields for POST (title, starts_at, ends_at, max_slots required); "
        "any subset for PUT. Times without an offset are UTC. Status `cancelled` is refused: use DELETE.",
        "properties": {
            "title": {"type": "string", "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "location": {"type": "string", "maxLength": 300},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "max_slots": {"type": "integer", "minimum": 1, "maximum": 10000},
            "price": {"type": "integer", "minimum": 0, "maximum": 99_999_999},
            "status": {"type": "string", "enum": ["draft", "published", "completed"]},
            "booking_opens_at": _nullable({"type": "string", "format": "date-time"}),
            "early_access_opens_at": _nullable({"type": "string", "format": "date-time"}),
            "allow_pay_at_door": {"type": "boolean"},
        },
    },
    "Booking": {
        "type": "object",
        "required": [
            "id",
            "code",
            "status",
            "payment_status",
            "payment_method",
            "payment_deadline",
            "guest_count",
            "slots",
            "unit_price",
            "amount",
            "currency",
            "session",
        ],
        "properties": {
            "id": {"type": "integer"},
            "code": {"type": "string", "pattern": "^LB-[A-Z2-9]{5}$"},
            "user_id": {"type": "integer"},
            "status": {"type": "string", "enum": list(BOOKING_STATUSES)},
            "payment_status": {"type": "string", "enum": list(PAYMENT_STATUSES)},
            "payment_method": {"type": "string", "enum": list(PAYMENT_METHODS)},
            "payment_deadline": _nullable(TIME),
            "guest_count": {"type": "integer", "minimum": 0, "maximum": 3},
            "slots": {"type": "integer", "minimum": 1, "maximum": 4},
            "unit_price": VND,
            "amount": VND,
            "currency": {"const": "vnd"},
            "created_at": TIME,
            "confirmed_at": _nullable(TIME),
            "cancelled_at": _nullable(TIME),
            "expired_at": _nullable(TIME),
            "checked_in_at": _nullable(TIME),
            "session": _ref("SessionSummary"),
            "checked_in_people": {"type": "integer", "minimum": 0, "maximum": 4},
            "ticket_url": {"type": "string", "description": "BASE_URL/t/<secret>: what the door's QR holds"},
        },
    },
    "BookingInput": {
        "type": "object",
        "required": ["session_id", "payment_method"],
        "properties": {
            "session_id": {"type": "integer", "minimum": 1},
            "guest_count": {"type": "integer", "minimum": 0, "maximum": 3, "default": 0},
            "payment_method": {"type": "string", "enum": list(PAYMENT_METHODS)},
        },
    },
    "PaymentIntentInput": {
        "type": "object",
        "required": ["booking_id"],
        "properties": {"booking_id": {"type": "integer", "minimum": 1}},
    },
    "PaymentIntent": {
        "type": "object",
        "required": ["client_secret", "payment_intent_id", "amount", "currency"],
        "properties": {
            "client_secret": {"type": "string"},
            "payment_intent_id": {"type": "string"},
            "amount": VND,
            "currency": {"const": "vnd"},
        },
    },
}


def _page_of(name):
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {"type": "integer", "minimum": 0},
        },
    }


# door
_PERSON = _nullable({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}})
SCHEMAS["CheckinInput"] = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {"type": "string", "description": "The ticket URL, its secret, or a booking code"},
        "nonce": {"type": "string", "minLength": 1, "maxLength": 100, "description": "One per scan"},
        "session_id": {"type": "integer", "description": "The session at this door"},
        "collect": {"type": "string", "enum": ["cash"], "description": "Take an unpaid booking's cash"},
        "people": {"type": "integer", "minimum": 1, "description": "Of the party, arriving now"},
    },
}
SCHEMAS["CheckinAnswer"] = {
    "type": "object",
    "required": ["status", "message", "booking", "checked_in_at", "checked_in_by", "amount_due"],
    "properties": {
        "status": {
            "type": "string",
            "enum": ["ok", "already", "unpaid", "wrong_session", "wrong_time", "cancelled", "invalid"],
        },
        "message": {"type": "string"},
        "reason": {"type": "string", "description": "wrong_time: not_open_yet | ended"},
        "booking": {"oneOf": [_ref("Booking"), {"type": "null"}]},
        "player": {"type": "object", "properties": {"name": {"type": "string"}}},
        "session": {"oneOf": [_ref("SessionSummary"), {"type": "null"}]},
        "session_people": _nullable({"type": "object"}),
        "checked_in_at": _nullable(TIME),
        "checked_in_by": _PERSON,
        "amount_due": VND,
        "collected": VND,
        "people": {"type": "integer", "minimum": 0},
        "people_in": {"type": "integer", "minimum": 0},
        "people_total": {"type": "integer", "minimum": 0},
        "nonce": {"type": "string"},
    },
}
SCHEMAS["DoorRoster"] = {
    "type": "object",
    "required": ["session"],
    "properties": {
        "session": _ref("SessionSummary"),
        "people_in": {"type": "integer", "minimum": 0},
        "people_total": {"type": "integer", "minimum": 0},
        "expected": {"type": "array", "items": {"type": "object"}},
        "items": {"type": "array", "items": {"type": "object"}},
    },
}

SCHEMAS["SessionPage"] = _page_of("Session")
SCHEMAS["BookingPage"] = _page_of("Booking")

ERROR_TEXT = {
    400: "Malformed JSON, a body that is not an object, or a missing/expired CSRF token (cookie calls)",
    401: "Not signed in",
    403: "Signed in without the role",
    404: "Unknown, or not yours",
    409: "Refused by the current state (full, duplicate, closed, cancelled...)",
    413: "Body over 1 MiB",
    422: "Invalid field; `error.field` names it",
    429: "Rate-limited; retry after the Retry-After header",
}

AUTH = [{"bearerAuth": []}, {"cookieAuth": []}]
OPTIONAL_AUTH = [{}, *AUTH]
PAGE_PARAMS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 20},
    },
]


def _path_id(name, what):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}, "description": what}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary, who, ok, errors, *, ok_status=200, body=None, params=(), security=AUTH, description=None):
    responses = {str(ok_status): {"description": "OK", **_json(ok)}}
    for status in errors:
        responses[str(status)] = {"description": ERROR_TEXT[status], **_json(_ref("Error"))}
    if ok_status == 201:
        responses["201"]["description"] = "Created (Location: the new resource)"
    if 429 in errors:
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    operation = {
        "summary": summary,
        "x-loafy-who": who,
        "security": security,
        "responses": responses,
    }
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    return operation


SESSION_ID = _path_id("session_id", "Session id")
BOOKING_ID = _path_id("booking_id", "Booking id")

PATHS = {
    "/api/auth/me": {
        "get": _op(
            "The signed-in user, role, membership, and a CSRF token for cookie calls",
            SIGNED_IN,
            {
                "type": "object",
                "required": ["user", "csrf_token"],
                "properties": {"user": _ref("User"), "csrf_token": {"type": "string"}},
            },
            [401],
        )
    },
    "/api/auth/logout": {
        "post": _op(
            "End the browser session (a bearer token stays valid until revoked)",
            SIGNED_IN,
            {"type": "object", "required": ["signed_out"], "properties": {"signed_out": {"const": True}}},
            [400, 401],
        )
    },
    "/api/sessions": {
        "get": _op(
            "List sessions by start time (drafts only for staff)",
            ANYONE,
            _ref("SessionPage"),
            [422],
            security=OPTIONAL_AUTH,
            params=[
                {
                    "name": "from",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Sessions starting at or after: ISO date (club-local) or date-time",
                },
                {
                    "name": "to",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Sessions starting up to: ISO date (that whole day) or date-time",
                },
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(SESSION_STATUSES)},
                },
                *PAGE_PARAMS,
            ],
        ),
        "post": _op(
            "Create a session (draft unless `status` says otherwise)",
            STAFF,
            _ref("Session"),
            [400, 401, 403, 413, 422],
            ok_status=201,
            body=_ref("SessionInput"),
        ),
    },
    "/api/sessions/{session_id}": {
        "get": _op(
            "One session (drafts only for staff)",
            ANYONE,
            _ref("Session"),
            [404],
            params=[SESSION_ID],
            security=OPTIONAL_AUTH,
        ),
        "put": _op(
            "Change a session; capacity cannot go below what is booked",
            ADMIN,
            _ref("Session"),
            [400, 401, 403, 404, 409, 413, 422],
            params=[SESSION_ID],
            body=_ref("SessionInput"),
            description="409 codes: capacity_below_booked, has_bookings (status `draft` while it has "
            "active bookings: cancel it instead), cancelled.",
        ),
        "delete": _op(
            "Cancel a session: its bookings are cancelled and paid ones refunded",
            ADMIN,
            _ref("Session"),
            [400, 401, 403, 404, 409],
            params=[SESSION_ID],
        ),
    },
    "/api/bookings": {
        "get": _op(
            "My bookings: upcoming soonest first, then past ones newest first",
            SIGNED_IN,
            _ref("BookingPage"),
            [401, 422],
            params=PAGE_PARAMS,
            description="A page past the end is empty (`page` is the one asked for).",
        ),
        "post": _op(
            "Book a session for me and up to 3 guests",
            SIGNED_IN,
            _ref("Booking"),
            [400, 401, 404, 409, 413, 422, 429],
            ok_status=201,
            body=_ref("BookingInput"),
            description="Rate-limited per user and per IP. 409 codes: full, already_booked, closed, "
            "not_open, started.",
        ),
    },
    "/api/bookings/{booking_id}": {
        "get": _op(
            "One booking (its player, an admin, or the organizer of its session; 404 for anyone else)",
            "owner, admin, the session's organizer",
            _ref("Booking"),
            [401, 404],
            params=[BOOKING_ID],
        ),
        "delete": _op(
            "Cancel a booking; its slots return at once",
            "owner, admin",
            _ref("Booking"),
            [400, 401, 403, 404, 409],
            params=[BOOKING_ID],
        ),
    },
    "/api/checkin": {
        "post": _op(
            "Check in at the door: a ticket URL, its secret or a booking code",
            STAFF + " (of the booking's session)",
            _ref("CheckinAnswer"),
            [400, 401, 403, 404, 409, 413, 422],
            body=_ref("CheckinInput"),
            description="200 with status ok, already, unpaid, wrong_session, wrong_time or cancelled; "
            '404 {"status": "invalid"} for an unknown code. The same nonce gets the same answer and '
            'checks in once (409 nonce_reused for another code). `collect: "cash"` records the payment '
            "and checks in.",
        )
    },
    "/api/checkin/{booking_id}": {
        "delete": _op(
            "Undo a booking's last check-in (within 2 minutes)",
            STAFF,
            {"type": "object", "properties": {"status": {"const": "undone"}, "booking": _ref("Booking")}},
            [400, 401, 403, 404, 409],
            params=[BOOKING_ID],
            description="409 codes: not_checked_in, too_late.",
        )
    },
    "/api/door/sessions/{session_id}": {
        "get": _op(
            "The door's view of a session: people in and expected, who is still expected; ?q= finds names",
            STAFF,
            _ref("DoorRoster"),
            [401, 403, 404, 422],
            params=[SESSION_ID, {"name": "q", "in": "query", "schema": {"type": "string"}}],
        )
    },
    "/api/bookings/{booking_id}/ticket": {
        "post": _op(
            "A new ticket secret for a booking: the old QR code stops working",
            STAFF,
            _ref("Booking"),
            [400, 401, 403, 404],
            params=[BOOKING_ID],
        )
    },
    "/api/payments/stripe/intent": {
        "post": _op(
            "A Stripe PaymentIntent for my booking",
            "owner",
            _ref("PaymentIntent"),
            [400, 401, 404, 409, 413, 422],
            body=_ref("PaymentIntentInput"),
        )
    },
    "/api/webhooks/stripe": {
        "post": _op(
            "Stripe events (signature verified): payment_intent.succeeded, .payment_failed, .canceled, "
            "charge.refunded",
            "Stripe",
            {"type": "object"},
            [400, 413],
            body={"type": "object"},
            security=[{}],
            params=[
                {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}}
            ],
        )
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This description",
            "x-loafy-who": ANYONE,
            "security": [{}],
            "responses": {"200": {"description": "OpenAPI 3.1", **_json({"type": "object"})}},
        }
    },
    "/api/docs": {
        "get": {
            "summary": "The endpoint list for people",
            "x-loafy-who": ANYONE,
            "security": [{}],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    },
}


def build_document():
    """A fresh copy of the whole description (callers may change it)."""
    return deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Loafy JSON API",
                "version": "1.0.0",
                "description": "Sessions and bookings of the club. Errors are "
                '`{"error": {"code", "message"}}`; times are ISO-8601 with an offset; money is whole VND. '
                "Authenticate with a personal token (`Authorization: Bearer`) or the browser session "
                "(unsafe methods then need `X-CSRFToken` from /api/auth/me).",
            },
            "servers": [{"url": "/"}],
            "paths": PATHS,
            "components": {
                "schemas": SCHEMAS,
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A personal API token"},
                    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
                },
            },
        }
    )


def endpoint_rows(document):
    """(method, path, who, summary) for each operation, in document order."""
    return [
        (method.upper(), path, operation.get("x-loafy-who", ""), operation.get("summary", ""))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
