"""Bookings: a read-only list with filters and search, a detail page with the ledger, and staff actions.

No create, no edit, no delete: money and status change only through loafy.booking.staff (the booking and
payment services plus the audit row). Organizers see the bookings of the sessions they created.
"""

from flask import flash, has_request_context, redirect, request
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from peewee import JOIN, ModelSelect

from admin import exports
from admin.base import IdEqualFilter, LocalDateFilter, StaffModelView, actor, back, flash_error, now
from loafy.booking import staff
from loafy.booking.actions import allowed_actions
from loafy.clock import format_vnd, to_local
from loafy.door import tickets
from loafy.errors import LoafyError, as_id
from loafy.models import (
    BOOKING_STATUSES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    BankTransaction,
    Booking,
    ClubSession,
    LedgerEntry,
    User,
)
from loafy.money import refunds
from loafy.web.formatting import local_time, vnd
from loafy.web.guards import deny, has_role
from loafy.web.labels import choices

SESSION_CHOICES = 200  # the newest sessions offered in the session filter
# The list counts at most this many rows and shows "10000+" above it: an exact COUNT of 200,000
# bookings took 20 ms on PostgreSQL (bench/scale.py), and past 200 pages staff filter instead.
COUNT_CAP = 10_000


def _session_options():
    """Read per request (Flask-Admin would otherwise query once, when the app is built)."""
    if not has_request_context():
        return []
    rows = (
        ClubSession.select(ClubSession.id, ClubSession.title, ClubSession.starts_at)
        .order_by(ClubSession.starts_at.desc())
        .limit(SESSION_CHOICES)
        .tuples()  # not 200 model instances on every list page: a quarter fewer garbage collections
    )
    return [(str(id_), f"{title} · {local_time(starts, '%d/%m/%Y %H:%M')}") for id_, title, starts in rows]


def _time(view, context, model, name):
    return local_time(getattr(model, name), "%d/%m/%Y %H:%M")


class _BookingList(ModelSelect):
    """The list's query, whose COUNT stops at COUNT_CAP + 1 rows and, unfiltered, is of bookings alone
    (SQLite would join every row first).

    The session and player keys are NOT NULL foreign keys: the joins never change the number of rows.
    """

    def count(self, database=None, clear_limit=False):
        query = Booking.select() if self._where is None else self
        return ModelSelect.count(query.limit(COUNT_CAP + 1), database)


