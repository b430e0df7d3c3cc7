"""Sessions: organizers create and edit their own drafts and publish them; admins edit, cancel, delete any.

Every change goes through loafy.booking.staff (the session services plus the audit row); the form shows
times in the club's time zone and hands the services aware times, which they store as UTC.
"""

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_admin.helpers import get_form_data
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from peewee import JOIN, Case
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields import DateTimeLocalField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from admin import exports
from admin.base import (
    LocalDateFilter,
    StaffForm,
    StaffModelView,
    actor,
    back,
    flash_error,
    local_to_utc,
    now,
    utc_to_local,
)
from loafy.booking import staff, waitlist
from loafy.booking.club_sessions import EDITABLE_FIELDS, MAX_PRICE, MAX_SLOTS_LIMIT, can_edit
from loafy.clock import to_local
from loafy.door import checkin
from loafy.errors import LoafyError, as_id
from loafy.models import ACTIVE_BOOKING_STATUSES, SESSION_STATUSES, Booking, ClubSession, User
from loafy.web.formatting import local_time, vnd
from loafy.web.guards import deny, has_role
from loafy.web.labels import choices

FORM_TIME = "%Y-%m-%dT%H:%M"
TIME_FIELDS = ("starts_at", "ends_at", "booking_opens_at", "early_access_opens_at")
SESSION_FIELDS = EDITABLE_FIELDS  # the form edits exactly what the service accepts


class SessionForm(StaffForm):
    title = StringField(_l("Title"), validators=[InputRequired(_l("Enter a title.")), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Length(max=5000)])
    location = StringField(_l("Location"), validators=[Length(max=300)])
    starts_at = DateTimeLocalField(
        _l("Starts (club time)"), format=FORM_TIME, validators=[InputRequired(_l("Enter when it starts."))]
    )
    ends_at = DateTimeLocalField(
        _l("Ends (club time)"), format=FORM_TIME, validators=[InputRequired(_l("Enter when it ends."))]
    )
    max_slots = IntegerField(
        _l("Max slots"),
        validators=[
            InputRequired(_l("Enter the number of slots.")),
            NumberRange(1, MAX_SLOTS_LIMIT, _l("Max slots must be between 1 and %(max)s.")),
        ],
    )
    price = IntegerField(
        _l("Price per person (VND)"),
        default=0,
        validators=[
            InputRequired(_l("Enter a price (0 for free).")),
            NumberRange(0, MAX_PRICE, _l("The price must be between 0 and %(max)s VND.")),
        ],
    )
    status = SelectField(
        _l("Status"),
        choices=choices("session_status", ("draft", "published", "completed")),
        default="draft",
    )
    booking_opens_at = DateTimeLocalField(
        _l("Public booking opens (club time)"), format=FORM_TIME, validators=[Optional()]
    )
    early_access_opens_at = DateTimeLocalField(
        _l("Members' early access opens (club time)"), format=FORM_TIME, validators=[Optional()]
    )
    allow_pay_at_door = BooleanField(_l("Allow cash at the door"))


def form_to_data(form, stored=None):
    """The form as the services' input: club times become aware times.

    The form shows whole minutes: a time sent back as the edited row (`stored`) showed it keeps its
    seconds, so saving another field neither moves it nor audits a change nobody made.
    """
    data = {name: form[name].data for name in SESSION_FIELDS}
    for name in TIME_FIELDS:
        kept = getattr(stored, name, None)
        if kept is not None and data.get(name) == utc_to_local(kept).replace(second=0, microsecond=0):
            data[name] = kept  # naive UTC, as stored
        else:
            data[name] = local_to_utc(data.get(name))
    return data


def model_to_data(club_session):
    data = {name: getattr(club_session, name) for name in SESSION_FIELDS}
    for name in TIME_FIELDS:
        data[name] = utc_to_local(data[name])
    return data


