"""Settings (admins): every key of loafy.settings.SETTINGS, validated by the settings service."""

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_babel import gettext as _

from admin.base import StaffOnly, actor, flash_error, now
from loafy.booking import staff
from loafy.errors import LoafyError
from loafy.models import PAYMENT_METHODS
from loafy.money.methods import method_unavailable_reason
from loafy.settings import SETTINGS, get_settings

BOOLEAN_KEYS = tuple(k for k, (default, _, _) in SETTINGS.items() if isinstance(default, bool))
LIST_KEYS = ("payment_methods",)


def changes_from_form(form):
    """The submitted values: keys missing from the form stay as they are."""
    changes = {}
    for key in SETTINGS:
        if key in LIST_KEYS:
            if f"{key}__shown" in form:  # checkboxes: none ticked still means "none"
                changes[key] = form.getlist(key)
        elif key in form:
            changes[key] = form.get(key)
    return changes


class SettingsView(StaffOnly, BaseView):
    roles = ("admin",)

    @expose("/", methods=("GET", "POST"))
    def index(self):
        values, error_field = get_settings(), None
        if request.method == "POST":
            changes = changes_from_form(request.form)
            try:
                _settings, diff = staff.update_settings(actor(), changes, now())
            except LoafyError as exc:
                flash_error(exc)
                error_field = exc.field
                values.update(changes)  # show what was typed, next to the message
            else:
                saved = ", ".join(str(SETTINGS[key][2]) for key in sorted(diff))
                flash(
                    _("Settings saved: %(names)s.", names=saved) if diff else _("Nothing changed."), "success"
                )
                return redirect(self.get_url(".index"))
        fields = [
            {
                "key": key,
                "label": label,
                "value": values.get(key, default),
                "kind": "bool" if key in BOOLEAN_KEYS else "list" if key in LIST_KEYS else "text",
            }
            for key, (default, _check, label) in SETTINGS.items()
        ]
        return self.render(
            "admin/loafy/settings.html",
            fields=fields,
            error_field=error_field,
            payment_methods=PAYMENT_METHODS,
            # Enabled or not, a method the club cannot take (card without Stripe's keys) is not offered.
            not_offered={m: reason for m in PAYMENT_METHODS if (reason := method_unavailable_reason(m))},
        )
