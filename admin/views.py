"""The staff area: Flask-Admin built per app. Views are configuration; rules go through Core services."""

from flask_admin import Admin, AdminIndexView, expose
from flask_admin.theme import Bootstrap4Theme
from flask_babel import lazy_gettext as _l

from admin import dashboard, i18n
from admin.audit import AuditLogView
from admin.bank import BankView
from admin.base import StaffOnly, actor, now
from admin.bookings import BookingView
from admin.calendar import ReportsView, StrikesView, TemplatesView
from admin.jobs import JobsView
from admin.passes import PassProductView, PassView
from admin.players import PlayerView
from admin.sessions import ClubSessionView
from admin.settings import SettingsView
from loafy.models import AuditLog, Booking, ClubSession, Pass, PassProduct, User


class StaffIndexView(StaffOnly, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render("admin/loafy/dashboard.html", data=dashboard.build(now(), actor()))


def init_admin(app):
    """Built per app: a module-level Admin breaks when create_app runs twice."""
    i18n.init_app(app)
    admin = Admin(
        app,
        name=_l("Loafy staff"),
        url="/admin",
        index_view=StaffIndexView(name=_l("Dashboard"), url="/admin", endpoint="admin"),
        theme=Bootstrap4Theme(base_template="admin/loafy/base.html"),
    )
    admin.add_view(ClubSessionView(ClubSession, name=_l("Sessions"), endpoint="sessions"))
    admin.add_view(BookingView(Booking, name=_l("Bookings"), endpoint="bookings"))
    admin.add_view(PlayerView(User, name=_l("Players"), endpoint="players"))
    admin.add_view(PassView(Pass, name=_l("Passes"), endpoint="passes_admin", url="/admin/passes"))
    admin.add_view(
        PassProductView(
            PassProduct, name=_l("Pass products"), endpoint="pass_products", url="/admin/pass-products"
        )
    )
    admin.add_view(BankView(name=_l("Bank transfers"), endpoint="bank", url="/admin/bank"))
    admin.add_view(SettingsView(name=_l("Settings"), endpoint="settings", url="/admin/settings"))
    admin.add_view(JobsView(name=_l("Jobs"), endpoint="jobs", url="/admin/jobs"))
    admin.add_view(AuditLogView(AuditLog, name=_l("Audit log"), endpoint="audit", url="/admin/audit"))
    # calendar
    admin.add_view(TemplatesView(name=_l("Recurring"), endpoint="session_templates", url="/admin/templates"))
    admin.add_view(StrikesView(name=_l("Strikes"), endpoint="strikes", url="/admin/strikes"))
    admin.add_view(ReportsView(name=_l("Reports"), endpoint="reports", url="/admin/reports"))
    return admin
