"""The audit log (admins): who changed what and when. Read-only."""

import json

from flask_admin.contrib.peewee.filters import FilterEqual, FilterLike
from markupsafe import Markup, escape
from peewee import JOIN

from admin.base import LocalDateFilter, StaffModelView
from loafy.models import AuditLog, User
from loafy.web.formatting import local_time

OBJECT_TYPES = ("session", "booking", "user", "settings")


def _details(view, context, model, name):
    try:
        data = json.loads(model.details or "{}")
    except ValueError:
        return model.details
    return Markup("<br>").join(
        Markup("<code>{}</code>: {}").format(key, escape(json.dumps(value, ensure_ascii=False)))
        for key, value in sorted(data.items())
    )


class AuditLogView(StaffModelView):
    roles = ("admin",)
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = False
    column_list = ("created_at", "actor", "action", "object_type", "object_id", "details")
    column_labels = {"created_at": "When (club time)", "actor": "Who", "object_type": "Object"}
    column_sortable_list = ("created_at", "action")
    column_default_sort = [("created_at", True), ("id", True)]
    column_searchable_list = ("action", "object_id")
    named_filter_urls = True
    column_filters = (
        FilterEqual(AuditLog.object_type, "Object", options=[(t, t) for t in OBJECT_TYPES]),
        FilterLike(AuditLog.action, "Action"),
        FilterEqual(AuditLog.object_id, "Object id"),
        LocalDateFilter(AuditLog.created_at, "Date"),
    )
    column_formatters = {
        "created_at": lambda v, c, m, n: local_time(m.created_at, "%d/%m/%Y %H:%M:%S"),
        "actor": lambda v, c, m, n: str(m.actor) if m.actor_id else "system",
        "details": _details,
    }

    def get_query(self):
        return AuditLog.select(AuditLog, User).join(User, JOIN.LEFT_OUTER, on=AuditLog.actor)

    def _handle_join(self, query, field, joins):
        return query
