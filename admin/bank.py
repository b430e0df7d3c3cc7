"""Bank transfers (admins): the queue of transfers that need a person -- unmatched, underpaid,
overpaid, duplicate, refund due -- with the payer's details; assign one to a booking or pass, or
record that it was dealt with (a refund sent, with the bank's reference). Rules in loafy.money.bank."""

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_babel import gettext as _

from admin.base import StaffOnly, actor, flash_error, now
from loafy.errors import LoafyError, as_id
from loafy.models import BankTransaction
from loafy.money import bank
from loafy.web.labels import word

RECENT = 100


class BankView(StaffOnly, BaseView):
    roles = ("admin",)

    @expose("/")
    def index(self):
        show_all = request.args.get("show") == "all"
        if show_all:
            rows = list(
                BankTransaction.select()
                .order_by(BankTransaction.received_at.desc(), BankTransaction.id.desc())
                .limit(RECENT)
            )
        else:
            rows = list(bank.queue_query())
        return self.render(
            "admin/loafy/bank.html",
            rows=rows,
            show_all=show_all,
            queue_size=bank.queue_size(),
            payer=bank.payer_details,
        )

    def _transaction_id(self):
        transaction_id = as_id(request.form.get("id"))
        if transaction_id is None:
            flash(_("That bank transaction does not exist."), "error")
        return transaction_id

    @expose("/assign/", methods=("POST",))
    def assign(self):
        transaction_id = self._transaction_id()
        if transaction_id is not None:
            try:
                row = bank.assign_transaction(
                    actor(), transaction_id, request.form.get("code", "")[:40], now()
                )
                flash(
                    _(
                        "Assigned to %(code)s: %(status)s.",
                        code=row.code,
                        status=word("bank_status", row.status),
                    ),
                    "success",
                )
            except LoafyError as exc:
                flash_error(exc)
        return redirect(self.get_url(".index"))

    @expose("/resolve/", methods=("POST",))
    def resolve(self):
        transaction_id = self._transaction_id()
        if transaction_id is not None:
            try:
                bank.resolve_transaction(
                    actor(),
                    transaction_id,
                    now(),
                    note=request.form.get("note", "")[:500],
                    refunded=request.form.get("refunded") == "1",
                    bank_reference=request.form.get("bank_reference", "")[:100],
                )
                flash(_("Done: the transfer left the queue."), "success")
            except LoafyError as exc:
                flash_error(exc)
        return redirect(self.get_url(".index"))
