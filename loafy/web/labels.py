"""Words for the codes the database stores (states, methods, roles), in the reader's language.

One table for every face: the public pages, the staff area and the e-mails say `pending_payment` as
"Awaiting payment" / "Chờ thanh toán" from here. A code with no entry is shown as it is, so a test
that renders every staff page in Vietnamese finds it.
"""

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _lp

WORDS = {
    "booking_status": {
        "pending_payment": _l("Awaiting payment"),
        "confirmed": _l("Confirmed"),
        "cancelled": _l("Cancelled"),
        "expired": _l("Expired"),
    },
    "payment_status": {
        "unpaid": _l("Unpaid"),
        "paid": _l("Paid"),
        "refunded": _l("Refunded"),
        "failed": _l("Failed"),
    },
    "payment_method": {
        "stripe": _l("Card"),
        "bank_transfer": _l("Bank transfer (VietQR)"),
        "cash": _l("Cash at the door"),
        "pass": _l("Pass"),
    },
    "session_status": {
        "draft": _l("Draft"),
        "published": _l("Published"),
        "cancelled": _l("Cancelled"),
        "completed": _l("Completed"),
    },
    "role": {"player": _l("Player"), "organizer": _l("Organizer"), "admin": _l("Admin")},
    "yes_no": {True: _lp("boolean", "Yes"), False: _lp("boolean", "No")},
    "object_type": {
        "session": _l("Session"),
        "booking": _l("Booking"),
        "user": _l("Player"),
        "settings": _l("Settings"),
        "waitlist_entry": _l("Waitlist place"),
    },
    # waitlist
    "waitlist_status": {
        "waiting": _l("Waiting"),
        "offered": _l("Offer made"),
        "booked": _l("Booked"),
        "lapsed": _l("Offer lapsed"),
        "left": _l("Left"),
    },
    "booking_source": {"direct": _l("Booked directly"), "waitlist": _l("From the waitlist")},
    # What an audit row says happened (its `action`).
    "audit_action": {
        "session.create": _l("Created a session"),
        "session.update": _l("Changed a session"),
        "session.cancel": _l("Cancelled a session"),
        "session.delete": _l("Deleted a session"),
        "booking.create": _l("Booked"),
        "booking.mark_paid": _l("Recorded a payment"),
        "booking.check_in": _l("Checked in"),
        "booking.cancel": _l("Cancelled a booking"),
        "booking.refund": _l("Refunded a booking"),
        "booking.manual_refund": _l("Recorded money given back"),
        "user.set_role": _l("Changed a role"),
        "user.set_membership": _l("Changed a membership"),
        "settings.update": _l("Changed the settings"),
        "waitlist.remove": _l("Removed from a waitlist"),
    },
    "queue": {"default": _l("Bookings and payments"), "mail": _l("E-mails")},
    "ledger_kind": {"intent": _l("Card payment started"), "payment": _l("Payment"), "refund": _l("Refund")},
    # A ledger row's state: Stripe's words for intents and refunds, ours for the rest.
    "ledger_status": {
        "requires_payment_method": _l("Waiting for the card"),
        "requires_confirmation": _l("Waiting for the card"),
        "requires_action": _l("Waiting for the bank's check"),
        "processing": _l("Processing"),
        "succeeded": _l("Succeeded"),
        "canceled": _l("Cancelled"),
        "pending": _l("Pending"),
        "failed": _l("Failed"),
        "paid": _l("Paid"),
    },
    # The fixed notes staff actions leave on a ledger row.
    "ledger_note": {
        "marked paid by staff (cash)": _l("Marked paid by staff (cash)"),
        "marked paid by staff (bank_transfer)": _l("Marked paid by staff (bank transfer)"),
        "given back by staff": _l("Given back by staff"),
    },
    # What recording a payment did (loafy.booking.staff.mark_paid).
    "payment_outcome": {
        "confirmed": _l("Confirmed"),
        "reconfirmed": _l("Confirmed again after expiry"),
        "refund_due": _l("Spot gone: refund due"),
    },
    # The keys of an audit row's details.
    "audit_field": {
        "amount": _l("Amount"),
        "method": _l("Method"),
        "code": _l("Code"),
        "reason": _l("Reason"),
        "slots_released": _l("Spots released"),
        "title": _l("Title"),
        "from": _l("From"),
        "to": _l("To"),
        "outcome": _l("Outcome"),
        "until": _l("Until"),
        "price": _l("Price"),
        "max_slots": _l("Spots in all"),
        "status": _l("Status"),
        "location": _l("Location"),
        "starts_at": _l("Starts"),
        "ends_at": _l("Ends"),
        "description": _l("Description"),
        "by": _l("By"),
        "session": _l("Session"),
        "user": _l("Player"),
        "was": _l("Was"),
    },
}


def word(kind, code):
    """The reader's word for `code` of `kind` (see WORDS); the code itself when there is none."""
    if code is None:
        return ""
    return WORDS.get(kind, {}).get(code, code)


def choices(kind, codes):
    """(code, word) pairs for a select or a filter, in the order of `codes`."""
    return [(code, word(kind, code)) for code in codes]


def init_app(app):
    app.jinja_env.filters["word"] = lambda code, kind: word(kind, code)


# bank: what matching made of a bank transfer, and the staff actions on them.
WORDS["bank_status"] = {
    "received": _l("Waiting to be matched"),
    "matched": _l("Matched: paid"),
    "underpaid": _l("Underpaid"),
    "overpaid": _l("Overpaid"),
    "duplicate": _l("Paid twice"),
    "refund_due": _l("Refund due"),
    "unmatched": _l("No booking code"),
    "ignored": _l("Not for the club's account"),
}
WORDS["audit_action"].update(
    {
        "booking.bank_transfer_matched": _l("Bank transfer matched"),
        "booking.bank_transfer_assigned": _l("Bank transfer assigned by staff"),
        "bank.assign": _l("Assigned a bank transfer"),
        "bank.resolve": _l("Dealt with a bank transfer"),
    }
)
WORDS["object_type"]["bank_transaction"] = _l("Bank transfer")
# The fixed resolutions the service writes (staff notes are shown as typed).
WORDS["bank_resolution"] = {
    "completed by a later transfer": _l("completed by a later transfer"),
    "done": _l("nothing more to do"),
}
WORDS["ledger_note"].update(
    {
        "bank transfer, matched by its code": _l("Bank transfer, matched by its code"),
        "bank transfer, assigned by staff": _l("Bank transfer, assigned by staff"),
        "short bank transfer: not paid yet": _l("Short bank transfer: not paid yet"),
    }
)
WORDS["audit_field"].update(
    {
        "transaction": _l("Transfer"),
        "memo": _l("Memo"),
        "refunded": _l("Refund sent"),
        "refund_amount": _l("Refunded"),
        "bank_reference": _l("Bank reference"),
        "note": _l("Note"),
    }
)
