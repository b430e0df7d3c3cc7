"""The one access guard for every face: pages, the JSON API and the staff area.

The rule itself is `loafy.people.accounts.has_role`; this module turns a refusal into the right answer:
anonymous visitors are sent to sign in (401 JSON under /api/), signed-in people without the role get 403.
"""

import functools

from flask import abort, current_app
from flask_login import current_user

from loafy.people.accounts import has_role

__all__ = ["deny", "has_role", "role_required"]


def deny():
    """The response for someone the rule refused: sign in first, or 403 when already signed in."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    abort(403)


def role_required(*roles):
    """Decorate a view: signed in and one of `roles` (admins always pass); no roles = any signed-in user."""

    def decorator(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            if not has_role(current_user, *roles):
                return deny()
            return view(*args, **kwargs)

        guarded.required_roles = roles
        return guarded

    return decorator
