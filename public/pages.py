"""Public pages: the session list and detail with the booking form, the player's bookings, the
language switch and the health check. Views parse, call one service, flash, and redirect (PRG)."""

from datetime import UTC, date, datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from loafy import queue
from loafy.booking import waitlist
from loafy.booking.actions import allowed_actions
from loafy.booking.bookings import book_session, cancel_booking, cancel_until, get_booking
from loafy.booking.listings import (
    bookable_guests,
    get_session_for_viewer,
    list_bookings_page,
    list_sessions_page,
    session_availability,
)
from loafy.clock import club_tz
from loafy.db import db
from loafy.door import tickets
from loafy.errors import Conflict, PermissionDenied, ValidationError
from loafy.models import SESSION_STATUSES, utcnow
from loafy.money.methods import booking_form_methods
from loafy.people.accounts import set_locale
from loafy.settings import get_settings
from loafy.web.formatting import local_time
from loafy.web.guards import role_required
from loafy.web.locale import COOKIE, SUPPORTED
from public.auth import safe_next
from public.i18n import COOKIE_MAX_AGE, error_text

bp = Blueprint("pages", __name__)

PER_PAGE = 12
MAX_PAGE = 100_000
# Refusals shown in place on the booking form (the form is kept); anything else is an error page.
IN_PLACE = (Conflict, ValidationError)


def _viewer():
    return current_user._get_current_object() if current_user.is_authenticated else None


def _page_number():
    try:
        return min(max(1, int(request.args.get("page", "1"))), MAX_PAGE)
    except (TypeError, ValueError):
        return 1


def _club_day_start(day):
    """Midnight of a club-local date as naive UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=club_tz()).astimezone(UTC).replace(tzinfo=None)


def _parse_filters(args, viewer):
    """The list filters from the query string: (filters for the service, values for the form, problems)."""
    values = {
        "when": args.get("when") if args.get("when") in ("upcoming", "all") else "upcoming",
        "from": (args.get("from") or "").strip()[:10],
        "to": (args.get("to") or "").strip()[:10],
        "status": args.get("status") if args.get("status") in SESSION_STATUSES else "",
    }
    filters = {"when": values["when"]}
    if viewer is not None and viewer.is_staff and values["status"]:
        filters["status"] = values["status"]
    else:
        values["status"] = ""
    problems = []
    days = {}
    for name in ("from", "to"):
        if not values[name]:
            continue
        try:
            days[name] = date.fromisoformat(values[name])
            bound = days[name] + timedelta(days=1 if name == "to" else 0)
            filters["starts_before" if name == "to" else "starts_from"] = _club_day_start(bound)
        except (ValueError, OverflowError):
            problems.append(_("Enter dates as YYYY-MM-DD, for example 2026-12-31."))
            values[name] = ""
            days.pop(name, None)
    if "from" in days and "to" in days and days["from"] > days["to"]:
        problems.append(_("The start date is after the end date, so nothing can match."))
    return filters, values, problems


def _list(endpoint, heading):
    viewer, now = _viewer(), utcnow()
    filters, values, problems = _parse_filters(request.args, viewer)
    page = list_sessions_page(viewer, filters, _page_number(), PER_PAGE, now)
    cards = [(s, session_availability(s, viewer, now)) for s in page.items]
    query = {k: v for k, v in values.items() if v and not (k == "when" and v == "upcoming")}
    return render_template(
        "public/home.html",
        heading=heading,
        endpoint=endpoint,
        page=page,
        cards=cards,
        values=values,
        query=query,
        problems=problems,
        statuses=SESSION_STATUSES if viewer is not None and viewer.is_staff else (),
        filtered=bool(query),
    )


@bp.get("/")
def home():
    return _list("pages.home", _("Upcoming sessions"))


@bp.get("/sessions")
def session_list():
    return _list("pages.session_list", _("Sessions"))


def _render_session(session_id, form=None, error=None, status=200, waitlist_form=None, waitlist_error=None):
    viewer, now = _viewer(), utcnow()
    club_session = get_session_for_viewer(session_id, viewer, now)
    mine = club_session.my_booking
    settings = get_settings()
    methods = booking_form_methods(club_session, now, settings)
    pack_left = _pack_credits(viewer, club_session, now)
    if pack_left:
        methods = ["pass", *methods]  # passes: "use my pack (N credits left)" comes first
    form = form or {"guest_count": "0", "payment_method": methods[0] if methods else ""}
    message = None
    if error is not None:
        message = error_text(error, left=club_session.available_slots, max_guests=settings["max_guests"])
    waitlist_message = error_text(waitlist_error) if waitlist_error is not None else None
    page = render_template(
        "public/session.html",
        club_session=club_session,
        availability=session_availability(club_session, viewer, now),
        booking=mine,
        methods=methods,
        max_guests=settings["max_guests"],
        guests_now=bookable_guests(club_session, settings["max_guests"]),
        pack_left=pack_left,
        form=form,
        error=message,
        error_field=getattr(error, "field", None),
        pay_url=_pay_url(allowed_actions(viewer, mine, now, settings)) if mine else None,
        here=url_for("pages.session_detail", session_id=club_session.id),
        entry=None if club_session.my_booking else waitlist.entry_for(viewer, club_session.id),
        waiting=waitlist.waiting_count(club_session.id),
        waitlist_form=waitlist_form or {"party_size": "1", "min_party": "", "payment_method": ""},
        waitlist_error=waitlist_message,
    )
    return page, status


def _pack_credits(viewer, club_session, now):
    """Credits left on the viewer's best pack (the one a booking would use), or 0."""
    if viewer is None or club_session.price == 0:
        return 0
    from loafy.passes.credits import packs_with_credits

    lefts = [left for _pack, left in packs_with_credits(viewer.id, now) if left > 0]
    return lefts[0] if lefts else 0


