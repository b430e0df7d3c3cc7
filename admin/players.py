"""Players (admins): roles, sign-in identities, passes (membership comes from them), booking history."""

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from admin.base import StaffModelView, actor, back, flash_error, now
from loafy.booking import staff
from loafy.errors import LoafyError, as_id
from loafy.models import ROLES, Booking, ClubSession, Identity, User
from loafy.passes import passes, products
from loafy.web.formatting import local_time
from loafy.web.labels import choices, word

HISTORY_LIMIT = 100


class PlayerView(StaffModelView):
    roles = ("admin",)
    can_create = False
    can_edit = False
    can_delete = False
    details_template = "admin/loafy/player_details.html"
    column_list = ("name", "email", "role", "active", "created_at", "last_login_at")
    phone_columns = ("name", "role")
    column_sortable_list = ("name", "email", "created_at", "last_login_at")
    column_default_sort = ("created_at", True)
    column_searchable_list = ("name", "email")
    named_filter_urls = True
    column_filters = (FilterEqual(User.role, _l("Role"), options=choices("role", ROLES)),)
    column_formatters = {
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

    def passes_for(self, user):
        return passes.list_passes(actor(), user.id, now())

    def membership_for(self, user):
        return passes.membership(user.id, now())

    def products_for_sale(self):
        return products.list_products(include_inactive=True)

    def pass_status(self, club_pass):
        return word("pass_status", club_pass.status_at(now()))

    # Actions ---------------------------------------------------------------------------------

    def _player_id(self):
        user_id = as_id(request.form.get("id"))
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
