"""The club's time zone, for messages that name a time. Stored times stay naive UTC."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_state = {"tz": ZoneInfo("Asia/Ho_Chi_Minh"), "frozen": None}


def utcnow():
    """Now as naive UTC, the form every stored time takes (tests may freeze it)."""
    return _state["frozen"] or datetime.now(UTC).replace(tzinfo=None)


def freeze(value):
    """Tests only: make utcnow() return `value` (None thaws it), so jobs see the test's `now`."""
    _state["frozen"] = value


def init_app(app):
    _state["tz"] = ZoneInfo(app.config["CLUB_TIMEZONE"])


def club_tz():
    return _state["tz"]


def to_local(value):
    """A naive-UTC time as an aware time in the club's zone."""
    return value.replace(tzinfo=UTC).astimezone(_state["tz"]) if value else None


def format_local(value, fmt="%H:%M %d/%m/%Y"):
    return to_local(value).strftime(fmt) if value else ""


def format_vnd(amount):
    """150000 -> '150.000 ₫' (Vietnamese grouping; VND has no minor unit)."""
    return f"{int(amount):,}".replace(",", ".") + " ₫"