@bp.get("/sessions/<int:session_id>")
def session_detail(session_id):
    return _render_session(session_id)


@bp.post("/sessions/<int:session_id>/book")
@role_required()
def book(session_id):
    form = {
        "guest_count": (request.form.get("guest_count") or "")[:10],
        "payment_method": (request.form.get("payment_method") or "")[:20],
    }
    try:
        booking = book_session(_viewer(), session_id, form["guest_count"], form["payment_method"], utcnow())
    except IN_PLACE as exc:
        return _render_session(session_id, form=form, error=exc, status=exc.status)
    if booking.status == "pending_payment" and booking.payment_deadline:
        # Nothing is booked until it is paid: say what is held, and until when.
        held = local_time(booking.payment_deadline, "%H:%M")
        flash(
            _(
                "Your spot is held until %(time)s. Pay to confirm booking %(code)s.",
                time=held,
                code=booking.code,
            )
        )
    else:
        flash(_("Booked! Your code is %(code)s.", code=booking.code), "success")
    pay_url = _pay_url(allowed_actions(_viewer(), booking, utcnow()))
    return redirect(pay_url or url_for("pages.booking_detail", booking_id=booking.id))


@bp.post("/sessions/<int:session_id>/waitlist")
@role_required()
def join_waitlist(session_id):
    form = {
        "party_size": (request.form.get("party_size") or "")[:10],
        "min_party": (request.form.get("min_party") or "")[:10],
        "payment_method": (request.form.get("payment_method") or "")[:20],
    }
    try:
        entry = waitlist.join_waitlist(
            _viewer(),
            session_id,
            form["party_size"],
            utcnow(),
            min_party=form["min_party"] or None,
            payment_method=form["payment_method"] or None,
        )
    except IN_PLACE as exc:
        return _render_session(session_id, waitlist_form=form, waitlist_error=exc, status=exc.status)
    flash(_("You are on the waitlist: number %(position)d.", position=entry.position or 1), "success")
    return redirect(url_for("pages.session_detail", session_id=session_id))


@bp.post("/waitlist/<int:entry_id>/leave")
@role_required()
def leave_waitlist(entry_id):
    try:
        entry = waitlist.leave_waitlist(_viewer(), entry_id, utcnow())
    except (Conflict, ValidationError, PermissionDenied) as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("pages.my_bookings"))
    flash(_("You left the waitlist."), "success")
    return redirect(
        safe_next(request.form.get("next"))
        or url_for("pages.session_detail", session_id=entry.club_session_id)
    )


