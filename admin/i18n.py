"""The staff area's words: column names, Flask-Admin's own strings corrected, codes shown as words.

Flask-Admin translates its buttons and messages with its own catalogue, whose Vietnamese calls a
record "kỷ lục" (a sporting record). Ours (translations/vi/LC_MESSAGES/admin.po, domain "admin")
is merged after it, so every word we give wins and the rest stays Flask-Admin's.
"""

from pathlib import Path

from flask_admin import babel as admin_babel
from flask_admin import translations as admin_translations
from flask_babel import lazy_gettext as _l

OUR_TRANSLATIONS = str(Path(__file__).resolve().parent.parent / "translations")

# Column names for every staff list and details page (a view's own column_labels win).
FIELD_LABELS = {
    "code": _l("Code"),
    "user": _l("Player"),
    "club_session": _l("Session"),
    "starts": _l("Session starts"),
    "guest_count": _l("Guests"),
    "slots": _l("Spots"),
    "unit_price": _l("Price per person"),
    "amount": _l("Amount"),
    "payment_method": _l("Payment method"),
    "status": _l("Status"),
    "payment_status": _l("Payment"),
    "payment_deadline": _l("Pay by"),
    "stripe_payment_intent_id": _l("Stripe payment"),
    "checked_in_at": _l("Checked in"),
    "checked_in_people": _l("People in"),  # door
    "created_at": _l("Created"),
    "confirmed_at": _l("Confirmed"),
    "cancelled_at": _l("Cancelled"),
    "expired_at": _l("Expired"),
    "refund_due_at": _l("Refund due since"),
    "title": _l("Title"),
    "description": _l("Description"),
    "location": _l("Location"),
    "starts_at": _l("Starts"),
    "ends_at": _l("Ends"),
    "max_slots": _l("Spots in all"),
    "available_slots": _l("Spots left"),
    "price": _l("Price per person"),
    "booking_opens_at": _l("Booking opens"),
    "early_access_opens_at": _l("Members' early access"),
    "allow_pay_at_door": _l("Cash at the door"),
    "created_by": _l("Created by"),
    "name": _l("Name"),
    "email": _l("E-mail"),
    "phone": _l("Phone"),
    "role": _l("Role"),
    "membership_until": _l("Member until"),
    "active": _l("Active"),
    "last_login_at": _l("Last sign-in"),
    "actor": _l("Who"),
    "action": _l("What"),
    "object_type": _l("Object"),
    "object_id": _l("Object id"),
    "details": _l("Details"),
    "updated_at": _l("Updated"),
    # experience: passes, waitlist, bank
    "product": _l("Product"),
    "kind": _l("Kind"),
    "credits": _l("Credits"),
    "credits_total": _l("Credits"),
    "duration_days": _l("Days (period)"),
    "validity_days": _l("Valid for days (pack)"),
    "early_access": _l("Early access"),
    "renewable": _l("Auto-renew by card"),
}


class _OurWordsLast(type(admin_babel.domain)):
    """Flask-Admin's domain, reading its catalogue and then ours (a later catalogue overrides)."""

    @property
    def translation_directories(self):
        return [admin_translations.__path__[0], OUR_TRANSLATIONS]


def init_app(app):
    domain = admin_babel.domain
    if type(domain) is not _OurWordsLast:
        domain.__class__ = _OurWordsLast  # the instance Flask-Admin's modules already hold
        domain.cache.clear()
