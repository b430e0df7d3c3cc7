"""The JSON API (DESIGN.md's table). Thin: parse, call one service, serialize.

Errors are `{"error": {"code", "message"[, "field"]}}` (public/errors.py); times are ISO-8601 with
an offset (UTC, plus the club-local time for sessions); money is whole VND.
"""

import json

from flask import Blueprint, g, jsonify, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from werkzeug.exceptions import BadRequest

from loafy.booking import sold_out, staff
from loafy.booking.bookings import SessionFull, book_session, get_booking
from loafy.booking.club_sessions import clean_page, get_session, list_sessions
from loafy.booking.listings import list_bookings_page
from loafy.clock import to_local
from loafy.door.tickets import ticket_url
from loafy.errors import ValidationError
from loafy.models import utcnow
from loafy.web.formatting import iso_utc
from loafy.web.guards import role_required
from public.auth import end_browser_session
from public.input_checks import require_json

bp = Blueprint("api", __name__, url_prefix="/api")


def answer_sold_out_at_once():
    """A before_request hook (registered first, in public/__init__.py): the crowd that hits Book in
    the second after a sell-out is told "full" before the database connection, the token lookup
    and the rate limits. The answer is public, changes nothing, and costs no query (the hint's
    rules are in loafy/sold_out.py)."""
    if request.endpoint != "api.create_booking_view":
        return
    data = request.get_json(silent=True)
    session_id = data.get("session_id") if isinstance(data, dict) else None
    if type(session_id) is int and sold_out.is_sold_out(session_id):
        raise SessionFull()


# --- parsing -----------------------------------------------------------------------------------


def json_body():
    """The request body as a JSON object; anything else (malformed, a list, empty) is a 400, and a
    body that does not say it is JSON a 415."""
    require_json()
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises 413
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest()
    if not isinstance(data, dict):
        raise BadRequest()
    return data


def whole_number(data, name, default=None):
    """A JSON integer field (no booleans, no text); missing uses `default` or is a named 422."""
    value = data.get(name, default)
    if value is None:
        raise ValidationError(f"{name} is required.", field=name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number.", field=name)
    return value


def viewer():
    return current_user if current_user.is_authenticated else None


# --- serializing -------------------------------------------------------------------------------


def local_iso(value):
    local = to_local(value)
    return local.isoformat() if local else None


def user_json(user):
    now = utcnow()
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "avatar_url": user.avatar_url,
        "role": user.role_id,
        "roles": [user.role_id],
        "membership": {"active": user.is_member(now), "until": iso_utc(user.membership_until)},
    }


def session_summary(club_session):
    return {
        "id": club_session.id,
        "title": club_session.title,
        "location": club_session.location,
        "status": club_session.status,
        "starts_at": iso_utc(club_session.starts_at),
        "starts_at_local": local_iso(club_session.starts_at),
        "ends_at": iso_utc(club_session.ends_at),
    }


def session_json(club_session):
    return {
        **session_summary(club_session),
        "description": club_session.description,
        "ends_at_local": local_iso(club_session.ends_at),
        "max_slots": club_session.max_slots,
        "available_slots": club_session.available_slots,
        "price": club_session.price,
        "currency": "vnd",
        "booking_opens_at": iso_utc(club_session.booking_opens_at),
        "early_access_opens_at": iso_utc(club_session.early_access_opens_at),
        "allow_pay_at_door": club_session.allow_pay_at_door,
        "created_by": club_session.created_by_id,
        "created_at": iso_utc(club_session.created_at),
        "updated_at": iso_utc(club_session.updated_at),
        "cancelled_at": iso_utc(club_session.cancelled_at),
    }


