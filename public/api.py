"""The JSON API (DESIGN.md's table). Thin: the request is checked against its model (public/
api_schemas.py), one service is called, the answer is read through its model.

Errors are `{"error": {"code", "message"[, "field"]}}` (public/errors.py); times are ISO-8601 with
an offset (UTC, plus the club-local time for sessions); money is whole VND.
"""

import dataclasses

from flask import Blueprint, g, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from loafy.booking import sold_out, staff, waitlist
from loafy.booking.bookings import SessionFull, book_session, cancel_booking, get_booking
from loafy.booking.club_sessions import get_session, list_sessions
from loafy.booking.listings import list_bookings_page
from loafy.models import utcnow
from loafy.passes.passes import membership as membership_of
from loafy.web.guards import role_required
from public.api_schemas import (
    ADMIN,
    ANYONE,
    NO_AUTH,
    SIGNED_IN,
    STAFF,
    Booking,
    BookingPage,
    JoinWaitlist,
    Me,
    NewBooking,
    NewSession,
    Paging,
    Session,
    SessionChange,
    SessionFilter,
    SessionPage,
    SignedOut,
    WaitlistEntry,
    WaitlistPage,
    WaitlistQuery,
    answer,
    build_document,
    endpoint,
    endpoint_rows,
    including,
)
from public.auth import end_browser_session

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


def viewer():
    return current_user if current_user.is_authenticated else None


# --- auth ---------------------------------------------------------------------------------------


@bp.get("/auth/me")
@role_required()
@endpoint(
    "The signed-in user, role, membership, and a CSRF token for cookie calls", SIGNED_IN, ok=Me, errors=(401,)
)
def me():
    membership = membership_of(current_user.id, utcnow())  # from the user's passes
    return answer(Me, {"user": including(current_user, membership=membership), "csrf_token": generate_csrf()})


@bp.post("/auth/logout")
@role_required()
@endpoint(
    "End the browser session (a bearer token stays valid until revoked)",
    SIGNED_IN,
    ok=SignedOut,
    errors=(400, 401),
)
def logout():
    """Ends the browser session (on the server too); a bearer token stays valid until revoked on the
    profile page, and a request made with one ends no browser's session."""
    if not g.get("token_auth"):
        end_browser_session()
    return answer(SignedOut, {"signed_out": True})


# --- sessions -----------------------------------------------------------------------------------


@bp.get("/sessions")
@endpoint(
    "List sessions by start time (drafts only for staff)",
    ANYONE,
    ok=SessionPage,
    query=SessionFilter,
    errors=(422,),
)
def list_sessions_view():
    q = request.context.query
    result = list_sessions(
        viewer(),
        starts_from=q.starts_from,
        starts_to=q.starts_to,
        status=q.status,
        page=q.page,
        per_page=q.per_page,
    )
    return answer(SessionPage, result)


@bp.get("/sessions/<int:session_id>")
@endpoint("One session (drafts only for staff)", ANYONE, ok=Session, errors=(404,))
def get_session_view(session_id):
    return answer(Session, get_session(session_id, viewer()))


@bp.post("/sessions")
@role_required("organizer", "admin")
@endpoint(
    "Create a session (draft unless `status` says otherwise)",
    STAFF,
    ok=Session,
    status=201,
    json=NewSession,
    errors=(400, 401, 403, 413, 415, 422),
)
def create_session_view():
    club_session = staff.create_session(current_user, request.context.json.fields(), utcnow())
    response = answer(Session, club_session, status=201)
    response.headers["Location"] = url_for("api.get_session_view", session_id=club_session.id)
    return response


@bp.put("/sessions/<int:session_id>")
@role_required("admin")
@endpoint(
    "Change a session; capacity cannot go below what is booked",
    ADMIN,
    ok=Session,
    json=SessionChange,
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
    description="409 codes: capacity_below_booked, has_bookings (status `draft` while it has "
    "active bookings: cancel it instead), cancelled.",
)
def update_session_view(session_id):
    club_session = staff.update_session(current_user, session_id, request.context.json.fields(), utcnow())
    return answer(Session, club_session)


@bp.delete("/sessions/<int:session_id>")
@role_required("admin")
@endpoint(
    "Cancel a session: its bookings are cancelled and paid ones refunded",
    ADMIN,
    ok=Session,
    errors=(400, 401, 403, 404, 409),
)
def cancel_session_view(session_id):
    """Cancels (never erases) the session: its bookings are cancelled and paid ones refunded."""
    club_session = staff.cancel_session(current_user, session_id, utcnow(), reason="cancelled via API")
    return answer(Session, club_session)


# --- bookings -----------------------------------------------------------------------------------


@bp.get("/bookings")
@role_required()
@endpoint(
    "My bookings: upcoming soonest first, then past ones newest first",
    SIGNED_IN,
    ok=BookingPage,
    query=Paging,
    errors=(401, 422),
    description="A page past the end is empty (`page` is the one asked for).",
)
def list_bookings_view():
    q = request.context.query
    # Unlike the HTML page, a page past the end is empty: clients page until `items` runs out.
    result = list_bookings_page(current_user, q.page, q.per_page, utcnow(), clamp=False)
    return answer(BookingPage, result)


