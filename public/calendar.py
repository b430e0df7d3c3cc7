"""Session templates in the JSON API (admins), the calendar feeds, and the profile's feed link.
Thin: parse, call one Core service, serialize."""

from flask import Blueprint, Response, flash, jsonify, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from loafy.calendar import ics, templates
from loafy.clock import to_local
from loafy.models import utcnow
from loafy.web.formatting import iso_utc
from loafy.web.guards import role_required
from public.api import json_body

bp = Blueprint("calendar", __name__)

ICS_TYPE = "text/calendar; charset=utf-8"


@bp.app_context_processor
def _calendar_links():
    return {"google_calendar_link": ics.google_calendar_link}


def template_json(template):
    return {
        "id": template.id,
        "title": template.title,
        "description": template.description,
        "location": template.location,
        "rrule": template.rrule,
        "starts_on": template.starts_on.isoformat(),
        "start_time": template.start_time,
        "duration_minutes": template.duration_minutes,
        "max_slots": template.max_slots,
        "price": template.price,
        "currency": "vnd",
        "weeks_ahead": template.weeks_ahead,
        "booking_opens_hours_before": template.booking_opens_hours_before,
        "early_access_hours": template.early_access_hours,
        "allow_pay_at_door": template.allow_pay_at_door,
        "skipped_dates": sorted(templates.skipped(template)),
        "active": template.active,
        "created_at": iso_utc(template.created_at),
        "updated_at": iso_utc(template.updated_at),
    }


def changes_json(result):
    return {
        "updated": result["updated"],
        "created": result["created"],
        "removed": result["removed"],
        "left_alone": [
            {
                "session_id": item["id"],
                "starts_at": iso_utc(item["starts_at"]),
                "starts_at_local": to_local(item["starts_at"]).isoformat(),
                "reason": item["reason"],
            }
            for item in result["left_alone"]
        ],
    }


@bp.get("/api/session-templates")
@role_required("admin")
def list_templates_view():
    items = [template_json(t) for t in templates.list_templates()]
    return jsonify({"items": items, "page": 1, "per_page": max(len(items), 1), "total": len(items)})


@bp.post("/api/session-templates")
@role_required("admin")
def create_template_view():
    template, created = templates.create_template(current_user, json_body(), utcnow())
    body = {**template_json(template), "sessions_created": [s.id for s in created]}
    response = jsonify(body)
    response.headers["Location"] = url_for("calendar.get_template_view", template_id=template.id)
    return response, 201


@bp.get("/api/session-templates/<int:template_id>")
@role_required("admin")
def get_template_view(template_id):
    return jsonify(template_json(templates.get_template(template_id)))


@bp.put("/api/session-templates/<int:template_id>")
@role_required("admin")
def update_template_view(template_id):
    template, result = templates.update_template(current_user, template_id, json_body(), utcnow())
    return jsonify({**template_json(template), "sessions": changes_json(result)})


@bp.delete("/api/session-templates/<int:template_id>")
@role_required("admin")
def delete_template_view(template_id):
    result = templates.delete_template(current_user, template_id, utcnow())
    return jsonify({"id": template_id, "deleted": True, "sessions": changes_json(result)})


@bp.post("/api/session-templates/<int:template_id>/skip")
@role_required("admin")
def skip_date_view(template_id):
    data = json_body()
    result = templates.skip_date(current_user, template_id, data.get("date"), utcnow())
    template = templates.get_template(template_id)
    return jsonify({**template_json(template), "sessions": changes_json(result)})


# --- feeds ---------------------------------------------------------------------------------------


def _ics(body, filename, private=False):
    response = Response(body, content_type=ICS_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store" if private else "public, max-age=300"
    if private:
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/sessions.ics")
def public_feed():
    return _ics(ics.public_feed(utcnow()), "sessions.ics")


@bp.get("/calendar/<token>.ics")
def player_feed(token):
    user = ics.user_for_feed_token(token)  # NotFound: a plain 404 page, no hint
    return _ics(ics.player_feed(user, utcnow()), "my-bookings.ics", private=True)


@bp.get("/bookings/<int:booking_id>/calendar.ics")
@role_required()
def booking_file(booking_id):
    """ "Add to calendar" for one booking (its owner or staff): the same event as the private feed's."""
    from loafy.booking.bookings import get_booking

    booking = get_booking(booking_id, current_user)
    return _ics(ics.booking_ics(booking), f"{booking.code}.ics", private=True)


# --- the profile's private feed link --------------------------------------------------------------


@bp.post("/profile/calendar")
@role_required()
def create_feed_link():
    """A new private link, shown on this response only (never stored raw); the old one stops working."""
    from public.profile import render_profile

    raw = ics.create_feed_token(current_user, utcnow())

    return render_profile(new_feed_url=ics.feed_url(raw), status=201)


@bp.post("/profile/calendar/revoke")
@role_required()
def revoke_feed_link():
    ics.revoke_feed_token(current_user, utcnow())
    flash(_("Your calendar link no longer works."), "info")
    return redirect(url_for("profile.show"))