def booking_json(booking):
    return {
        "id": booking.id,
        "code": booking.code,
        "user_id": booking.user_id,
        "status": booking.status,
        "payment_status": booking.payment_status,
        "payment_method": booking.payment_method,
        "payment_deadline": iso_utc(booking.payment_deadline),
        "guest_count": booking.guest_count,
        "slots": booking.slots,
        "unit_price": booking.unit_price,
        "amount": booking.amount,
        "currency": "vnd",
        "created_at": iso_utc(booking.created_at),
        "confirmed_at": iso_utc(booking.confirmed_at),
        "cancelled_at": iso_utc(booking.cancelled_at),
        "expired_at": iso_utc(booking.expired_at),
        "checked_in_at": iso_utc(booking.checked_in_at),
        "session": session_summary(booking.club_session),
        # door: only the owner and staff ever get a booking's JSON, so the ticket may be in it.
        "checked_in_people": booking.checked_in_people,
        "ticket_url": ticket_url(booking),
    }


def page_json(result, serialize):
    return {
        "items": [serialize(item) for item in result.items],
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
    }


# --- auth ---------------------------------------------------------------------------------------


@bp.get("/auth/me")
@role_required()
def me():
    return jsonify({"user": user_json(current_user), "csrf_token": generate_csrf()})


@bp.post("/auth/logout")
@role_required()
def logout():
    """Ends the browser session (on the server too); a bearer token stays valid until revoked on the
    profile page, and a request made with one ends no browser's session."""
    if not g.get("token_auth"):
        end_browser_session()
    return jsonify({"signed_out": True})


# --- sessions -----------------------------------------------------------------------------------


@bp.get("/sessions")
def list_sessions_view():
    result = list_sessions(
        viewer(),
        starts_from=request.args.get("from"),
        starts_to=request.args.get("to"),
        status=request.args.get("status"),
        page=request.args.get("page"),
        per_page=request.args.get("per_page"),
    )
    return jsonify(page_json(result, session_json))


@bp.get("/sessions/<int:session_id>")
def get_session_view(session_id):
    return jsonify(session_json(get_session(session_id, viewer())))


@bp.post("/sessions")
@role_required("organizer", "admin")
def create_session_view():
    club_session = staff.create_session(current_user, json_body(), utcnow())
    response = jsonify(session_json(club_session))
    response.headers["Location"] = url_for("api.get_session_view", session_id=club_session.id)
    return response, 201


@bp.put("/sessions/<int:session_id>")
@role_required("admin")
def update_session_view(session_id):
    club_session = staff.update_session(current_user, session_id, json_body(), utcnow())
    return jsonify(session_json(club_session))


@bp.delete("/sessions/<int:session_id>")
@role_required("admin")
def cancel_session_view(session_id):
    """Cancels (never erases) the session: its bookings are cancelled and paid ones refunded."""
    club_session = staff.cancel_session(current_user, session_id, utcnow(), reason="cancelled via API")
    return jsonify(session_json(club_session))


# --- bookings -----------------------------------------------------------------------------------


@bp.get("/bookings")
@role_required()
def list_bookings_view():
    page, per_page = clean_page(request.args.get("page"), request.args.get("per_page"))
    # Unlike the HTML page, a page past the end is empty: clients page until `items` runs out.
    result = list_bookings_page(current_user, page, per_page, utcnow(), clamp=False)
    return jsonify(page_json(result, booking_json))


@bp.get("/bookings/<int:booking_id>")
@role_required()
def get_booking_view(booking_id):
    return jsonify(booking_json(get_booking(booking_id, current_user)))


@bp.post("/bookings")
@role_required()
def create_booking_view():
    data = json_body()
    booking = book_session(
        current_user,
        whole_number(data, "session_id"),
        data.get("guest_count", 0),
        data.get("payment_method"),
        utcnow(),
    )
    response = jsonify(booking_json(booking))
    response.headers["Location"] = url_for("api.get_booking_view", booking_id=booking.id)
    return response, 201


@bp.delete("/bookings/<int:booking_id>")
@role_required()
def cancel_booking_view(booking_id):
    """The owner cancels their booking; an admin cancelling someone else's is audited."""
    booking = staff.cancel_booking_as(current_user, booking_id, utcnow(), reason="cancelled via API")
    return jsonify(booking_json(booking))


# --- the description ----------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_json():
    from public.openapi import build_document

    return jsonify(build_document())


@bp.get("/docs")
def docs():
    from public.openapi import build_document, endpoint_rows

    document = build_document()
    return render_template("public/api_docs.html", document=document, rows=endpoint_rows(document))
