"""The seed's integration scenarios (loafy-club-progress.md, section 9.1) played through the JSON API.

auth: protected endpoints and roles; sessions: CRUD with permissions, filters and pagination;
bookings: creation, concurrency (threads posting to the API), payment deadline, cancellation;
payments: intent creation and the signed webhook (against a real localstripe on loopback).
"""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import requests

from loafy.booking.bookings import expire_unpaid
from loafy.checks import find_violations
from loafy.db import db
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession
from loafy.people import tokens
from tests.conftest import _test_config
from tests.helpers import csrf_token, login, reload
from tests.oidc_fixtures import fresh_user_per_request  # noqa: F401 - an autouse fixture

WEBHOOK_SECRET = "whsec_loafy_scenarios"


def bearer(user):
    return {"Authorization": f"Bearer {tokens.create_token(user)[1]}"}


# --- 9.1 auth -------------------------------------------------------------------------------------


def test_auth_protected_endpoints_and_roles(client, factory, now):
    player, organizer, admin = (factory.user(role=r) for r in ("player", "organizer", "admin"))
    # Not signed in: every protected endpoint is a JSON 401.
    for method, path in [("GET", "/api/auth/me"), ("GET", "/api/bookings"), ("GET", "/api/bookings/1")]:
        response = client.open(path, method=method)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    # Signed in by cookie: me, then logout ends it.
    login(client, organizer)
    me = client.get("/api/auth/me").get_json()
    assert (me["user"]["id"], me["user"]["roles"]) == (organizer.id, ["organizer"])
    assert client.post("/api/auth/logout", headers={"X-CSRFToken": me["csrf_token"]}).status_code == 200
    assert client.get("/api/auth/me").status_code == 401
    # Role-based authorization, by token.
    starts = now + timedelta(days=3)
    payload = {
        "title": "Tennis",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
        "max_slots": 4,
    }
    assert client.post("/api/sessions", json=payload, headers=bearer(player)).status_code == 403
    created = client.post("/api/sessions", json=payload, headers=bearer(organizer))
    assert created.status_code == 201
    session_id = created.get_json()["id"]
    assert (
        client.put(
            f"/api/sessions/{session_id}", json={"max_slots": 5}, headers=bearer(organizer)
        ).status_code
        == 403
    )
    assert (
        client.put(f"/api/sessions/{session_id}", json={"max_slots": 5}, headers=bearer(admin)).status_code
        == 200
    )


# --- 9.1 sessions ---------------------------------------------------------------------------------


def test_session_crud_with_permissions(client, factory, now):
    organizer, admin, player = factory.user(role="organizer"), factory.user(role="admin"), factory.user()
    starts = now + timedelta(days=7)
    draft = {
        "title": "Bóng bàn tối thứ Sáu",
        "location": "CLB Quận 3",
        "starts_at": (starts.isoformat() + "+00:00"),
        "ends_at": (starts + timedelta(hours=2)).isoformat() + "+00:00",
        "max_slots": 8,
        "price": 50_000,
    }
    created = client.post("/api/sessions", json=draft, headers=bearer(organizer))
    assert created.status_code == 201
    body = created.get_json()
    assert (body["status"], body["available_slots"], body["price"]) == ("draft", 8, 50_000)
    session_id = body["id"]

    # Read: the draft is staff-only.
    assert client.get(f"/api/sessions/{session_id}", headers=bearer(player)).status_code == 404
    assert client.get(f"/api/sessions/{session_id}", headers=bearer(organizer)).status_code == 200

    # Update (admin): publish it; now everyone sees it, in the list too.
    published = client.put(f"/api/sessions/{session_id}", json={"status": "published"}, headers=bearer(admin))
    assert published.status_code == 200 and published.get_json()["status"] == "published"
    assert client.get(f"/api/sessions/{session_id}").status_code == 200
    listed = client.get("/api/sessions?from=2026-12-01&to=2026-12-01&status=published").get_json()
    assert [s["id"] for s in listed["items"]] == [session_id] and listed["total"] == 1

    # Delete (admin) = cancel: bookings cancelled, slots back, the session stays as history.
    booked = client.post(
        "/api/bookings",
        json={"session_id": session_id, "guest_count": 1, "payment_method": "bank_transfer"},
        headers=bearer(player),
    )
    assert booked.status_code == 201
    assert client.delete(f"/api/sessions/{session_id}", headers=bearer(organizer)).status_code == 403
    cancelled = client.delete(f"/api/sessions/{session_id}", headers=bearer(admin))
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    row = ClubSession.get_by_id(session_id)
    assert (row.status, row.available_slots) == ("cancelled", 8)
    assert Booking.get_by_id(booked.get_json()["id"]).status == "cancelled"
    assert (
        client.put(f"/api/sessions/{session_id}", json={"title": "x"}, headers=bearer(admin)).status_code
        == 409
    )


