"""Flask-Admin views: declarative configuration; rules go through loafy services."""

from flask_admin import Admin, AdminIndexView, expose
from flask_admin.contrib.peewee import ModelView
from flask_admin.form import SecureForm
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user

from loafy.models import STAFF_ROLES, Booking, ClubSession, User
from public.guards import deny, has_role


class StaffOnly:
    """Anonymous visitors go to sign-in; signed-in players get 403 (the guard every area uses)."""

    roles = STAFF_ROLES  # views that only admins may see set ("admin",)

    def is_accessible(self):
        return has_role(current_user, *self.roles)

    def inaccessible_callback(self, name, **kwargs):
        return deny()


class StaffIndexView(StaffOnly, AdminIndexView):
    @expose("/")
    def index(self):
        if not self.is_accessible():
            return self.inaccessible_callback("index")
        return super().index()


class StaffModelView(StaffOnly, ModelView):
    form_base_class = SecureForm
    page_size = 50
    can_view_details = True


class ClubSessionView(StaffModelView):
    column_list = (
        "title",
        "starts_at",
        "location",
        "max_slots",
        "available_slots",
        "price",
        "status",
    )
    column_default_sort = ("starts_at", True)
    column_searchable_list = ("title", "location")
    column_filters = ("status", "starts_at")
    # Capacity and money change through the services only (later: the admin issue's forms).
    can_create = False
    can_edit = False
    can_delete = False


class BookingView(StaffModelView):
    column_list = (
        "code",
        "user",
        "club_session",
        "slots",
        "amount",
        "status",
        "payment_status",
        "created_at",
    )
    column_default_sort = ("created_at", True)
    column_searchable_list = ("code",)
    column_filters = ("status", "payment_status", "payment_method")
    can_create = False
    can_edit = False
    can_delete = False


class UserView(StaffModelView):
    roles = ("admin",)
    column_list = ("name", "email", "role", "membership_until", "created_at")
    column_searchable_list = ("name", "email")
    can_create = False
    can_edit = False
    can_delete = False


def init_admin(app):
    """Built per app: a module-level Admin breaks when create_app runs twice."""
    admin = Admin(
        app,
        name="Loafy staff",
        url="/admin",
        index_view=StaffIndexView(url="/admin", endpoint="admin"),
        theme=Bootstrap4Theme(),
    )
    admin.add_view(ClubSessionView(ClubSession, name="Sessions", endpoint="sessions"))
    admin.add_view(BookingView(Booking, name="Bookings", endpoint="bookings"))
    admin.add_view(UserView(User, name="Players", endpoint="players"))
    return admin