@bp.get("/bookings/<int:booking_id>")
@role_required()
@endpoint(
    "One booking (its player, an admin, or the organizer of its session; 404 for anyone else)",
    "owner, admin, the session's organizer",
    ok=Booking,
    errors=(401, 404),
)
def get_booking_view(booking_id):
    return answer(Booking, get_booking(booking_id, current_user))


@bp.post("/bookings")
@role_required()
@endpoint(
    "Book a session for me and up to 3 guests",
    SIGNED_IN,
    ok=Booking,
    status=201,
    json=NewBooking,
    errors=(400, 401, 404, 409, 413, 415, 422, 429),
    description="Rate-limited per user and per IP. "
    "409 codes: full, already_booked, closed, not_open, started, "
    "blocked (too many no-shows and late cancels; the message says until when).",
)
def create_booking_view():
    data = request.context.json
    booking = book_session(current_user, data.session_id, data.guest_count, data.payment_method, utcnow())
    response = answer(Booking, booking, status=201)
    response.headers["Location"] = url_for("api.get_booking_view", booking_id=booking.id)
    return response


@bp.delete("/bookings/<int:booking_id>")
@role_required()
@endpoint(
    "Cancel a booking; its slots return at once", "owner, admin", ok=Booking, errors=(400, 401, 403, 404, 409)
)
def cancel_booking_view(booking_id):
    """The owner or an admin cancels a booking (the service writes the audit row)."""
    booking = cancel_booking(current_user, booking_id, utcnow(), reason="cancelled via API")
    return answer(Booking, booking)


# --- waitlist -----------------------------------------------------------------------------------


def _entry(entry):
    """An entry as its answer reads it: the player named only to the staff who handle it."""
    return including(entry, user=entry.user if entry.user_id != current_user.id else None)


@bp.post("/sessions/<int:session_id>/waitlist")
@role_required()
@endpoint(
    "Join a full session's waitlist with my party",
    SIGNED_IN,
    ok=WaitlistEntry,
    status=201,
    json=JoinWaitlist,
    errors=(400, 401, 404, 409, 413, 415, 422, 429),
    description="409 codes: not_full (room for min_party: book instead), duplicate (a live booking "
    "or entry for the session), closed (cancelled, started or unpublished).",
)
def join_waitlist_view(session_id):
    data = request.context.json
    entry = waitlist.join_waitlist(
        current_user,
        session_id,
        data.party_size,
        utcnow(),
        min_party=data.min_party,
        payment_method=data.payment_method,
    )
    [entry] = waitlist.with_offers([waitlist.get_entry(entry.id, current_user)])
    response = answer(WaitlistEntry, _entry(entry), status=201)
    response.headers["Location"] = url_for("api.get_waitlist_entry_view", entry_id=entry.id)
    return response


@bp.get("/waitlist")
@role_required()
@endpoint(
    "My waitlist entries, newest first; staff: a session's waitlist in order",
    SIGNED_IN,
    ok=WaitlistPage,
    query=WaitlistQuery,
    errors=(401, 403, 404, 422),
)
def list_waitlist_view():
    q = request.context.query
    result = waitlist.list_entries_page(current_user, q.session_id, q.page, q.per_page)
    return answer(WaitlistPage, dataclasses.replace(result, items=[_entry(e) for e in result.items]))


@bp.get("/waitlist/<int:entry_id>")
@role_required()
@endpoint(
    "One waitlist entry (its player, an admin, or the session's organizer; 404 for anyone else)",
    "owner, admin, the session's organizer",
    ok=WaitlistEntry,
    errors=(401, 404),
)
def get_waitlist_entry_view(entry_id):
    [entry] = waitlist.with_offers([waitlist.get_entry(entry_id, current_user)])
    return answer(WaitlistEntry, _entry(entry))


@bp.delete("/waitlist/<int:entry_id>")
@role_required()
@endpoint(
    "Leave the waitlist (an unpaid offer is declined and passed on); staff remove, audited",
    "owner, admin, the session's organizer",
    ok=WaitlistEntry,
    errors=(400, 401, 404, 409),
)
def leave_waitlist_view(entry_id):
    entry = waitlist.leave_waitlist(current_user, entry_id, utcnow())
    [entry] = waitlist.with_offers([waitlist.get_entry(entry.id, current_user)])
    return answer(WaitlistEntry, _entry(entry))


# --- the description ----------------------------------------------------------------------------


@bp.get("/openapi.json")
@endpoint("This description (OpenAPI 3.1)", ANYONE, security=NO_AUTH, content="application/json")
def openapi_json():
    return build_document()


@bp.get("/docs")
@endpoint("The endpoint list for people", ANYONE, security=NO_AUTH, content="text/html")
def docs():
    document = build_document()
    return render_template("public/api_docs.html", document=document, rows=endpoint_rows(document))