def _fill(view, context, model, name):
    if not model.max_slots:
        return ""
    taken = model.max_slots - model.available_slots
    return f"{taken}/{model.max_slots} ({round(100 * taken / model.max_slots)}%)"


class ClubSessionView(StaffModelView):
    form = SessionForm
    can_create = True
    can_edit = True
    can_delete = True  # delete_model asks the service: admins only, sessions without bookings
    details_template = "admin/loafy/session_details.html"
    column_list = (
        "title",
        "starts_at",
        "location",
        "fill",
        "price",
        "status",
        "created_by",
    )
    column_details_list = (
        "title",
        "description",
        "location",
        "starts_at",
        "ends_at",
        "max_slots",
        "available_slots",
        "price",
        "status",
        "booking_opens_at",
        "early_access_opens_at",
        "allow_pay_at_door",
        "created_by",
        "created_at",
        "updated_at",
        "cancelled_at",
    )
    column_labels = {"starts_at": _l("Starts (club time)"), "fill": _l("Booked"), "price": _l("Price")}
    column_default_sort = None  # get_query: the next sessions first, then the past, latest first
    code_columns = {**StaffModelView.code_columns, "status": "session_status"}
    phone_columns = ("title", "starts_at", "fill")
    column_sortable_list = ("title", "starts_at", "price", "status")
    column_searchable_list = ("title", "location")
    named_filter_urls = True
    column_filters = (
        FilterEqual(ClubSession.status, _l("Status"), options=choices("session_status", SESSION_STATUSES)),
        LocalDateFilter(ClubSession.starts_at, _l("Date")),
    )

    def _time(view, context, model, name):
        return local_time(getattr(model, name), "staff")

    column_formatters = {
        "starts_at": _time,
        "ends_at": _time,
        "booking_opens_at": _time,
        "early_access_opens_at": _time,
        "created_at": _time,
        "updated_at": _time,
        "cancelled_at": _time,
        "price": lambda v, c, m, n: vnd(m.price),
        "fill": _fill,
    }

    def get_query(self):
        # The creator comes in the same query: no query per row. Staff look for the next sessions
        # first: those not yet over, soonest first, then the past ones, latest first.
        not_over = ClubSession.ends_at >= now()
        return (
            ClubSession.select(ClubSession, User)
            .join(User, JOIN.LEFT_OUTER, on=ClubSession.created_by)
            .order_by(
                Case(None, [(not_over, 0)], 1),
                Case(None, [(not_over, ClubSession.starts_at)]),
                ClubSession.starts_at.desc(),
                ClubSession.id,
            )
        )

    def get_count_query(self):
        return ClubSession.select()

    def is_action_allowed(self, name):
        return name != "delete" and super().is_action_allowed(name)

    # Create / edit go through the services ---------------------------------------------------

    def edit_form(self, obj=None):
        if request.method == "POST":
            return self._edit_form_class(get_form_data())
        return self._edit_form_class(None, data=model_to_data(obj) if obj is not None else None)

    def create_model(self, form):
        try:
            return staff.create_session(actor(), form_to_data(form), now())
        except LoafyError as exc:
            flash_error(exc)
            return False

    def update_model(self, form, model):
        try:
            staff.update_session(actor(), model.id, form_to_data(form, stored=model), now())
        except LoafyError as exc:
            flash_error(exc)
            return False
        return True

    def delete_model(self, model):
        try:
            staff.delete_session(actor(), model.id, now())
        except LoafyError as exc:
            flash_error(exc)
            return False
        return True

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        club_session = self.get_one(request.args.get("id"))
        if club_session is not None:
            if club_session.status == "cancelled":
                flash(_("This session was cancelled and cannot be edited."), "error")
                return redirect(self.get_url(".details_view", id=club_session.id))
            if not can_edit(actor(), club_session):
                flash(_("You cannot edit this session: organizers edit their own drafts only."), "error")
                return redirect(self.get_url(".details_view", id=club_session.id))
        return super().edit_view()

    # Actions (POST with the CSRF token the app checks on every POST) -----------------------

    @expose("/publish/", methods=("POST",))
    def publish(self):
        session_id = as_id(request.form.get("id"))
        if session_id is None:
            flash(_("That session does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        current = self.get_one(session_id)
        already = current is not None and current.status == "published"  # a second click, a stale page
        try:
            staff.update_session(actor(), session_id, {"status": "published"}, now())
            if already:
                flash(_("The session is already published."), "info")
            else:
                flash(_("The session is published."), "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=session_id))

    @expose("/cancel/", methods=("POST",))
    def cancel(self):
        if not has_role(actor(), "admin"):
            return deny()
        session_id = as_id(request.form.get("id"))
        if session_id is None:
            flash(_("That session does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        reason = (request.form.get("reason") or "").strip()[:200]
        try:
            staff.cancel_session(actor(), session_id, now(), reason=reason)
            flash(_("The session is cancelled; its bookings were cancelled and paid ones marked for refund."))
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=session_id))

    @expose("/<int:session_id>/roster.csv")
    def roster_csv(self, session_id):
        """The players of a session (active bookings), for the door; organizers their own sessions."""
        club_session = self.get_one(session_id)
        if club_session is None:
            flash(_("That session does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        if not staff.can_handle_session(actor(), club_session):
            return deny()
        rows = (
            Booking.select(Booking, User)
            .join(User)
            .where((Booking.club_session == club_session.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
            .order_by(User.name, Booking.id)
        )
        # Named by the club's date: a 06:00 session in Ho Chi Minh City starts the day before in UTC.
        filename = f"roster-{club_session.id}-{to_local(club_session.starts_at):%Y%m%d}.csv"
        return exports.csv_response(
            filename, exports.ROSTER_HEADER, lambda: (exports.roster_row(b) for b in rows.iterator())
        )

    @expose("/waitlist/remove/", methods=("POST",))
    def remove_waitlist_entry(self):
        """Take a player off a session's waitlist (an unpaid offer is declined and passed on); audited."""
        entry_id = as_id(request.form.get("id"))
        session_id = as_id(request.form.get("session_id"))
        default = self.get_url(".details_view", id=session_id) if session_id else self.get_url(".index_view")
        if entry_id is None:
            flash(_("That waitlist place does not exist."), "error")
            return back(default)
        try:
            waitlist.leave_waitlist(actor(), entry_id, now())
            flash(_("Removed from the waitlist."), "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(default)

    # Details-page helpers ------------------------------------------------------------------

    def waitlist_rows(self, club_session):
        """The session's waitlist in order, for the staff who handle it (else nothing)."""
        if not staff.can_handle_session(actor(), club_session):
            return []
        return waitlist.list_entries(actor(), club_session.id)

    def waitlist_offers(self, club_session):
        if not staff.can_handle_session(actor(), club_session):
            return []
        return waitlist.session_offers(club_session)

    def page_actions(self, club_session):
        """What the signed-in staff member may do on this session's page."""
        user = actor()
        editable = can_edit(user, club_session) and club_session.status != "cancelled"
        return {
            "edit": editable,
            "publish": editable and club_session.status == "draft",
            "cancel": user.is_admin and club_session.status != "cancelled",
            "roster": staff.can_handle_session(user, club_session),
        }

    def attendance(self, club_session):
        """door: (people checked in, people expected) of the session."""
        return checkin.session_people(club_session.id, now())

    def booking_counts(self, club_session):
        rows = (
            Booking.select(Booking.status, Booking.payment_status)
            .where(Booking.club_session == club_session.id)
            .tuples()
        )
        counts = {}
        for status, payment_status in rows:
            counts[status] = counts.get(status, 0) + 1
            if payment_status == "paid" and status in ACTIVE_BOOKING_STATUSES:
                counts["paid"] = counts.get("paid", 0) + 1
        return counts
