"""The audit log (admins): who changed what and when. Read-only."""

import json

from flask import url_for
from flask_admin.contrib.peewee.filters import FilterEqual, FilterLike
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from peewee import JOIN

from admin.base import LocalDateFilter, StaffModelView
from loafy.models import AuditLog, User
from loafy.web.formatting import local_time, vnd
from loafy.web.labels import choices, word

OBJECT_TYPES = ("session", "booking", "user", "settings")


MONEY_KEYS = ("amount", "price")
CODE_KINDS = {
    "method": "payment_method",
    "outcome": "payment_outcome",
    "status": "session_status",
    "role": "role",
}
DETAIL_PAGES = {
    "session": "sessions.details_view",
    "booking": "bookings.details_view",
    "user": "players.details_view",
}


def _value(key, value, action):
    if key in MONEY_KEYS and isinstance(value, int):
        return vnd(value)
    if action == "user.set_role" and key in ("from", "to"):
        return word("role", value)
    if key in CODE_KINDS and isinstance(value, str):
        return word(CODE_KINDS[key], value)
    if isinstance(value, bool):
        return word("yes_no", value)
    if value is None or value == "":
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _details(view, context, model, name):
    """The details in words: "Amount: 360.000 ₫", not `amount: 360000`."""
    try:
        data = json.loads(model.details or "{}")
    except ValueError:
        return model.details
    if not isinstance(data, dict):
        return model.details
    return Markup("<br>").join(
        Markup("{}: {}").format(word("audit_field", key), _value(key, value, model.action))
        for key, value in sorted(data.items())
    )


def _object(view, context, model, name):
    """The object in words, linked to its page when it has one."""
    label = word("object_type", model.object_type)
    if model.object_id is None:
        return label
    endpoint = DETAIL_PAGES.get(model.object_type)
    if endpoint is None:
        return f"{label} {model.object_id}"
    return Markup('<a href="{}">{} #{}</a>').format(
        url_for(endpoint, id=model.object_id), label, model.object_id
    )


class AuditLogView(StaffModelView):
    roles = ("admin",)
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = False
    column_list = ("created_at", "actor", "action", "object_type", "details")
    column_labels = {"created_at": _l("When (club time)")}
    phone_columns = ("created_at", "actor", "action")
    column_sortable_list = ("created_at", "action")
    column_default_sort = [("created_at", True), ("id", True)]
    column_searchable_list = ("action", "object_id")
    named_filter_urls = True
    column_filters = (
        FilterEqual(AuditLog.object_type, _l("Object"), options=choices("object_type", OBJECT_TYPES)),
        FilterLike(AuditLog.action, _l("Action")),
        FilterEqual(AuditLog.object_id, _l("Object id")),
        LocalDateFilter(AuditLog.created_at, _l("Date")),
    )
    column_formatters = {
        "created_at": lambda v, c, m, n: local_time(m.created_at, "%d/%m/%Y %H:%M:%S"),
        "actor": lambda v, c, m, n: str(m.actor) if m.actor_id else _("system"),
        "details": _details,
        "action": lambda v, c, m, n: word("audit_action", m.action),
        "object_type": _object,
    }

    def get_query(self):
        return AuditLog.select(AuditLog, User).join(User, JOIN.LEFT_OUTER, on=AuditLog.actor)

    def _handle_join(self, query, field, joins):
        return query
