"""Jinja filters: times in the club's time zone, money as VND."""

from datetime import UTC
from zoneinfo import ZoneInfo

from flask import current_app


def local_time(value, fmt="%a %d/%m %H:%M"):
    """A stored naive-UTC time shown in the club's time zone."""
    if value is None:
        return ""
    tz = ZoneInfo(current_app.config["CLUB_TIMEZONE"])
    return value.replace(tzinfo=UTC).astimezone(tz).strftime(fmt)


def vnd(amount):
    """150000 -> '150.000 ₫' (Vietnamese grouping; VND has no minor unit)."""
    if amount is None:
        return ""
    return f"{int(amount):,}".replace(",", ".") + " ₫"


def iso_utc(value):
    return value.replace(tzinfo=UTC).isoformat() if value else None


def init_app(app):
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(vnd, "vnd")
    app.add_template_filter(iso_utc, "iso_utc")
