"""The door: the staff's scanner page (/door), the ticket page a QR code opens (/t/<secret>), and the
check-in API the scanner talks to. Views parse, call one service in loafy.door, and serialize."""

import secrets

from flask import Blueprint, abort, flash, jsonify, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from loafy.clock import club_tz
from loafy.door import checkin, roster, tickets
from loafy.errors import LoafyError
from loafy.models import utcnow
from loafy.settings import get_settings
from loafy.web.guards import role_required
from public.api_schemas import (
    STAFF,
    Booking,
    CheckinAnswer,
    CheckinRequest,
    CheckinUndone,
    DoorRoster,
    DoorSearch,
    endpoint,
)
from public.api_schemas import answer as answer_model
from public.i18n import error_text

bp = Blueprint("door", __name__)

# The scanner page needs the camera; every other page keeps it switched off (public/hardening.py).
CAMERA_POLICY = "camera=(self), microphone=(), geolocation=()"


def _viewer():
    return current_user._get_current_object() if current_user.is_authenticated else None


# --- JSON -----------------------------------------------------------------------------------------


def answer_body(answer, actor, now):
    """The check-in answer with the booking as staff see it (none for another organizer's session)."""
    body = {
        key: value for key, value in answer.items() if key not in ("replayed", "booking_id", "session_id")
    }
    booking = None
    if answer.get("booking_id") is not None:
        booking = checkin.find_booking_by_id(answer["booking_id"])
    body["booking"] = booking
    body["player"] = {"name": booking.user.name} if booking is not None else None
    session_id = answer.get("session_id")
    body["session"] = body["session_people"] = None
    if session_id is not None:
        try:
            club_session = roster.door_session(actor, session_id, now)
        except LoafyError:
            club_session = checkin.public_session(session_id)
        else:
            inside, expected = checkin.session_people(club_session.id, now)
            body["session_people"] = {"people_in": inside, "people_total": expected}
        body["session"] = club_session
    return body


def expected_row(booking):
    return {
        "booking_id": booking.id,
        "code": booking.code,
        "name": booking.user.name,
        "status": booking.status,
        "payment_status": booking.payment_status,
        "amount": booking.amount,
        "slots": booking.slots,
        "people_in": booking.checked_in_people,
        "checked_in_at": booking.checked_in_at,
    }


@bp.post("/api/checkin")
@role_required("organizer", "admin")
@endpoint(
    "Check in at the door: a ticket URL, its secret or a booking code",
    STAFF + " (of the booking's session)",
    ok=CheckinAnswer,
    json=CheckinRequest,
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
    description="200 with status ok, already, unpaid, wrong_session, wrong_time or cancelled; "
    '404 {"status": "invalid", "error": ...} for an unknown code. The same nonce gets the same answer '
    'and checks in once (409 nonce_reused for another code). `collect: "cash"` records the payment '
    "(ledger, audit) and checks in.",
)
def checkin_view():
    data = request.context.json
    now = utcnow()
    answer = checkin.check_in(
        current_user,
        data.code,
        now,
        nonce=data.nonce,
        session_id=data.session_id,
        collect=data.collect,
        people=data.people,
    )
    body = answer_body(answer, current_user, now)
    if answer["status"] == "invalid":
        # The contract's {"status": "invalid"} and the API's error shape, in one body.
        dumped = CheckinAnswer.model_validate(body).model_dump(mode="json")
        dumped["error"] = {"code": "invalid", "message": answer["message"]}
        return jsonify(dumped), 404
    return answer_model(CheckinAnswer, body)


@bp.delete("/api/checkin/<int:booking_id>")
@role_required("organizer", "admin")
@endpoint(
    "Undo a booking's last check-in (within 2 minutes)",
    STAFF,
    ok=CheckinUndone,
    errors=(400, 401, 403, 404, 409),
    description="409 codes: not_checked_in, too_late.",
)
def undo_checkin_view(booking_id):
    booking = checkin.undo_check_in(current_user, booking_id, utcnow())
    return answer_model(
        CheckinUndone, {"status": "undone", "booking": checkin.find_booking_by_id(booking.id)}
    )


