"""Staff views for recurring sessions (templates), strikes and the reports. Configuration and
forms only: every change goes through loafy.calendar."""

from flask import Response, flash, redirect, request
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from admin.base import StaffOnly, actor, flash_error, now
from loafy.calendar import attendance, reports, templates
from loafy.clock import format_local
from loafy.errors import LoafyError, as_id
from loafy.models import User

COLUMN_LABELS = {
    "period": _l("Period"),
    "sessions": _l("Sessions"),
    "capacity": _l("Spots in all"),
    "booked_slots": _l("Spots booked"),
    "bookings": _l("Bookings"),
    "fill_rate": _l("Filled %"),
    "received": _l("Received (₫)"),
    "refunded": _l("Refunded (₫)"),
    "net": _l("Net (₫)"),
    "attended": _l("Came"),
    "no_show": _l("Did not come"),
    "attendance_rate": _l("Came %"),
    "no_show_rate": _l("Did not come %"),
    "new_members": _l("New members"),
    "passes_sold": _l("Passes sold"),
}
INT_FIELDS = ("duration_minutes", "max_slots", "price", "weeks_ahead")
OPTIONAL_INT_FIELDS = ("booking_opens_hours_before", "early_access_hours")


def template_data(form):
    """The template form as the service's input: empty optional numbers are None, boxes booleans."""
    data = {name: form.get(name, "") for name in ("title", "description", "location", "rrule", "start_time")}
    data.update({name: form.get(name, "").strip() for name in INT_FIELDS})
    for name in OPTIONAL_INT_FIELDS:
        value = form.get(name, "").strip()
        data[name] = value or None
    if form.get("starts_on", "").strip():
        data["starts_on"] = form["starts_on"]
    data["allow_pay_at_door"] = form.get("allow_pay_at_door") == "y"
    data["active"] = form.get("active", "y") == "y"
    return data


def summary(result):
    """What an edit did to the generated sessions, in one line for staff."""
    text = _(
        "Sessions: %(updated)d updated, %(created)d created, %(removed)d removed.",
        updated=len(result["updated"]),
        created=len(result["created"]),
        removed=len(result["removed"]),
    )
    if result["left_alone"]:
        left = "; ".join(f"#{item['id']} {format_local(item['starts_at'])}" for item in result["left_alone"])
        text += " " + _("Left alone because players booked them: %(sessions)s.", sessions=left)
    return text


class TemplatesView(StaffOnly, BaseView):
    roles = ("admin",)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        form = {}
        if request.method == "POST":
            form = request.form
            try:
                template, created = templates.create_template(actor(), template_data(form), now())
            except LoafyError as exc:
                flash_error(exc)
            else:
                flash(
                    _("“%(title)s” saved: %(n)d sessions made.", title=template.title, n=len(created)),
                    "success",
                )
                return redirect(self.get_url(".index"))
        return self.render(
            "admin/loafy/templates.html", items=templates.list_templates(), form=form, current=None
        )

    @expose("/<template_id>", methods=("GET", "POST"))
    def edit(self, template_id):
        number = as_id(template_id)
        try:
            template = templates.get_template(number)
        except LoafyError as exc:
            flash_error(exc)
            return redirect(self.get_url(".index"))
        if request.method == "POST":
            try:
                template, result = templates.update_template(
                    actor(), template.id, template_data(request.form), now()
                )
            except LoafyError as exc:
                flash_error(exc)
            else:
                flash(_("Saved.") + " " + summary(result), "success")
                return redirect(self.get_url(".edit", template_id=template.id))
        return self.render(
            "admin/loafy/templates.html",
            items=None,
            form=request.form,
            current=template,
            skipped=sorted(templates.skipped(template)),
        )

    @expose("/<template_id>/skip", methods=("POST",))
    def skip(self, template_id):
        number = as_id(template_id)
        try:
            if request.form.get("undo"):
                result = templates.unskip_date(actor(), number, request.form.get("date"), now())
            else:
                result = templates.skip_date(actor(), number, request.form.get("date"), now())
        except LoafyError as exc:
            flash_error(exc)
        else:
            flash(_("Dates changed.") + " " + summary(result), "success")
        return redirect(self.get_url(".edit", template_id=number or 0))

    @expose("/<template_id>/delete", methods=("POST",))
    def delete(self, template_id):
        try:
            result = templates.delete_template(actor(), as_id(template_id), now())
        except LoafyError as exc:
            flash_error(exc)
        else:
            flash(_("Deleted.") + " " + summary(result), "success")
        return redirect(self.get_url(".index"))

    @expose("/generate", methods=("POST",))
    def generate(self):
        created = templates.generate_sessions(now())
        flash(_("%(n)d sessions made.", n=len(created)), "success")
        return redirect(self.get_url(".index"))


class StrikesView(StaffOnly, BaseView):
    """Players with strikes in the window, and one player's strikes with a forgive button."""

    @expose("/")
    def index(self):
        return self.render(
            "admin/loafy/strikes.html", players=attendance.players_with_strikes(now()), player=None
        )

    @expose("/player/<user_id>")
    def player(self, user_id):
        user = User.get_or_none(User.id == as_id(user_id)) if as_id(user_id) else None
        if user is None:
            flash(_("That player does not exist."), "error")
            return redirect(self.get_url(".index"))
        strikes, until = attendance.strikes_for(user.id, now())
        return self.render(
            "admin/loafy/strikes.html", players=None, player=user, strikes=strikes, until=until
        )

    @expose("/<strike_id>/forgive", methods=("POST",))
    def forgive(self, strike_id):
        try:
            strike = attendance.forgive_strike(
                actor(), as_id(strike_id), now(), request.form.get("reason", "")
            )
        except LoafyError as exc:
            flash_error(exc)
            return redirect(self.get_url(".index"))
        flash(_("Strike forgiven."), "success")
        return redirect(self.get_url(".player", user_id=strike.user_id))


class ReportsView(StaffOnly, BaseView):
    roles = ("admin",)  # revenue is the admins'

    def _report(self):
        return reports.build(
            now(), request.args.get("from"), request.args.get("to"), request.args.get("location")
        )

    @expose("/")
    def index(self):
        try:
            report = self._report()
        except LoafyError as exc:
            flash_error(exc)
            report = reports.build(now())
        labels = {column: str(label) for column, label in COLUMN_LABELS.items()}
        return self.render(
            "admin/loafy/reports.html",
            report=report,
            columns=reports.COLUMNS,
            labels=labels,
            locations=reports.locations(),
        )

    @expose("/report.csv")
    def csv(self):
        try:
            report = self._report()
        except LoafyError as exc:
            return Response(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
        name = f"loafy-report-{report['from']}-{report['to']}.csv"
        response = Response(reports.to_csv(report), content_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