def _pay_url(actions):
    """Where to pay a booking that still waits for the viewer's online payment, else None."""
    return url_for("payments.pay", booking_id=actions.booking.id) if actions.pay else None


@bp.get("/bookings")
@role_required()
def my_bookings():
    viewer, now = _viewer(), utcnow()
    page = list_bookings_page(viewer, _page_number(), PER_PAGE, now)
    settings = get_settings()
    rows = []
    for b in page.items:
        actions = allowed_actions(viewer, b, now, settings)
        rows.append(
            {
                "booking": b,
                "status": b.shown_status(now),
                "pay_url": _pay_url(actions),
                "can_cancel": actions.cancel,
            }
        )
    entries = [  # places still in play: the session is open and has not started
        entry
        for entry in waitlist.list_entries(_viewer(), live_only=True)
        if entry.club_session.status == "published" and entry.club_session.starts_at > now
    ]
    offer_pay_urls = {  # an offer is a booking: paid where any booking is, by the same rule
        entry.offer.id: _pay_url(allowed_actions(viewer, entry.offer, now, settings))
        for entry in entries
        if getattr(entry, "offer", None) is not None
    }
    return render_template(
        "public/bookings.html", page=page, rows=rows, now=now, entries=entries, offer_pay_urls=offer_pay_urls
    )


@bp.get("/bookings/<int:booking_id>")
@role_required()
def booking_detail(booking_id):
    viewer, now = _viewer(), utcnow()
    booking = get_booking(booking_id, viewer)
    settings = get_settings()
    actions = allowed_actions(viewer, booking, now, settings)
    status = booking.shown_status(now)
    qr_svg = ticket = None
    if status == "confirmed":  # the door checks in confirmed bookings only
        ticket = tickets.ticket_url(booking)  # door: the QR holds the ticket's URL, not the code
        qr_svg = tickets.qr_svg(ticket)
    return render_template(
        "public/booking.html",
        booking=booking,
        status=status,
        qr_svg=qr_svg,
        ticket_url=ticket,
        pay_url=_pay_url(actions),
        cancel_until=cancel_until(booking, settings),
        can_cancel=actions.cancel,
        now=now,
    )


@bp.post("/bookings/<int:booking_id>/cancel")
@role_required()
def cancel(booking_id):
    try:
        booking = cancel_booking(_viewer(), booking_id, utcnow(), reason="cancelled on the booking page")
    except (Conflict, ValidationError, PermissionDenied) as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("pages.booking_detail", booking_id=booking_id))
    flash(_("Booking %(code)s is cancelled and its spots are free again.", code=booking.code), "success")
    return redirect(url_for("pages.booking_detail", booking_id=booking.id))


@bp.route("/lang/<code>", methods=["GET", "POST"])
def set_language(code):
    """The language switch: remembered in a cookie, then back to the page.

    Visitors follow a link (GET), which writes nothing to the database. Signed-in players submit a
    form (POST, CSRF-checked) that also saves the choice on the account, for their e-mails and
    other devices, so no cross-site link or image can change an account.
    """
    if code not in SUPPORTED:
        abort(404)
    response = redirect(safe_next(request.args.get("next")) or url_for("pages.home"))
    response.set_cookie(
        COOKIE,
        code,
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )
    if request.method == "POST" and current_user.is_authenticated and current_user.locale != code:
        set_locale(current_user, code)
    return response


@bp.get("/healthz")
def healthz():
    """Database and Redis reachability; 503 only when the database is down (Redis is optional)."""
    try:
        db.execute_sql("SELECT 1")
        database = "ok"
    except Exception:  # any driver error means "down" here
        database = "down"
    redis = "ok" if queue.redis_ok() else "down"
    status = "ok" if database == redis == "ok" else ("degraded" if database == "ok" else "down")
    return jsonify({"status": status, "database": database, "redis": redis}), 200 if database == "ok" else 503
