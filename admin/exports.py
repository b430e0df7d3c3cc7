"""CSV downloads: UTF-8 with a BOM (so Excel shows Vietnamese), formula injection neutralised."""

import csv
import io

from flask import Response, stream_with_context

from loafy.db import connection
from loafy.web.formatting import local_time

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LOCAL_FORMAT = "%Y-%m-%d %H:%M"
CHUNK_ROWS = 500


def safe_cell(value):
    """Text a spreadsheet would run as a formula gets a leading apostrophe; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(filename, header, make_rows):
    """Stream the rows `make_rows()` yields (sequences) as a CSV download, read as it goes.

    The body is written after the view returned, when the request's teardown has closed its
    database connection: so the query runs here, on a connection of the stream's own.
    """

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(header)
        with connection():
            for n, row in enumerate(make_rows(), 1):
                writer.writerow([safe_cell(cell) for cell in row])
                if n % CHUNK_ROWS == 0:
                    yield buffer.getvalue().encode("utf-8")
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode("utf-8")

    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


BOOKING_HEADER = [
    "code",
    "player",
    "email",
    "session",
    "session_starts (club time)",
    "guests",
    "slots",
    "unit_price_vnd",
    "amount_vnd",
    "payment_method",
    "status",
    "payment_status",
    "booked_at (club time)",
    "checked_in_at (club time)",
    "checked_in_people",
]


def booking_row(booking):
    """One booking (selected with its user and session) as a CSV row."""
    return [
        booking.code,
        booking.user.name,
        booking.user.email,
        booking.club_session.title,
        local_time(booking.club_session.starts_at, LOCAL_FORMAT),
        booking.guest_count,
        booking.slots,
        booking.unit_price,
        booking.amount,
        booking.payment_method,
        booking.status,
        booking.payment_status,
        local_time(booking.created_at, LOCAL_FORMAT),
        local_time(booking.checked_in_at, LOCAL_FORMAT),
        booking.checked_in_people,
    ]


ROSTER_HEADER = [
    "code",
    "player",
    "email",
    "guests",
    "slots",
    "status",
    "payment_status",
    "payment_method",
    "amount_vnd",
    "checked_in_at (club time)",
    "checked_in_people",
]


def roster_row(booking):
    return [
        booking.code,
        booking.user.name,
        booking.user.email,
        booking.guest_count,
        booking.slots,
        booking.status,
        booking.payment_status,
        booking.payment_method,
        booking.amount,
        local_time(booking.checked_in_at, LOCAL_FORMAT),
        booking.checked_in_people,
    ]
