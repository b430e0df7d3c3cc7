"""The staff area (Flask-Admin), open to organizers and admins only."""

from admin.views import init_admin

__all__ = ["init_admin"]