@bp.get("/api/door/sessions/<int:session_id>")
@role_required("organizer", "admin")
@endpoint(
    "The door's view of a session: people in and expected, who is still expected; ?q= finds names",
    STAFF,
    ok=DoorRoster,
    query=DoorSearch,
    errors=(401, 403, 404, 422),
)
def door_session_view(session_id):
    now = utcnow()
    query = request.context.query.q
    if query is not None:
        club_session, found = roster.search(current_user, session_id, query, now)
        return answer_model(DoorRoster, {"session": club_session, "items": [expected_row(b) for b in found]})
    data = roster.roster(current_user, session_id, now)
    data["expected"] = [expected_row(b) for b in data["expected"]]
    return answer_model(DoorRoster, data)


@bp.post("/api/bookings/<int:booking_id>/ticket")
@role_required("organizer", "admin")
@endpoint(
    "A new ticket secret for a booking: the old QR code stops working",
    STAFF,
    ok=Booking,
    errors=(400, 401, 403, 404),
)
def regenerate_ticket_view(booking_id):
    booking = tickets.regenerate_ticket(current_user, booking_id, utcnow())
    return answer_model(Booking, checkin.find_booking_by_id(booking.id))


# --- pages ----------------------------------------------------------------------------------------


@bp.get("/door")
@role_required("organizer", "admin")
def door_page():
    now = utcnow()
    sessions, chosen = roster.door_sessions(current_user, now)
    wanted = request.args.get("session", type=int)
    if wanted is not None:
        chosen = next((s for s in sessions if s.id == wanted), None)
        if chosen is None:
            chosen = roster.door_session(current_user, wanted, now)  # 404 unless theirs
            sessions = [*sessions, chosen]
    counts = None
    if chosen is not None:
        counts = checkin.session_people(chosen.id, now)
    response = make_response(
        render_template(
            "public/door.html",
            sessions=sessions,
            chosen=chosen,
            counts=counts,
            now=now,
            club_timezone=club_tz().key,
        )
    )
    response.headers["Permissions-Policy"] = CAMERA_POLICY
    return response


def _ticket_or_404(secret):
    booking = tickets.find_by_secret(secret)
    if booking is None:
        abort(404)
    return booking


@bp.get("/t/<secret>")
def ticket_page(secret):
    """The ticket: staff of its session check in from here (the page sends the scan itself, so a
    link preview or a crawler checks no one in); anyone else sees the ticket, nothing more."""
    booking = _ticket_or_404(secret)
    viewer, now = _viewer(), utcnow()
    is_door = viewer is not None and checkin.can_check_in(viewer, booking)
    answer = None
    nonce = request.args.get("nonce", "")[:100]
    if is_door and nonce:
        answer = checkin.stored_answer(viewer, nonce, booking.id)
    url = tickets.ticket_url(booking)
    settings = get_settings()
    return render_template(
        "public/ticket.html",
        booking=booking,
        club_session=booking.club_session,
        is_door=is_door,
        answer=answer,
        nonce=secrets.token_hex(16),
        qr_svg=tickets.qr_svg(url),
        status=booking.shown_status(now),
        opens_hours=settings["checkin_opens_hours"],
        now=now,
    )


@bp.post("/t/<secret>")
@role_required("organizer", "admin")
def ticket_checkin(secret):
    booking = _ticket_or_404(secret)
    nonce = (request.form.get("nonce") or "")[:100] or None
    collect = request.form.get("collect") or None
    people = request.form.get("people", type=int)
    try:
        answer = checkin.check_in(
            current_user,
            secret,
            utcnow(),
            nonce=nonce,
            session_id=booking.club_session_id,
            collect=collect,
            people=people,
        )
    except LoafyError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("door.ticket_page", secret=secret))
    return redirect(url_for("door.ticket_page", secret=secret, nonce=answer["nonce"]))
