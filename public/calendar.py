"""Session templates in the JSON API (admins), the calendar feeds, and the profile's feed link.
Thin: parse, call one Core service, serialize."""

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from loafy.calendar import ics, templates
from loafy.models import utcnow
from loafy.web.guards import role_required
from public.api_schemas import (
    ADMIN,
    ChangedTemplate,
    CreatedTemplate,
    DeletedTemplate,
    NewTemplate,
    Paging,
    SkipDate,
    Template,
    TemplateChange,
    TemplatePage,
    answer,
    endpoint,
    including,
)

bp = Blueprint("calendar", __name__)

ICS_TYPE = "text/calendar; charset=utf-8"


@bp.app_context_processor
def _calendar_links():
    return {"google_calendar_link": ics.google_calendar_link}


def _template(template, **extra):
    """The template as its Answer reads it (the date as text, the skipped dates as a list)."""
    return including(
        template,
        starts_on=template.starts_on.isoformat(),
        skipped_dates=sorted(templates.skipped(template)),
        **extra,
    )


def _changes(result):
    left = [
        {"session_id": item["id"], "starts_at": item["starts_at"], "reason": item["reason"]}
        for item in result["left_alone"]
    ]
    return {**result, "left_alone": left}


@bp.get("/api/session-templates")
@role_required("admin")
@endpoint(
    "Session templates (recurring sessions)", ADMIN, ok=TemplatePage, query=Paging, errors=(401, 403, 422)
)
def list_templates_view():
    q = request.context.query
    everything = templates.list_templates()
    chosen = everything[(q.page - 1) * q.per_page : q.page * q.per_page]
    page = {
        "items": [_template(t) for t in chosen],
        "page": q.page,
        "per_page": q.per_page,
        "total": len(everything),
    }
    return answer(TemplatePage, page)


@bp.post("/api/session-templates")
@role_required("admin")
@endpoint(
    "Create a template; its coming sessions are generated at once",
    ADMIN,
    ok=CreatedTemplate,
    status=201,
    json=NewTemplate,
    errors=(400, 401, 403, 413, 415, 422),
)
def create_template_view():
    template, created = templates.create_template(current_user, request.context.json.fields(), utcnow())
    response = answer(
        CreatedTemplate, _template(template, sessions_created=[s.id for s in created]), status=201
    )
    response.headers["Location"] = url_for("calendar.get_template_view", template_id=template.id)
    return response


@bp.get("/api/session-templates/<int:template_id>")
@role_required("admin")
@endpoint("One template", ADMIN, ok=Template, errors=(401, 403, 404))
def get_template_view(template_id):
    return answer(Template, _template(templates.get_template(template_id)))


@bp.put("/api/session-templates/<int:template_id>")
@role_required("admin")
@endpoint(
    "Change a template: its future sessions without bookings follow",
    ADMIN,
    ok=ChangedTemplate,
    json=TemplateChange,
    errors=(400, 401, 403, 404, 413, 415, 422),
    description="`sessions.left_alone` names the booked sessions the change did not touch.",
)
def update_template_view(template_id):
    template, result = templates.update_template(
        current_user, template_id, request.context.json.fields(), utcnow()
    )
    return answer(ChangedTemplate, _template(template, sessions=_changes(result)))


@bp.delete("/api/session-templates/<int:template_id>")
@role_required("admin")
@endpoint(
    "Delete a template: its future unbooked sessions go, booked ones stay",
    ADMIN,
    ok=DeletedTemplate,
    errors=(400, 401, 403, 404),
)
def delete_template_view(template_id):
    result = templates.delete_template(current_user, template_id, utcnow())
    return answer(DeletedTemplate, {"id": template_id, "deleted": True, "sessions": _changes(result)})


@bp.post("/api/session-templates/<int:template_id>/skip")
@role_required("admin")
@endpoint(
    "Skip one club-local date (a holiday)",
    ADMIN,
    ok=ChangedTemplate,
    json=SkipDate,
    errors=(400, 401, 403, 404, 413, 415, 422),
    description="A booked session on that date is left alone (cancel it: that refunds its players).",
)
def skip_date_view(template_id):
    result = templates.skip_date(current_user, template_id, request.context.json.date, utcnow())
    return answer(ChangedTemplate, _template(templates.get_template(template_id), sessions=_changes(result)))


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