def test_session_filtering_and_pagination(client, factory, now):
    for day in range(25):
        factory.club_session(starts_at=now + timedelta(days=day + 1))
    pages = [client.get(f"/api/sessions?page={p}").get_json() for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [20, 5, 0]
    assert {p["total"] for p in pages} == {25}
    ids = [s["id"] for p in pages for s in p["items"]]
    assert len(set(ids)) == 25
    week = client.get("/api/sessions?from=2026-11-25&to=2026-12-01&per_page=100").get_json()
    assert week["total"] == 7


# --- 9.1 bookings ---------------------------------------------------------------------------------


def test_concurrent_api_bookings_never_oversell(app, factory):
    """40 players post at once for 10 slots through the API (threads, each its own test client)."""
    slots, crowd = 10, 40
    club_session = factory.club_session(max_slots=slots)
    headers = [bearer(factory.user()) for _ in range(crowd)]
    guests = [i % 3 for i in range(crowd)]
    barrier = threading.Barrier(crowd, timeout=60)
    results = [None] * crowd

    def post(i):
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/api/bookings",
            json={"session_id": club_session.id, "guest_count": guests[i], "payment_method": "stripe"},
            headers=headers[i],
        )
        results[i] = (response.status_code, (response.get_json() or {}).get("error", {}).get("code"))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(crowd)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert {status for status, _ in results} <= {201, 409}, results
    assert {code for status, code in results if status == 409} <= {"full"}
    with db.connection_context():
        active = list(
            Booking.select().where(
                (Booking.club_session == club_session.id) & Booking.status.in_(ACTIVE_BOOKING_STATUSES)
            )
        )
        taken = sum(b.slots for b in active)
        assert len(active) == sum(1 for status, _ in results if status == 201)
        assert taken <= slots
        assert reload(club_session).available_slots == slots - taken
        assert taken > slots - 3  # the winners filled it: nobody was refused while it had room
        assert find_violations() == []


def test_payment_deadline_releases_the_spot(client, factory, now):
    club_session = factory.club_session(max_slots=1)
    first, second = factory.user(), factory.user()
    booked = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "payment_method": "stripe"},
        headers=bearer(first),
    )
    assert booked.status_code == 201
    deadline = booked.get_json()["payment_deadline"]
    assert deadline == (now + timedelta(minutes=30)).isoformat() + "+00:00"
    refused = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "payment_method": "stripe"},
        headers=bearer(second),
    )
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "full"
    assert expire_unpaid(now + timedelta(minutes=31)) == [booked.get_json()["code"]]
    mine = client.get(f"/api/bookings/{booked.get_json()['id']}", headers=bearer(first)).get_json()
    assert mine["status"] == "expired"
    again = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "payment_method": "stripe"},
        headers=bearer(second),
    )
    assert again.status_code == 201


def test_booking_cancellation_by_cookie(client, factory):
    club_session = factory.club_session(max_slots=5)
    player = factory.user()
    login(client, player)
    token = csrf_token(client)
    booked = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 3, "payment_method": "bank_transfer"},
        headers={"X-CSRFToken": token},
    )
    assert booked.status_code == 201
    assert reload(club_session).available_slots == 1
    booking_id = booked.get_json()["id"]
    assert client.delete(f"/api/bookings/{booking_id}").status_code == 400  # no CSRF token
    cancelled = client.delete(f"/api/bookings/{booking_id}", headers={"X-CSRFToken": token})
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert reload(club_session).available_slots == 5
    listed = client.get("/api/bookings").get_json()
    assert [(b["id"], b["status"]) for b in listed["items"]] == [(booking_id, "cancelled")]


