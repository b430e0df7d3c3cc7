"""Passes in the staff area: products (admin CRUD through the products service), the passes list
with its actions (mark paid, cancel with refund), selling at the desk and granting (audited)."""

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Optional

from admin.base import StaffModelView, actor, back, flash_error, now
from loafy.errors import LoafyError, as_id
from loafy.models import PASS_KINDS, PASS_STATUSES, LedgerEntry, Pass, PassProduct, User
from loafy.passes import credits, passes, products
from loafy.web.formatting import local_time, vnd
from loafy.web.labels import choices, word


def _time(view, context, model, name):
    return local_time(getattr(model, name), "%d/%m/%Y %H:%M")


class PassProductView(StaffModelView):
    """What the club sells. Saving goes through loafy.passes.products (validation, audit)."""

    roles = ("admin",)
    can_delete = False  # sold passes point at their product: switch it off (active) instead
    column_list = (
        "name",
        "kind",
        "price",
        "duration_days",
        "credits",
        "validity_days",
        "early_access",
        "active",
        "renewable",
    )
    column_formatters = {
        "price": lambda v, c, m, n: vnd(m.price),
        "kind": lambda v, c, m, n: word("pass_kind", m.kind),
    }
    column_labels = {
        "kind": _l("Kind"),
        "duration_days": _l("Days (period)"),
        "credits": _l("Credits (pack)"),
        "validity_days": _l("Valid for days (pack)"),
        "early_access": _l("Early access"),
        "active": _l("On sale"),
        "renewable": _l("Auto-renew by card"),
    }
    phone_columns = ("name", "kind", "price")
    form_columns = (
        "name",
        "kind",
        "price",
        "duration_days",
        "credits",
        "validity_days",
        "early_access",
        "active",
        "renewable",
    )
    form_overrides = {"kind": SelectField}
    form_args = {"kind": {"choices": choices("pass_kind", PASS_KINDS), "label": _l("Kind")}}
    form_extra_fields = {}

    def scaffold_form(self):
        form = super().scaffold_form()
        form.name = StringField(_l("Name"), validators=[InputRequired()])
        form.price = IntegerField(_l("Price (VND)"), validators=[InputRequired()])
        form.duration_days = IntegerField(_l("Days (period)"), validators=[Optional()])
        form.credits = IntegerField(_l("Credits (pack)"), validators=[Optional()])
        form.validity_days = IntegerField(_l("Valid for days (pack)"), validators=[Optional()])
        form.early_access = BooleanField(_l("Early access"), default=True)
        form.active = BooleanField(_l("On sale"), default=True)
        form.renewable = BooleanField(_l("Auto-renew by card (period)"))
        return form

    def create_model(self, form):
        try:
            return products.create_product(actor(), dict(form.data), now())
        except LoafyError as exc:
            flash_error(exc)
            return False

    def update_model(self, form, model):
        try:
            products.update_product(actor(), model.id, dict(form.data), now())
            return True
        except LoafyError as exc:
            flash_error(exc)
            return False


class PassView(StaffModelView):
    """Every pass sold or granted; its money and status change only through loafy.passes."""

    can_create = False
    can_edit = False
    can_delete = False
    details_template = "admin/loafy/pass_details.html"
    list_template = "admin/loafy/pass_list.html"
    column_list = (
        "code",
        "user",
        "product",
        "kind",
        "status",
        "amount",
        "payment_method",
        "starts_at",
        "ends_at",
        "created_at",
    )
    column_sortable_list = ("code", "status", "amount", "starts_at", "ends_at", "created_at")
    phone_columns = ("code", "user", "status")
    column_default_sort = ("created_at", True)
    column_searchable_list = ("code", User.name, User.email)
    column_filters = (
        FilterEqual(Pass.status, _l("Stored status"), options=choices("pass_status", PASS_STATUSES)),
        FilterEqual(Pass.kind, _l("Kind"), options=choices("pass_kind", PASS_KINDS)),
        FilterEqual(Pass.user, _l("Player id")),
    )
    column_formatters = {
        "amount": lambda v, c, m, n: vnd(m.amount),
        "status": lambda v, c, m, n: word("pass_status", m.status_at(now())),
        "kind": lambda v, c, m, n: word("pass_kind", m.kind),
        "starts_at": _time,
        "ends_at": _time,
        "created_at": _time,
    }

    def get_query(self):
        return (
            Pass.select(Pass, User, PassProduct)
            .join(User, on=(Pass.user == User.id))
            .switch(Pass)
            .join(PassProduct)
        )

    def credits_left(self, model):
        return credits.credits_left(model)

    def ledger_for(self, model):
        return list(LedgerEntry.select().where(LedgerEntry.club_pass == model.id).order_by(LedgerEntry.id))

    def products_for_sale(self):
        return products.list_products(include_inactive=True)

    def status_of(self, model):
        return word("pass_status", model.status_at(now()))

    def _pass_id(self):
        pass_id = as_id(request.form.get("id"))
        if pass_id is None:
            flash(_("That pass does not exist."), "error")
        return pass_id

    @expose("/mark-paid/", methods=("POST",))
    def mark_paid(self):
        pass_id = self._pass_id()
        if pass_id is None:
            return redirect(self.get_url(".index_view"))
        try:
            club_pass = passes.mark_pass_paid(actor(), pass_id, request.form.get("method", "cash"), now())
            flash(_("%(code)s is paid and active.", code=club_pass.code), "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=pass_id))

    @expose("/cancel/", methods=("POST",))
    def cancel(self):
        pass_id = self._pass_id()
        if pass_id is None:
            return redirect(self.get_url(".index_view"))
        try:
            club_pass = passes.cancel_pass(
                actor(),
                pass_id,
                now(),
                refund=request.form.get("refund", "1") == "1",
                reason=(request.form.get("reason") or "")[:200],
            )
            flash(_("%(code)s is cancelled.", code=club_pass.code), "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=pass_id))

    @expose("/sell/", methods=("POST",))
    def sell(self):
        """Sell at the desk (paid there) or grant (no money), for the player in the form."""
        user_id = as_id(request.form.get("user_id"))
        method = request.form.get("method", "cash")
        try:
            if method == "grant":
                club_pass = passes.grant_pass(
                    actor(),
                    user_id,
                    request.form.get("product_id"),
                    now(),
                    note=(request.form.get("note") or "")[:200],
                )
            else:
                club_pass = passes.sell_at_desk(
                    actor(), user_id, request.form.get("product_id"), method, now()
                )
            flash(
                _(
                    "%(code)s is active until %(until)s.",
                    code=club_pass.code,
                    until=local_time(club_pass.ends_at, "%d/%m/%Y %H:%M"),
                ),
                "success",
            )
        except LoafyError as exc:
            flash_error(exc)
        if user_id:
            return back(self.get_url("players.details_view", id=user_id))
        return back(self.get_url(".index_view"))