class BookingView(StaffModelView):
    can_create = False
    can_edit = False
    can_delete = False
    list_template = "admin/loafy/booking_list.html"
    details_template = "admin/loafy/booking_details.html"
    column_list = (
        "code",
        "user",
        "club_session",
        "starts",
        "slots",
        "amount",
        "payment_method",
        "status",
        "payment_status",
        "payment_deadline",
        "checked_in_at",
        "checked_in_people",  # door
        "created_at",
    )
    column_details_list = (
        "code",
        "user",
        "club_session",
        "starts",
        "guest_count",
        "slots",
        "unit_price",
        "amount",
        "payment_method",
        "status",
        "payment_status",
        "payment_deadline",
        "stripe_payment_intent_id",
        "checked_in_at",
        "checked_in_people",  # door
        "created_at",
        "confirmed_at",
        "cancelled_at",
        "expired_at",
        "refund_due_at",
    )
    code_columns = {**StaffModelView.code_columns, "status": "booking_status"}
    phone_columns = ("code", "user", "status", "payment_status")
    column_sortable_list = ("code", "created_at", "amount", "status", "payment_status")
    column_default_sort = ("created_at", True)
    column_searchable_list = (Booking.code, User.name, User.email)
    named_filter_urls = True
    column_filters = (
        IdEqualFilter(Booking.club_session, _l("Session"), options=_session_options),
        FilterEqual(Booking.status, _l("Status"), options=choices("booking_status", BOOKING_STATUSES)),
        FilterEqual(
            Booking.payment_status, _l("Payment"), options=choices("payment_status", PAYMENT_STATUSES)
        ),
        FilterEqual(Booking.payment_method, _l("Method"), options=choices("payment_method", PAYMENT_METHODS)),
        LocalDateFilter(ClubSession.starts_at, _l("Session date")),
        LocalDateFilter(Booking.created_at, _l("Booked")),
    )
    column_formatters = {
        "amount": lambda v, c, m, n: vnd(m.amount),
        "unit_price": lambda v, c, m, n: vnd(m.unit_price),
        "starts": lambda v, c, m, n: local_time(m.club_session.starts_at, "%d/%m/%Y %H:%M"),
        "club_session": lambda v, c, m, n: m.club_session.title,
        "payment_deadline": _time,
        "checked_in_at": _time,
        "checked_in_people": lambda v, c, m, n: f"{m.checked_in_people}/{m.slots}",  # door: of the party
        "created_at": _time,
        "confirmed_at": _time,
        "cancelled_at": _time,
        "expired_at": _time,
        "refund_due_at": _time,
    }

    def get_query(self):
        """Bookings with their session and player in one query; organizers see their sessions' only."""
        # LEFT joins give the same rows (both keys are NOT NULL foreign keys) but let PostgreSQL drop
        # the joins from the list's COUNT when no condition uses them (bench/scale.py).
        query = (
            _BookingList(Booking, (Booking, ClubSession, User))
            .join(ClubSession, JOIN.LEFT_OUTER)
            .switch(Booking)
            .join(User, JOIN.LEFT_OUTER)
        )
        user = actor()
        if not user.is_admin:
            query = query.where(ClubSession.created_by == user.id)
        return query

    def _handle_join(self, query, field, joins):
        return query  # get_query already joins the session and the player

    def _get_filter_groups(self):
        self._refresh_filters_cache()  # the session choices are data: one query per page
        return super()._get_filter_groups()

    def get_one(self, id):
        number = as_id(id)
        return None if number is None else self.get_query().where(Booking.id == number).first()

    def render(self, template, **kwargs):
        # The pager keeps the capped number (201 pages); the tab says "List (10000+)", ungrouped like
        # Flask-Admin's own count (the staff area is in Vietnamese and English).
        count = kwargs.get("count")
        if count is not None and count > COUNT_CAP:
            kwargs["count"] = f"{COUNT_CAP}+"
        return super().render(template, **kwargs)

    # Detail page -----------------------------------------------------------------------------

    def ledger_for(self, booking):
        return list(
            LedgerEntry.select(LedgerEntry, User)
            .join(User, JOIN.LEFT_OUTER, on=LedgerEntry.recorded_by)
            .where(LedgerEntry.booking == booking.id)
            .order_by(LedgerEntry.created_at, LedgerEntry.id)
        )

    def refunds_waiting_for(self, booking):
        """Card refunds asked for and not yet carried out at Stripe (the settle sweep sends them)."""
        return list(refunds.pending_refund_requests(booking.id))

    def bank_for(self, booking):
        """The bank transfers matched or assigned to this booking (the bank queue has the rest)."""
        return list(
            BankTransaction.select()
            .where((BankTransaction.target_kind == "booking") & (BankTransaction.target_id == booking.id))
            .order_by(BankTransaction.received_at, BankTransaction.id)
        )

    def can_regenerate_ticket(self, booking):
        """door: staff of the booking's session may give it a new ticket."""
        return staff.can_handle_session(actor(), booking.club_session)

    def page_actions(self, booking):
        """The buttons: Core's answer for this staff member, the same rules the actions apply."""
        return allowed_actions(actor(), booking, now())

    # Actions ---------------------------------------------------------------------------------

    def _act(self, operation, success, admin_only=False):
        if admin_only and not has_role(actor(), "admin"):
            return deny()
        booking_id = as_id(request.form.get("id"))
        if booking_id is None:
            flash(_("That booking does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        try:
            message = success(operation(booking_id))
            flash(message, "success")
        except LoafyError as exc:
            flash_error(exc)
        return back(self.get_url(".details_view", id=booking_id))

    @expose("/mark-paid/", methods=("POST",))
    def mark_paid(self):
        method = request.form.get("method", "")
        outcomes = {
            "confirmed": _l("Payment recorded; the booking is confirmed."),
            "reconfirmed": _l("Payment recorded; the expired booking is confirmed again."),
            "refund_due": _l("Payment recorded, but the spot is gone: the money is marked for refund."),
        }
        return self._act(
            lambda booking_id: staff.mark_paid(actor(), booking_id, method, now()),
            lambda outcome: str(outcomes.get(outcome) or _("Payment recorded.")),
        )

    @expose("/check-in/", methods=("POST",))
    def check_in(self):
        return self._act(
            lambda booking_id: staff.check_in(actor(), booking_id, now()),
            lambda booking: _("%(code)s is checked in.", code=booking.code),
        )

    @expose("/regenerate-ticket/", methods=("POST",))
    def regenerate_ticket(self):
        """door: a new ticket secret; the old QR code and link stop working."""
        return self._act(
            lambda booking_id: tickets.regenerate_ticket(actor(), booking_id, now()),
            lambda booking: _("New ticket for %(code)s: the old QR code no longer works.", code=booking.code),
        )

    @expose("/cancel/", methods=("POST",))
    def cancel(self):
        reason = (request.form.get("reason") or "").strip()[:200]
        return self._act(
            lambda booking_id: staff.cancel_booking(actor(), booking_id, now(), reason=reason),
            lambda booking: (
                _("%(code)s is cancelled and marked for refund.", code=booking.code)
                if booking.refund_due_at
                else _("%(code)s is cancelled.", code=booking.code)
            ),
        )

    @expose("/refund/", methods=("POST",))
    def refund(self):
        return self._act(
            lambda booking_id: staff.refund_booking(actor(), booking_id, now()),
            lambda _result: _("The refund was sent."),
            admin_only=True,
        )

    @expose("/manual-refund/", methods=("POST",))
    def manual_refund(self):
        method = request.form.get("method", "")
        return self._act(
            lambda booking_id: staff.record_manual_refund(actor(), booking_id, method, now()),
            lambda amount: _("Recorded: %(amount)s given back.", amount=format_vnd(amount)),
            admin_only=True,
        )

    # Export ----------------------------------------------------------------------------------

    @expose("/export.csv")
    def export_csv(self):
        """Every booking matching the list's current search and filters (not only the page shown)."""
        args = self._get_list_extra_args()
        column = self._get_column_by_idx(args.sort)
        sort_column = column[0] if column is not None else None
        _count, query = self.get_list(
            None, sort_column, args.sort_desc, args.search, args.filters, execute=False, page_size=0
        )
        return exports.csv_response(
            f"bookings-{to_local(now()):%Y%m%d-%H%M}.csv",  # club time, like every time staff see
            exports.BOOKING_HEADER,
            lambda: (exports.booking_row(b) for b in query.iterator()),
        )