# --- 9.1 payments ---------------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loafy.dev.localstripe_launcher", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/v1/customers", auth=("sk_test_x", ""), timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.skip("localstripe did not start")
    yield url
    process.terminate()
    process.wait(timeout=10)


def _has_route(app, path):
    return any(rule.rule == path for rule in app.url_map.iter_rules())


def _signed(payload, secret=WEBHOOK_SECRET):
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


@pytest.fixture
def payments_app_config(database_url, tmp_path, localstripe):
    return _test_config(
        database_url,
        tmp_path,
        STRIPE_SECRET_KEY="sk_test_loafy",
        STRIPE_PUBLISHABLE_KEY="pk_test_loafy",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=localstripe,
    )


@pytest.fixture
def app_config(request, database_url, tmp_path):
    if "localstripe" in request.fixturenames:
        return request.getfixturevalue("payments_app_config")
    return _test_config(database_url, tmp_path)


def test_payment_intent_and_webhook(localstripe, app, client, factory):
    if not (_has_route(app, "/api/payments/stripe/intent") and _has_route(app, "/api/webhooks/stripe")):
        pytest.skip(
            "public/payments.py does not serve /api/payments/stripe/intent and /api/webhooks/stripe yet"
        )
    import stripe

    club_session = factory.club_session(price=150_000, max_slots=4)
    player, stranger = factory.user(), factory.user()
    booked = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 1, "payment_method": "stripe"},
        headers=bearer(player),
    )
    assert booked.status_code == 201
    booking_id = booked.get_json()["id"]

    # Only the owner gets an intent; its amount is the booking's, in whole VND.
    assert (
        client.post(
            "/api/payments/stripe/intent", json={"booking_id": booking_id}, headers=bearer(stranger)
        ).status_code
        == 404
    )
    assert client.post("/api/payments/stripe/intent", json={"booking_id": booking_id}).status_code in (
        400,
        401,
    )
    response = client.post(
        "/api/payments/stripe/intent", json={"booking_id": booking_id}, headers=bearer(player)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    intent = response.get_json()
    assert (intent["amount"], intent["currency"]) == (300_000, "vnd")
    assert intent["client_secret"] and intent["payment_intent_id"].startswith("pi_")

    # The card step, played against localstripe, then Stripe's signed event.
    client_sdk = stripe.StripeClient("sk_test_loafy", base_addresses={"api": localstripe})
    client_sdk.v1.payment_intents.update(intent["payment_intent_id"], {"payment_method": "pm_card_visa"})
    client_sdk.v1.payment_intents.confirm(intent["payment_intent_id"])
    event = json.dumps(
        {
            "id": f"evt_{intent['payment_intent_id']}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent["payment_intent_id"], "object": "payment_intent"}},
        }
    )
    forged = client.post("/api/webhooks/stripe", data=event, headers=_signed(event, "whsec_wrong"))
    assert forged.status_code == 400
    assert Booking.get_by_id(booking_id).status == "pending_payment"

    delivered = client.post("/api/webhooks/stripe", data=event, headers=_signed(event))
    assert delivered.status_code == 200, delivered.get_data(as_text=True)
    booking = client.get(f"/api/bookings/{booking_id}", headers=bearer(player)).get_json()
    assert (booking["status"], booking["payment_status"], booking["payment_deadline"]) == (
        "confirmed",
        "paid",
        None,
    )

    # Delivered twice: nothing changes the second time.
    again = client.post("/api/webhooks/stripe", data=event, headers=_signed(event))
    assert again.status_code == 200
    assert Booking.get_by_id(booking_id).status == "confirmed"
    assert reload(club_session).available_slots == 2
    assert find_violations() == []
