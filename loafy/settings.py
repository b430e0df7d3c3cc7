"""Club settings (the seed's config table), typed and validated. Admins edit them."""

import json
import logging
import time

from flask_babel import lazy_gettext as _l  # labels shown to staff, in their language

from loafy.db import db
from loafy.errors import ValidationError
from loafy.models import PAYMENT_METHODS, Setting, utcnow

log = logging.getLogger(__name__)


def _int_between(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip())
            except ValueError:
                raise ValidationError(f"Enter a whole number between {low} and {high}.")
        if not low <= value <= high:
            raise ValidationError(f"Enter a whole number between {low} and {high}.")
        return value

    return check


def _boolean(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise ValidationError("Choose yes or no.")


def _payment_methods(value):
    items = value.split(",") if isinstance(value, str) else list(value)
    methods = [str(m).strip() for m in items if str(m).strip()]
    unknown = [m for m in methods if m not in PAYMENT_METHODS]
    if unknown:
        raise ValidationError(f"Unknown payment method: {unknown[0]}.")
    if not methods:
        raise ValidationError("Enable at least one payment method.")
    return [m for m in PAYMENT_METHODS if m in methods]


def _text(max_length):
    def check(value):
        value = str(value or "").strip()
        if len(value) > max_length:
            raise ValidationError(f"Keep it under {max_length} characters.")
        return value

    return check


def _bank_bin(value):
    """The bank's 6-digit BIN (NAPAS), or empty: anything else would silently drop the VietQR code."""
    value = str(value or "").strip()
    if value and not (value.isascii() and value.isdigit() and len(value) == 6):
        raise ValidationError("Enter the bank's 6-digit BIN (for example 970436), or leave it empty.")
    return value


# key: (default, validator, label)
SETTINGS = {
    "club_name": ("Loafy Club", _text(100), _l("Club name")),
    "payment_deadline_minutes": (
        30,
        _int_between(5, 24 * 60),
        _l("Minutes to pay before a spot is released"),
    ),
    "max_guests": (3, _int_between(0, 3), _l("Guests a player may bring")),
    "cancellation_cutoff_hours": (
        24,
        _int_between(0, 24 * 14),
        _l("Players may cancel up to this many hours before"),
    ),
    "refund_on_cancel": (True, _boolean, _l("Refund paid bookings cancelled before the cutoff")),
    "payment_methods": (
        ["stripe", "bank_transfer", "cash"],
        _payment_methods,
        _l("Payment methods offered"),
    ),
    "bank_name": ("Vietcombank", _text(100), _l("Bank for transfers (VietQR)")),
    "bank_bin": ("970436", _bank_bin, _l("Bank BIN for VietQR")),
    "bank_account_number": ("0123456789", _text(30), _l("Bank account number")),
    "bank_account_name": ("LOAFY CLUB", _text(100), _l("Bank account holder")),
    # waitlist: how long an offer waits for payment, by how soon the session starts
    "waitlist_offer_minutes_far": (
        120,
        _int_between(5, 24 * 60),
        _l("Minutes to take a waitlist offer (session over 24 h away)"),
    ),
    "waitlist_offer_minutes_near": (
        30,
        _int_between(5, 24 * 60),
        _l("Minutes to take a waitlist offer (session 2–24 h away)"),
    ),
    "waitlist_offer_minutes_last": (
        10,
        _int_between(1, 24 * 60),
        _l("Minutes to take a waitlist offer (session under 2 h away)"),
    ),
    # door
    "checkin_opens_hours": (2, _int_between(0, 48), _l("Check-in at the door opens this many hours before")),
}
# calendar: the attendance policy (loafy/calendar/attendance.py)
SETTINGS.update(
    {
        "attendance_policy": (
            True,
            _boolean,
            _l("Block online booking after too many no-shows and late cancels"),
        ),
        "no_show_grace_hours": (
            2,
            _int_between(0, 72),
            _l("Hours after a session ends before no-shows are marked"),
        ),
        "strike_limit": (
            3,
            _int_between(1, 50),
            _l("Strikes (no-shows, late cancels) that block online booking"),
        ),
        "strike_window_days": (60, _int_between(1, 365), _l("Days within which strikes count")),
        "strike_block_days": (14, _int_between(1, 365), _l("Days online booking stays blocked")),
    }
)


def get_settings():
    """Every setting with its default filled in: one query (plain SQL: every booking reads it)."""
    values = {key: default for key, (default, _, _) in SETTINGS.items()}
    for key, value in db.execute_sql('SELECT "key", "value" FROM settings').fetchall():
        if key in SETTINGS:
            try:
                values[key] = json.loads(value)
            except ValueError:
                log.warning("setting %s holds unreadable JSON; using the default", key)
    return values


# The booking hot path's copy, per process: a change made in this process is seen at once, one made
# in another within a second (every booking read the settings table before: a round trip each).
SETTINGS_MAX_AGE_SECONDS = 1.0
_recent = {"values": None, "read_at": float("-inf")}


def recent_settings():
    """get_settings(), read at most SETTINGS_MAX_AGE_SECONDS ago by this process."""
    values, read_at = _recent["values"], _recent["read_at"]
    if values is None or time.monotonic() - read_at >= SETTINGS_MAX_AGE_SECONDS:
        values = get_settings()
        _recent.update(values=values, read_at=time.monotonic())
    return values


def forget_recent_settings():
    _recent.update(values=None, read_at=float("-inf"))


def get_setting(key):
    default, _, _ = SETTINGS[key]
    row = Setting.get_or_none(Setting.key == key)
    return json.loads(row.value) if row else default


def update_settings(changes, now=None):
    """Validate every change first, then store them all in one transaction; returns the settings."""
    clean = {}
    for key, value in changes.items():
        if key not in SETTINGS:
            raise ValidationError(f"Unknown setting: {key}.", field=key)
        try:
            clean[key] = SETTINGS[key][1](value)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=key)
    now = now or utcnow()
    with db.atomic():
        for key, value in clean.items():
            (
                Setting.insert(key=key, value=json.dumps(value), updated_at=now)
                .on_conflict(
                    conflict_target=[Setting.key],
                    update={Setting.value: json.dumps(value), Setting.updated_at: now},
                )
                .execute()
            )
    forget_recent_settings()
    return get_settings()
