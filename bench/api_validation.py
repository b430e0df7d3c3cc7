"""What declaring the API with pydantic + spectree costs on the booking path (POST /api/bookings).

    .venv/bin/python bench/api_validation.py [--rounds 5] [--n 20000]

Times, in µs of one core per request, each part the declarations replaced: checking the body
(415/400, then the fields), reading a booking into its answer, and spectree's wrapper around the
view (CPU time of this process). "before" is the hand-written code of commit 1d850f2 (copied below, as it was); "after" is
the code in public/. No database: a booking and its session are built in memory, so the figures
are the validation's own cost (only the club's settings are read once, from a fresh SQLite file). Prints the best of N rounds (the least disturbed by other work).
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import jsonify, request
from werkzeug.exceptions import BadRequest

from bench.common import machine
from loafy.app import create_app
from loafy.clock import to_local
from loafy.db import db
from loafy.errors import ValidationError
from loafy.migrations import upgrade
from loafy.models import Booking, ClubSession
from public.api_schemas import Booking as BookingAnswer
from public.api_schemas import NewBooking, answer, endpoint
from public.api_spec import spec
from public.input_checks import require_json

BODY = json.dumps({"session_id": 12, "guest_count": 1, "payment_method": "stripe"})
NOW = datetime(2026, 11, 24, 3, 0, 0)


# --- before: the hand-written parsers and serializers of public/api.py at 1d850f2 ----------------


def old_json_body():
    require_json()
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest()
    if not isinstance(data, dict):
        raise BadRequest()
    return data


def old_whole_number(data, name, default=None):
    value = data.get(name, default)
    if value is None:
        raise ValidationError(f"{name} is required.", field=name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number.", field=name)
    return value


def iso_utc(value):
    from datetime import UTC

    return value.replace(tzinfo=UTC).isoformat() if value else None


def local_iso(value):
    local = to_local(value)
    return local.isoformat() if local else None


def old_session_summary(club_session):
    return {
        "id": club_session.id,
        "title": club_session.title,
        "location": club_session.location,
        "status": club_session.status,
        "starts_at": iso_utc(club_session.starts_at),
        "starts_at_local": local_iso(club_session.starts_at),
        "ends_at": iso_utc(club_session.ends_at),
    }


def old_booking_json(booking):
    return {
        "id": booking.id,
        "code": booking.code,
        "user_id": booking.user_id,
        "status": booking.status,
        "payment_status": booking.payment_status,
        "payment_method": booking.payment_method,
        "payment_deadline": iso_utc(booking.payment_deadline),
        "guest_count": booking.guest_count,
        "slots": booking.slots,
        "unit_price": booking.unit_price,
        "amount": booking.amount,
        "currency": "vnd",
        "created_at": iso_utc(booking.created_at),
        "confirmed_at": iso_utc(booking.confirmed_at),
        "cancelled_at": iso_utc(booking.cancelled_at),
        "expired_at": iso_utc(booking.expired_at),
        "checked_in_at": iso_utc(booking.checked_in_at),
        "session": old_session_summary(booking.club_session),
    }


# --- the parts, before and after -----------------------------------------------------------------


def a_booking():
    club_session = ClubSession(
        id=12,
        title="Cầu lông tối thứ Ba",
        location="Nhà thi đấu Cầu Giấy",
        status="published",
        starts_at=NOW + timedelta(days=2),
        ends_at=NOW + timedelta(days=2, hours=2),
    )
    return Booking(
        id=4321,
        code="LB-ABCDE",
        user=77,
        club_session=club_session,
        status="pending_payment",
        payment_status="unpaid",
        payment_method="stripe",  # the card answer: a transfer's also carries the bank details (newer)
        payment_deadline=NOW + timedelta(hours=24),
        guest_count=1,
        slots=2,
        unit_price=120_000,
        amount=240_000,
        created_at=NOW,
    )


def check_before():
    data = old_json_body()
    return old_whole_number(data, "session_id"), data.get("guest_count", 0), data.get("payment_method")


def check_after():
    spec.backend.request_validation(request, None, NewBooking, None, None, None)
    data = request.context.json
    return data.session_id, data.guest_count, data.payment_method


def answer_before(booking):
    return jsonify(old_booking_json(booking))


def answer_after(booking):
    return answer(BookingAnswer, booking, status=201)


def plain_view():
    return answer_after(BOOKING)


@endpoint("bench", "signed in", ok=BookingAnswer, status=201, json=NewBooking, errors=(422,))
def declared_view():
    return answer_after(BOOKING)


BOOKING = a_booking()


def per_call_us(func, n):
    # This process's CPU time, not the wall clock: on a shared machine the waits are someone else's.
    started = time.process_time()
    for _ in range(n):
        func()
    return (time.process_time() - started) / n * 1e6


def measure(app, func, n, rounds):
    best = float("inf")
    for _ in range(rounds):
        with app.test_request_context(
            "/api/bookings", method="POST", data=BODY, content_type="application/json"
        ):
            func()  # warm: the first call builds pydantic's validators and caches the body
            best = min(best, per_call_us(func, n))
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    app = create_app(
        {
            "LOAFY_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "INSTANCE_PATH": str(tmp),
            "MAIL_OUTBOX": str(tmp / "outbox"),
        }
    )
    with app.app_context(), db.connection_context():
        upgrade()
    rows = [
        ("check the body (415/400, then the fields)", check_before, check_after),
        (
            "read the booking into its answer (JSON)",
            lambda: answer_before(BOOKING),
            lambda: answer_after(BOOKING),
        ),
        ("the view, called plain / through spectree", plain_view, declared_view),
    ]
    print(f"POST /api/bookings, µs of one core per request (best of {args.rounds} × {args.n:,})")
    print(machine())
    print(f"{'part':46} {'before':>8} {'after':>8} {'change':>8}")
    total_before = total_after = 0.0
    for name, before, after in rows:
        b = measure(app, before, args.n, args.rounds)
        a = measure(app, after, args.n, args.rounds)
        print(f"{name:46} {b:8.1f} {a:8.1f} {a - b:+8.1f}")
        if not name.startswith("the view"):
            total_before, total_after = total_before + b, total_after + a
    # The wrapper's own cost: the declared view minus the plain view minus the body check it adds.
    wrapper = measure(app, declared_view, args.n, args.rounds) - measure(app, plain_view, args.n, args.rounds)
    wrapper -= measure(app, check_after, args.n, args.rounds)
    print(f"{'spectree wrapper alone (view − plain − check)':46} {'':8} {wrapper:8.1f}")
    total_after += max(wrapper, 0.0)
    print(
        f"{'booking path, all validation parts':46} {total_before:8.1f} {total_after:8.1f} "
        f"{total_after - total_before:+8.1f}"
    )


if __name__ == "__main__":
    main()
