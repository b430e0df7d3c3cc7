"""What every staff view shares: the one access guard, CSRF forms, safe ids, club-time conversion."""

from datetime import UTC, datetime, timedelta

from flask import flash, redirect, request
from flask_admin.contrib.peewee import ModelView
from flask_admin.contrib.peewee.filters import BasePeeweeFilter, IntEqualFilter
from flask_admin.model import typefmt
from flask_admin.model.filters import BaseDateFilter
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm

from admin.i18n import FIELD_LABELS
from loafy.booking.club_sessions import EARLIEST_YEAR, LATEST_YEAR
from loafy.clock import club_tz, utcnow
from loafy.errors import as_id
from loafy.models import STAFF_ROLES
from loafy.web.errors import error_text
from loafy.web.guards import deny, has_role
from loafy.web.labels import word

MAX_PAGE = 100_000


class StaffForm(FlaskForm):
    """CSRF through Flask-WTF, the same token the app checks on every POST.

    Flask-Admin's SecureForm signs its own, different token, which the app-wide check rejects
    with a 400 before the view runs; Flask-WTF's form validates the token the app already uses.
    """


class StaffOnly:
    """Anonymous visitors go to sign-in; signed-in players get 403 (the guard every area uses)."""

    roles = STAFF_ROLES  # views that only admins may see set ("admin",)

    def is_accessible(self):
        return has_role(current_user, *self.roles)

    def inaccessible_callback(self, name, **kwargs):
        return deny()

    def is_visible(self):
        return self.is_accessible()  # admin-only views stay out of an organizer's menu


def actor():
    return current_user._get_current_object()


def now():
    return utcnow()


def local_to_utc(value):
    """A naive club-time datetime from a form, as an aware time the services convert to UTC."""
    return value.replace(tzinfo=club_tz()) if value else None


def utc_to_local(value):
    """A stored naive-UTC time as naive club time, for form fields."""
    return value.replace(tzinfo=UTC).astimezone(club_tz()).replace(tzinfo=None) if value else None


def flash_error(exc, **context):
    """A Core refusal in the reader's language (by its stable code; English as the service said it)."""
    flash(error_text(exc, **context), "error")


def back(default):
    """Redirect to the form's `next` when it is a local path, else `default`."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/admin/") and "//" not in target and "\\" not in target:
        return redirect(target)
    return redirect(default)


def _yes_no(view, value, name):
    return word("yes_no", value)


class StaffModelView(StaffOnly, ModelView):
    form_base_class = StaffForm
    list_template = "admin/loafy/list.html"
    page_size = 50
    can_view_details = True
    can_set_page_size = False
    column_type_formatters = {**typefmt.BASE_FORMATTERS, bool: _yes_no}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, bool: _yes_no}
    # Columns holding a code, and the kind of word each is shown as (loafy.web.labels).
    code_columns = {"payment_status": "payment_status", "payment_method": "payment_method", "role": "role"}
    phone_columns = None  # the columns a phone shows; None: the first three

    def get_column_name(self, field):
        label = (self.column_labels or {}).get(field) or FIELD_LABELS.get(field)
        return label if label is not None else super().get_column_name(field)

    def phone_hidden_columns(self):
        shown = self.phone_columns or [c for c, _name in self._list_columns][:3]
        return [c for c, _name in self._list_columns if c not in shown]

    def get_filter_arg(self, index, flt):
        # Filter URLs name the filter in English whatever the reader's language (a link to
        # ?flt0_session_equals=3 must work in Vietnamese too); Flask-Admin would use the shown name.
        shown = flt.name
        flt.name = getattr(shown, "_args", (shown,))[0]
        try:
            return super().get_filter_arg(index, flt)
        finally:
            flt.name = shown

    def search_placeholder(self):
        return _("Search") if self.column_searchable_list else None

    def _get_list_value(self, context, model, name, column_formatters, column_type_formatters):
        kind = self.code_columns.get(name)
        if kind is not None and name not in column_formatters:
            return word(kind, getattr(model, name + "_id", None) or getattr(model, name, None))
        return super()._get_list_value(context, model, name, column_formatters, column_type_formatters)

    def get_one(self, id):
        number = as_id(id)
        return None if number is None else super().get_one(number)

    def get_list(self, page, *args, **kwargs):
        # ?page=-3 or an absurd page is clamped: PostgreSQL refuses a negative or overflowing OFFSET.
        if page is not None:
            page = min(max(page, 0), MAX_PAGE)
        return super().get_list(page, *args, **kwargs)

    def _get_column_by_idx(self, idx):
        # ?sort=N naming a column that cannot be sorted is ignored (Flask-Admin would raise KeyError).
        column = super()._get_column_by_idx(idx)
        return column if column is not None and column[0] in self._sortable_columns else None


class LocalDateFilter(BasePeeweeFilter, BaseDateFilter):
    """Rows whose time falls on the given day in the club's time zone (times are stored UTC)."""

    def validate(self, value):
        # Flask-Admin ignores a filter that fails here; a year far out would overflow the zone maths.
        return super().validate(value) and EARLIEST_YEAR <= self.clean(value).year <= LATEST_YEAR

    def apply(self, query, value):
        start = datetime(value.year, value.month, value.day, tzinfo=club_tz()).astimezone(UTC)
        start = start.replace(tzinfo=None)
        return query.where((self.column >= start) & (self.column < start + timedelta(days=1)))

    def operation(self):
        return _l("on (club date)")


class IdEqualFilter(IntEqualFilter):
    """An id filter that treats an out-of-range number as invalid (ignored), not a database error."""

    def validate(self, value):
        return as_id(value) is not None
