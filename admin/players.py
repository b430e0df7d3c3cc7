"""Players (admins): roles, sign-in identities, membership until-date, booking history."""

from datetime import UTC, datetime, timedelta

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from admin.base import StaffModelView, actor, back, flash_error, local_to_utc, now, parse_id
from loafy.booking import staff
from loafy.errors import LoafyError
from loafy.models import ROLES, Booking, ClubSession, Identity, User
from loafy.web.formatting import local_time
from loafy.web.labels import choices, word

HISTORY_LIMIT = 100


def membership_end(day):
    """A membership "until D" lasts through day D in club time: it ends at the next local midnight."""
    end = local_to_utc(datetime(day.year, day.month, day.day) + timedelta(days=1))
    return end.astimezone(UTC).replace(tzinfo=None)


class PlayerView(StaffModelView):
    roles = ("admin",)
    can_create = False
    can_edit = False
    can_delete = False
    details_template = "admin/loafy/player_details.html"
    column_list = ("name", "email", "role", "membership_until", "active", "created_at", "last_login_at")
    column_labels = {"membership_until": _l("Member until (club time)")}
    phone_columns = ("name", "role", "membership_until")
    column_sortable_list = ("name", "email", "membership_until", "created_at", "last_login_at")
    column_default_sort = ("created_at", True)
    column_searchable_list = ("name", "email")
    named_filter_urls = True
    column_filters = (FilterEqual(User.role, _l("Role"), options=choices("role", ROLES)),)
    column_formatters = {
        "membership_until": lambda v, c, m, n: local_time(m.membership_until, "%d/%m/%Y %H:%M"),
        "created_at": lambda v, c, m, n: local_time(m.created_at, "%d/%m/%Y %H:%M"),
        "last_login_at": lambda v, c, m, n: local_time(m.last_login_at, "%d/%m/%Y %H:%M"),
    }
    column_details_list = column_list

    # Detail page -----------------------------------------------------------------------------

    roles_available = ROLES

    def identities_for(self, user):
        return list(Identity.select().where(Identity.user == user.id).order_by(Identity.created_at))

    def history_for(self, user):
        return list(
            Booking.select(Booking, ClubSession)
            .join(ClubSession)
            .where(Booking.user == user.id)
            .order_by(ClubSession.starts_at.desc(), Booking.id.desc())
            .limit(HISTORY_LIMIT)
        )

    def membership_day(self, user):
        """The last day of the membership in club time, for the form (the end is the next midnight)."""
        if user.membership_until is None:
            return ""
        return local_time(user.membership_until - timedelta(seconds=1), "%Y-%m-%d")

    # Actions ---------------------------------------------------------------------------------

    def _player_id(self):
        user_id = parse_id(request.form.get("id"))
        if user_id is None:
            flash(_("That player does not exist."), "error")
        return user_id

    @expose("/role/", methods=("POST",))
    def set_role(self):
        user_id = self._player_id()
        if user_id is None:
            return redirect(self.get_url(".index_view"))
        role = request.form.get("role", "")
        try:
            user = staff.set_role(actor(), user_id, role, now())
            flash(_("%(name)s is now %(role)s.", name=user.name, role=word("role", user.role_id)), "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=user_id))

    @expose("/membership/", methods=("POST",))
    def set_membership(self):
        user_id = self._player_id()
        if user_id is None:
            return redirect(self.get_url(".index_view"))
        text = (request.form.get("until") or "").strip()
        until = None
        if text:
            try:
                day = datetime.strptime(text, "%Y-%m-%d")
                if not 2000 <= day.year <= 2200:
                    raise ValueError(text)
            except ValueError:
                flash(
                    _("Enter the membership's last day as YYYY-MM-DD, or leave it empty to end it."), "error"
                )
                return back(self.get_url(".details_view", id=user_id))
            until = membership_end(day)
        try:
            user = staff.set_membership(actor(), user_id, until, now())
            flash(
                _("%(name)s is a member until %(day)s.", name=user.name, day=self.membership_day(user))
                if until
                else _("%(name)s is no longer a member.", name=user.name),
                "success",
            )
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=user_id))
