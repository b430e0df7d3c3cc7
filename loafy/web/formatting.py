"""Jinja filters for every face: times in the club's time zone and the reader's language, money as VND."""

from datetime import UTC

from babel.dates import format_datetime
from flask_babel import gettext

from loafy.clock import club_tz, format_vnd, to_local, utcnow
from loafy.web.locale import DEFAULT, current_locale

# Named date patterns per language (CLDR syntax); 24-hour clock in both.
PATTERNS = {
    "vi": {
        "card": "EEEE, dd/MM · HH:mm",
        "long": "EEEE, dd/MM/yyyy · HH:mm",
        "short": "HH:mm, dd/MM",
        "date": "dd/MM/yyyy",
        "time": "HH:mm",
        "staff": "EEE dd/MM/yyyy HH:mm",
        "staff_short": "EEE dd/MM HH:mm",
    },
    "en": {
        "card": "EEE d MMM · HH:mm",
        "long": "EEEE d MMMM yyyy · HH:mm",
        "short": "HH:mm, d MMM",
        "date": "d MMM yyyy",
        "time": "HH:mm",
        "staff": "EEE dd/MM/yyyy HH:mm",
        "staff_short": "EEE dd/MM HH:mm",
    },
}


def _locale():
    code = current_locale()  # the default outside a request
    return code if code in PATTERNS else DEFAULT


def local_time(value, fmt="card"):
    """A stored naive-UTC time shown in the club's time zone: a named pattern in the reader's
    language ("card", "long", "short", "date", "time"), or a strftime format (contains "%")."""
    if value is None:
        return ""
    aware = to_local(value)
    if "%" in fmt:
        return aware.strftime(fmt)
    locale = _locale()
    return format_datetime(aware, PATTERNS[locale].get(fmt, fmt), tzinfo=club_tz(), locale=locale)


def vnd(amount):
    """150000 -> '150.000 ₫' in both languages (Vietnamese grouping; VND has no minor unit)."""
    return "" if amount is None else format_vnd(amount)


def price(amount):
    """A price or an amount to pay: "Free" ("Miễn phí") for nothing, else as VND."""
    if amount is None:
        return ""
    return gettext("Free") if amount == 0 else format_vnd(amount)


def seconds_left(value):
    """Whole seconds from the server's now until `value` (0 when past): countdowns trust no phone clock."""
    if value is None:
        return 0
    return max(0, int((value - utcnow()).total_seconds()))


def iso_utc(value):
    return value.replace(tzinfo=UTC).isoformat() if value else None


def init_app(app):
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(vnd, "vnd")
    app.add_template_filter(price, "price")
    app.add_template_filter(iso_utc, "iso_utc")
    app.add_template_filter(seconds_left, "seconds_left")
