"""Schemathesis against /api/openapi.json on a real server process (gunicorn) and the real database.

Every documented operation (but the payment ones, which need Stripe) gets generated requests, valid
and invalid, as an admin (bearer token): no 5xx, and every answer conforms to the description.
"""

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loafy.app import create_app
from loafy.db import db
from loafy.models import Booking, ClubSession, User
from loafy.people import tokens
from tests.conftest import _close_pool, _test_config, reset_database

ROOT = Path(__file__).resolve().parent.parent
# These need Stripe (localstripe): tests/test_payments.py calls them.
PAYMENTS_OPERATIONS = {("/api/payments/stripe/intent", "post"), ("/api/webhooks/stripe", "post")}
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(database_url, instance):
    """A few rows for the generated requests to meet, and an admin's token."""
    app = create_app(_test_config(database_url, instance))
    now = datetime.now(UTC).replace(tzinfo=None)
    with app.app_context(), db.connection_context():
        reset_database()
        admin = User.create(email="admin@example.com", name="Admin", role="admin")
        player = User.create(email="player@example.com", name="Lan")
        for i in range(1, 4):
            starts = now + timedelta(days=i)
            ClubSession.create(
                title=f"Cầu lông {i}",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
                max_slots=20,
                available_slots=18,
                price=100_000,
                status="published" if i < 3 else "draft",
                booking_opens_at=now - timedelta(days=1),
            )
        first = ClubSession.select().order_by(ClubSession.id).first()
        Booking.create(
            code="LB-ABCDE",
            user=player,
            club_session=first,
            guest_count=1,
            slots=2,
            unit_price=100_000,
            amount=200_000,
            payment_method="stripe",
            status="pending_payment",
            payment_deadline=now + timedelta(minutes=30),
        )
        _token, raw = tokens.create_token(admin, "schemathesis")
    _close_pool()
    return raw


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    instance = tmp_path_factory.mktemp("st-instance")
    raw = _seed(database_url, instance)
    port = _free_port()
    env = {
        **os.environ,
        "LOAFY_ENV": "testing",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        "MAIL_OUTBOX": str(instance / "outbox"),
        "JOBS_INLINE": "1",
        "DB_POOL_SIZE": "8",
    }
    env.pop("REDIS_URL", None)
    log = instance / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--threads",
            "4",
            "loafy.wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),  # a file, not a pipe nobody drains (a full pipe would stall the server)
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/api/openapi.json", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the server did not start: " + log.read_text(errors="replace")[-2000:])
        time.sleep(0.1)
    yield base, {"Authorization": f"Bearer {raw}"}
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_the_api_conforms_to_its_description(server):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    base, headers = server
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,  # what the document says is invalid, the app refuses (4xx)
    ]
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if (op.path, op.method.lower()) not in PAYMENTS_OPERATIONS
    ]
    assert len(operations) >= 12
    session = requests.Session()
    calls = {"count": 0, "statuses": set()}

    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy, signed_in=st.booleans())
            def run(case, signed_in):
                extra = headers if signed_in else {}
                response = case.call(base_url=base, session=session, headers=extra, timeout=20)
                calls["count"] += 1
                calls["statuses"].add(response.status_code)
                case.validate_response(response, checks=checks, headers=extra)

            try:
                run()
            except Exception as exc:
                if type(exc).__name__ == "Unsatisfiable":
                    continue  # e.g. no negative variant exists for an operation without inputs
                raise
    # Known-good writes, so that success answers are checked against the description too.
    by_key = {(op.method.upper(), op.path): op for op in operations}
    starts = (datetime.now(UTC) + timedelta(days=9)).replace(microsecond=0)
    known = [
        (
            "POST",
            "/api/bookings",
            {},
            {"session_id": 2, "guest_count": 3, "payment_method": "bank_transfer"},
            201,
        ),
        (
            "POST",
            "/api/sessions",
            {},
            {
                "title": "Schemathesis",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=1)).isoformat(),
                "max_slots": 3,
            },
            201,
        ),
        ("PUT", "/api/sessions/{session_id}", {"session_id": 2}, {"price": 90_000}, 200),
        ("DELETE", "/api/bookings/{booking_id}", {"booking_id": 1}, None, 200),
        ("DELETE", "/api/sessions/{session_id}", {"session_id": 1}, None, 200),
        ("DELETE", "/api/sessions/{session_id}", {"session_id": 1}, None, 409),
    ]
    for method, path, params, body, expected in known:
        kwargs = {"path_parameters": params}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        case = by_key[(method, path)].Case(**kwargs)
        response = case.call(base_url=base, session=session, headers=headers, timeout=20)
        assert response.status_code == expected, (method, path, response.text)
        case.validate_response(response, checks=checks, headers=headers)
        calls["statuses"].add(response.status_code)

    assert calls["count"] > 100
    assert not any(status >= 500 for status in calls["statuses"])
    assert {200, 201, 400, 401, 404, 409, 422} <= calls["statuses"], calls["statuses"]
