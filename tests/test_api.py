"""The JSON API route by route: success, each error status, and who may call what.

Bearer tokens for most calls; the browser session (cookie + X-CSRFToken) where it matters.
"""

import json
import re
from datetime import timedelta

import pytest

from loafy.models import AuditLog, Booking, ClubSession, User
from loafy.people import tokens
from tests.helpers import csrf_token, login, reload
from tests.oidc_fixtures import fresh_user_per_request  # noqa: F401 - an autouse fixture

ROLES = ("anonymous", "player", "organizer", "admin")


def bearer(user):
    _token, raw = tokens.create_token(user, "test")
    return {"Authorization": f"Bearer {raw}"}


def error_of(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def users(factory):
    return {role: factory.user(role=role, name=role.title()) for role in ("player", "organizer", "admin")}


def anonymous_csrf(client):
    """A CSRF token for a signed-out browser, so that what answers an anonymous call is the guard."""
    page = client.get("/auth/logout").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def auth(users, client):
    """Headers for each role: a bearer token; anonymous is a signed-out browser with a CSRF token."""
    headers = {role: bearer(user) for role, user in users.items()}
    headers["anonymous"] = {"X-CSRFToken": anonymous_csrf(client)}
    return headers


@pytest.fixture
def club_session(factory, now):
    return factory.club_session(title="Cầu lông tối thứ Ba", price=120_000, max_slots=6)


def session_payload(now, **fields):
    starts = now + timedelta(days=5)
    data = {
        "title": "Pickleball sáng",
        "location": "Sân Phú Nhuận",
        "starts_at": starts.isoformat() + "Z",
        "ends_at": (starts + timedelta(hours=2)).isoformat() + "Z",
        "max_slots": 12,
        "price": 80_000,
        "status": "published",
    }
    data.update(fields)
    return data


# --- auth -----------------------------------------------------------------------------------------


def test_me_and_logout_with_the_browser_session(client, users):
    login(client, users["player"])
    token = csrf_token(client)
    me = client.get("/api/auth/me").get_json()
    assert me["user"]["id"] == users["player"].id
    assert me["user"]["role"] == "player"
    assert me["user"]["membership"] == {"active": False, "ends_at": None}

    # Unsafe cookie calls need the CSRF token.
    error_of(client.post("/api/auth/logout"), 400, "csrf")
    assert client.get("/api/auth/me").status_code == 200

    response = client.post("/api/auth/logout", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert response.get_json() == {"signed_out": True}
    error_of(client.get("/api/auth/me"), 401, "unauthorized")
    error_of(client.post("/api/auth/logout", headers={"X-CSRFToken": token}), 401, "unauthorized")


def test_member_time_is_iso_with_offset(client, factory):
    member = factory.user(member=True)
    body = client.get("/api/auth/me", headers=bearer(member)).get_json()
    assert body["user"]["membership"]["active"] is True
    assert body["user"]["membership"]["ends_at"].endswith("+00:00")


# --- sessions: read -------------------------------------------------------------------------------


def test_session_list_paginates_with_totals(client, factory, now):
    for day in range(5):
        factory.club_session(starts_at=now + timedelta(days=day + 1))
    body = client.get("/api/sessions?per_page=2&page=2").get_json()
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 5)
    assert len(body["items"]) == 2
    starts = [item["starts_at"] for item in client.get("/api/sessions").get_json()["items"]]
    assert starts == sorted(starts) and len(starts) == 5
    assert client.get("/api/sessions?page=9").get_json()["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=abc", "per_page"),
        ("page=0", "page"),
        ("page=-3", "page"),
        ("page=1.5", "page"),
        ("from=yesterday", "from"),
        ("to=2026-13-45", "to"),
        ("from=9999-12-31T23:59:59%2B00:00&to=9999-12-31", "to"),
        ("status=open", "status"),
    ],
)
def test_session_list_rejects_bad_filters_naming_them(client, query, field):
    assert error_of(client.get(f"/api/sessions?{query}"), 422)["field"] == field


def test_session_list_filters(client, factory, now):
    early = factory.club_session(starts_at=now + timedelta(days=1))  # 2026-11-25 10:00 in Hà Nội
    late = factory.club_session(starts_at=now + timedelta(days=10))
    cancelled = factory.club_session(starts_at=now + timedelta(days=3), status="cancelled")

    def ids(query):
        return [item["id"] for item in client.get(f"/api/sessions?{query}").get_json()["items"]]

    assert ids("to=2026-11-25") == [early.id]  # a date is the whole club-local day
    assert ids("to=2026-11-24") == []
    assert ids("from=2026-11-26") == [cancelled.id, late.id]
    assert ids("from=2026-11-25T03:00:00%2B00:00&to=2026-11-25T03:00:00Z") == [early.id]  # inclusive
    assert ids("status=cancelled") == [cancelled.id]


def test_drafts_are_listed_for_staff_only(client, factory, auth):
    draft = factory.club_session(status="draft")
    published = factory.club_session()
    for role in ("anonymous", "player"):
        body = client.get("/api/sessions", headers=auth[role]).get_json()
        assert [item["id"] for item in body["items"]] == [published.id]
        assert client.get("/api/sessions?status=draft", headers=auth[role]).get_json()["total"] == 0
        error_of(client.get(f"/api/sessions/{draft.id}", headers=auth[role]), 404, "not_found")
    for role in ("organizer", "admin"):
        assert client.get("/api/sessions", headers=auth[role]).get_json()["total"] == 2
        assert client.get(f"/api/sessions/{draft.id}", headers=auth[role]).status_code == 200


def test_session_detail_serializes_times_and_money(client, club_session):
    response = client.get(f"/api/sessions/{club_session.id}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "Cầu lông tối thứ Ba"
    assert body["starts_at"] == "2026-11-26T03:00:00+00:00"
    assert body["starts_at_local"] == "2026-11-26T10:00:00+07:00"
    assert body["price"] == 120_000 and isinstance(body["price"], int)
    assert body["currency"] == "vnd"
    assert (body["max_slots"], body["available_slots"]) == (6, 6)


@pytest.mark.parametrize(
    "path", ["/api/sessions/999999", "/api/sessions/abc", "/api/sessions/99999999999999999999"]
)
def test_unknown_session_is_json_404(client, path):
    error_of(client.get(path), 404, "not_found")


# --- sessions: write ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("player", 403), ("organizer", 201), ("admin", 201)]
)
def test_create_session_roles(client, auth, users, now, role, status):
    response = client.post("/api/sessions", json=session_payload(now), headers=auth[role])
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 201:
        body = response.get_json()
        assert response.headers["Location"].endswith(f"/api/sessions/{body['id']}")
        row = ClubSession.get_by_id(body["id"])
        assert (row.title, row.max_slots, row.available_slots, row.price) == (
            "Pickleball sáng",
            12,
            12,
            80_000,
        )
        assert row.created_by_id == users[role].id
        assert row.starts_at == now + timedelta(days=5)
    else:
        assert ClubSession.select().count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_slots": "lots"}, "max_slots"),
        ({"max_slots": 0}, "max_slots"),
        ({"max_slots": True}, "max_slots"),
        ({"price": -1}, "price"),
        ({"price": 1.5}, "price"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"starts_at": 12}, "starts_at"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"status": "open"}, "status"),
        ({"ends_at": "2026-11-20T00:00:00Z"}, "ends_at"),
        ({"starts_at": "0726-06-15T06:57:38Z", "ends_at": "0726-06-15T08:57:38Z"}, "starts_at"),
        ({"booking_opens_at": "2461-12-12T08:11:55Z"}, "booking_opens_at"),
        ({"status": "cancelled"}, "status"),  # cancelling is its own action (DELETE)
        ({"allow_pay_at_door": "false"}, "allow_pay_at_door"),  # bool("false") would be True
        ({"allow_pay_at_door": 1}, "allow_pay_at_door"),
        ({"allow_pay_at_door": None}, "allow_pay_at_door"),
        ({"title": ["a", "b"]}, "title"),  # str() would store "['a', 'b']"
        ({"location": 12}, "location"),
        ({"description": {"text": "x"}}, "description"),
    ],
)
def test_create_session_names_the_invalid_field(client, auth, now, change, field):
    response = client.post("/api/sessions", json=session_payload(now, **change), headers=auth["organizer"])
    assert error_of(response, 422)["field"] == field
    assert ClubSession.select().count() == 0


@pytest.mark.parametrize(
    "body", [b"{", b"[1, 2]", b'"text"', b"null", b"", b"\xff\xfe", b"{" * 100_000, b"123"]
)
def test_malformed_or_non_object_json_is_400(client, auth, body):
    for method, path in (("POST", "/api/sessions"), ("POST", "/api/bookings")):
        response = client.open(
            path, method=method, data=body, headers={**auth["admin"], "Content-Type": "application/json"}
        )
        error_of(response, 400, "bad_request")


@pytest.mark.parametrize("role", ["anonymous", "player"])
def test_json_nested_deeper_than_the_stack_is_a_clear_4xx(client, auth, role):
    """ "[[[[..." overflows Python's recursion limit; it is bad JSON, answered before any 500."""
    deep = b"[" * 100_000
    for path in ("/api/bookings", "/api/sessions", "/api/payments/stripe/intent"):
        response = client.post(path, data=deep, headers={**auth[role], "Content-Type": "application/json"})
        assert response.status_code in (400, 401, 403, 422), (path, response.status_code)
        assert response.get_json()["error"]["message"]


def test_over_large_body_is_json_413(client, auth, club_session):
    huge = json.dumps({"session_id": club_session.id, "payment_method": "cash", "pad": "x" * (1024 * 1024)})
    for method, path in (
        ("POST", "/api/bookings"),
        ("POST", "/api/sessions"),
        ("PUT", f"/api/sessions/{club_session.id}"),
    ):
        response = client.open(
            path, method=method, data=huge, headers={**auth["admin"], "Content-Type": "application/json"}
        )
        error_of(response, 413, "too_large")
    assert Booking.select().count() == 0


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("player", 403), ("organizer", 403), ("admin", 200)]
)
def test_update_session_roles(client, auth, club_session, role, status):
    response = client.put(
        f"/api/sessions/{club_session.id}", json={"title": "Đổi tên", "price": 150_000}, headers=auth[role]
    )
    assert response.status_code == status
    row = reload(club_session)
    if status == 200:
        assert response.get_json()["title"] == "Đổi tên"
        assert (row.title, row.price) == ("Đổi tên", 150_000)
    else:
        assert (row.title, row.price) == ("Cầu lông tối thứ Ba", 120_000)


def test_update_session_errors(client, auth, club_session, users, now):
    admin = auth["admin"]
    error_of(client.put("/api/sessions/999999", json={"title": "x"}, headers=admin), 404, "not_found")
    assert (
        error_of(client.put(f"/api/sessions/{club_session.id}", json={"max_slots": -2}, headers=admin), 422)[
            "field"
        ]
        == "max_slots"
    )
    assert (
        error_of(
            client.put(f"/api/sessions/{club_session.id}", json={"status": "cancelled"}, headers=admin), 422
        )["field"]
        == "status"
    )
    # Capacity below what is booked is a conflict.
    client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 3, "payment_method": "stripe"},
        headers=auth["player"],
    )
    error_of(
        client.put(f"/api/sessions/{club_session.id}", json={"max_slots": 3}, headers=admin),
        409,
        "capacity_below_booked",
    )
    updated = client.put(f"/api/sessions/{club_session.id}", json={"max_slots": 8}, headers=admin).get_json()
    assert (updated["max_slots"], updated["available_slots"]) == (8, 4)


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("player", 403), ("organizer", 403), ("admin", 200)]
)
def test_delete_session_roles(client, auth, club_session, role, status):
    response = client.delete(f"/api/sessions/{club_session.id}", headers=auth[role])
    assert response.status_code == status
    assert reload(club_session).status == ("cancelled" if status == 200 else "published")


def test_delete_session_cancels_its_bookings(client, auth, club_session, factory):
    ids = []
    for guests in (0, 2):
        response = client.post(
            "/api/bookings",
            json={"session_id": club_session.id, "guest_count": guests, "payment_method": "stripe"},
            headers=bearer(factory.user()),
        )
        ids.append(response.get_json()["id"])
    assert reload(club_session).available_slots == 2
    response = client.delete(f"/api/sessions/{club_session.id}", headers=auth["admin"])
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert [Booking.get_by_id(i).status for i in ids] == ["cancelled", "cancelled"]
    assert reload(club_session).available_slots == 6
    error_of(client.delete(f"/api/sessions/{club_session.id}", headers=auth["admin"]), 409, "cancelled")
    error_of(client.delete("/api/sessions/999999", headers=auth["admin"]), 404)


def audit_rows(action=None):
    query = AuditLog.select().order_by(AuditLog.id)
    if action:
        query = query.where(AuditLog.action == action)
    return list(query)


def test_staff_changes_through_the_api_are_audited(client, auth, users, club_session, now):
    created = client.post("/api/sessions", json=session_payload(now), headers=auth["organizer"])
    assert created.status_code == 201
    [row] = audit_rows("session.create")
    assert (row.actor_id, row.object_id) == (users["organizer"].id, str(created.get_json()["id"]))
    assert json.loads(row.details)["title"] == "Pickleball sáng"

    response = client.put(f"/api/sessions/{club_session.id}", json={"price": 150_000}, headers=auth["admin"])
    assert response.status_code == 200
    [row] = audit_rows("session.update")
    assert (row.actor_id, json.loads(row.details)) == (users["admin"].id, {"price": [120_000, 150_000]})

    assert client.delete(f"/api/sessions/{club_session.id}", headers=auth["admin"]).status_code == 200
    [row] = audit_rows("session.cancel")
    assert row.actor_id == users["admin"].id and row.object_id == str(club_session.id)
    assert json.loads(row.details) == {"reason": "cancelled via API", "slots_released": 0}
    # Refusals leave no trace.
    error_of(client.delete(f"/api/sessions/{club_session.id}", headers=auth["admin"]), 409, "cancelled")
    error_of(client.put(f"/api/sessions/{club_session.id}", json={"price": 1}, headers=auth["admin"]), 409)
    assert len(audit_rows()) == 3


def test_an_unchanged_session_writes_no_audit_row(client, auth, club_session):
    for _ in range(2):
        response = client.put(
            f"/api/sessions/{club_session.id}", json={"status": "published"}, headers=auth["admin"]
        )
        assert response.status_code == 200 and response.get_json()["status"] == "published"
    assert audit_rows() == []


def test_sessions_with_active_bookings_cannot_go_back_to_draft(client, auth, club_session, factory):
    headers = bearer(factory.user())
    booking_id = client.post(
        "/api/bookings", json={"session_id": club_session.id, "payment_method": "stripe"}, headers=headers
    ).get_json()["id"]
    put = client.put(f"/api/sessions/{club_session.id}", json={"status": "draft"}, headers=auth["admin"])
    error = error_of(put, 409, "has_bookings")
    assert error["field"] == "status" and "cannot go back to draft" in error["message"]
    assert reload(club_session).status == "published" and audit_rows("session.update") == []

    assert client.delete(f"/api/bookings/{booking_id}", headers=headers).status_code == 200
    put = client.put(f"/api/sessions/{club_session.id}", json={"status": "draft"}, headers=auth["admin"])
    assert put.status_code == 200 and reload(club_session).status == "draft"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "cancelled"}, "status"),
        ({"allow_pay_at_door": "false"}, "allow_pay_at_door"),
        ({"title": ["a", "b"]}, "title"),
    ],
)
def test_update_session_refuses_wrong_types(client, auth, club_session, change, field):
    response = client.put(f"/api/sessions/{club_session.id}", json=change, headers=auth["admin"])
    assert error_of(response, 422)["field"] == field
    row = reload(club_session)
    assert (row.title, row.allow_pay_at_door, row.status) == ("Cầu lông tối thứ Ba", False, "published")
    response = client.put(
        f"/api/sessions/{club_session.id}", json={"allow_pay_at_door": True}, headers=auth["admin"]
    )
    assert response.get_json()["allow_pay_at_door"] is True


# --- bookings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("player", 201), ("organizer", 201), ("admin", 201)]
)
def test_create_booking_roles(client, auth, users, club_session, role, status):
    payload = {"session_id": club_session.id, "guest_count": 1, "payment_method": "stripe"}
    response = client.post("/api/bookings", json=payload, headers=auth[role])
    assert response.status_code == status
    if status != 201:
        assert Booking.select().count() == 0
        return
    body = response.get_json()
    booking = Booking.get_by_id(body["id"])
    assert booking.user_id == users[role].id
    assert response.headers["Location"].endswith(f"/api/bookings/{booking.id}")
    assert body["code"] == booking.code and body["code"].startswith("LB-")
    assert (body["status"], body["payment_status"], body["slots"], body["amount"]) == (
        "pending_payment",
        "unpaid",
        2,
        240_000,
    )
    assert body["payment_deadline"] == "2026-11-24T03:30:00+00:00"
    assert body["session"]["id"] == club_session.id
    assert reload(club_session).available_slots == 4


def test_create_booking_with_the_browser_session_needs_csrf(client, users, club_session):
    login(client, users["player"])
    payload = {"session_id": club_session.id, "payment_method": "bank_transfer"}
    error_of(client.post("/api/bookings", json=payload), 400, "csrf")
    assert Booking.select().count() == 0
    response = client.post("/api/bookings", json=payload, headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 201
    assert response.get_json()["guest_count"] == 0


def test_create_booking_conflicts(client, auth, factory, now):
    small = factory.club_session(max_slots=2)
    player = auth["player"]
    ok = client.post(
        "/api/bookings",
        json={"session_id": small.id, "guest_count": 0, "payment_method": "stripe"},
        headers=player,
    )
    assert ok.status_code == 201
    error_of(
        client.post(
            "/api/bookings", json={"session_id": small.id, "payment_method": "stripe"}, headers=player
        ),
        409,
        "already_booked",
    )
    error_of(
        client.post(
            "/api/bookings",
            json={"session_id": small.id, "guest_count": 1, "payment_method": "stripe"},
            headers=auth["organizer"],
        ),
        409,
        "full",
    )
    cancelled = factory.club_session(status="cancelled")
    error_of(
        client.post(
            "/api/bookings", json={"session_id": cancelled.id, "payment_method": "stripe"}, headers=player
        ),
        409,
        "closed",
    )
    later = factory.club_session(booking_opens_at=now + timedelta(hours=3))
    error_of(
        client.post(
            "/api/bookings", json={"session_id": later.id, "payment_method": "stripe"}, headers=player
        ),
        409,
        "not_open",
    )
    assert reload(small).available_slots == 1
    assert Booking.select().count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"guest_count": 4, "payment_method": "stripe"}, "guest_count"),
        ({"guest_count": -1, "payment_method": "stripe"}, "guest_count"),
        ({"guest_count": "two", "payment_method": "stripe"}, "guest_count"),
        ({"guest_count": None, "payment_method": "stripe"}, "guest_count"),
        ({"guest_count": 0, "payment_method": "bitcoin"}, "payment_method"),
        ({"guest_count": 0}, "payment_method"),
        ({"guest_count": 0, "payment_method": ["stripe"]}, "payment_method"),
        ({"session_id": "1", "payment_method": "stripe"}, "session_id"),
        ({"session_id": True, "payment_method": "stripe"}, "session_id"),
        ({"session_id": None, "payment_method": "stripe"}, "session_id"),
        ({"session_id": {"id": 1}, "payment_method": "stripe"}, "session_id"),
    ],
)
def test_create_booking_names_the_invalid_field(client, auth, club_session, payload, field):
    payload = {"session_id": club_session.id, **payload}
    assert error_of(client.post("/api/bookings", json=payload, headers=auth["player"]), 422)["field"] == field
    assert Booking.select().count() == 0
    assert reload(club_session).available_slots == 6


def test_create_booking_for_an_unknown_session_is_404(client, auth):
    for session_id in (999_999, 0, -5, 2**31, 2**40, 2**70):  # past 32 bits: no row, not an error
        response = client.post(
            "/api/bookings",
            json={"session_id": session_id, "payment_method": "stripe"},
            headers=auth["player"],
        )
        error_of(response, 404, "not_found")


def test_my_bookings_are_mine_only_and_paginated(client, auth, users, factory, now):
    sessions = [factory.club_session(starts_at=now + timedelta(days=d + 1)) for d in range(3)]
    for s in sessions:
        client.post(
            "/api/bookings", json={"session_id": s.id, "payment_method": "stripe"}, headers=auth["player"]
        )
    client.post(
        "/api/bookings",
        json={"session_id": sessions[0].id, "payment_method": "stripe"},
        headers=auth["admin"],
    )
    body = client.get("/api/bookings?per_page=2", headers=auth["player"]).get_json()
    assert (body["total"], body["page"], body["per_page"], len(body["items"])) == (3, 1, 2, 2)
    assert [item["session"]["id"] for item in body["items"]] == [sessions[0].id, sessions[1].id]
    everything = client.get("/api/bookings?per_page=100", headers=auth["player"]).get_json()["items"]
    assert {b["user_id"] for b in everything} == {users["player"].id}
    assert client.get("/api/bookings", headers=auth["organizer"]).get_json()["total"] == 0
    # Past the end: empty, at the page asked for (like /api/sessions), not page 1 again.
    past = client.get("/api/bookings?per_page=2&page=7", headers=auth["player"]).get_json()
    assert (past["items"], past["page"], past["total"]) == ([], 7, 3)
    error_of(client.get("/api/bookings"), 401, "unauthorized")
    assert (
        error_of(client.get("/api/bookings?per_page=500", headers=auth["player"]), 422)["field"] == "per_page"
    )


@pytest.mark.parametrize(
    ("role", "runs_the_session", "status"),
    [
        ("anonymous", False, 401),
        ("player", False, 404),
        ("organizer", False, 404),  # another organizer's session: no hint that the booking exists
        ("organizer", True, 200),
        ("admin", False, 200),
    ],
)
def test_booking_detail_owner_or_staff(
    client, auth, users, club_session, factory, role, runs_the_session, status
):
    if runs_the_session:
        club_session.created_by = users[role]
        club_session.save()
    owner = factory.user()
    created = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "payment_method": "bank_transfer"},
        headers=bearer(owner),
    )
    booking_id = created.get_json()["id"]
    response = client.get(f"/api/bookings/{booking_id}", headers=auth[role])
    assert response.status_code == status
    if status == 200:
        assert response.get_json()["code"] == Booking.get_by_id(booking_id).code
    owner_view = client.get(f"/api/bookings/{booking_id}", headers=bearer(owner))
    assert owner_view.status_code == 200
    error_of(client.get("/api/bookings/999999", headers=bearer(owner)), 404, "not_found")


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("player", 404), ("organizer", 403), ("admin", 200)]
)
def test_cancel_booking_owner_or_admin(client, auth, users, club_session, factory, role, status):
    club_session.created_by = users["organizer"]  # sees the booking, but only admins cancel others'
    club_session.save()
    owner = factory.user()
    created = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 2, "payment_method": "stripe"},
        headers=bearer(owner),
    )
    booking_id = created.get_json()["id"]
    assert reload(club_session).available_slots == 3
    response = client.delete(f"/api/bookings/{booking_id}", headers=auth[role])
    assert response.status_code == status
    if status == 200:
        assert response.get_json()["status"] == "cancelled"
        assert Booking.get_by_id(booking_id).status == "cancelled"
        assert reload(club_session).available_slots == 6
    else:
        assert Booking.get_by_id(booking_id).status == "pending_payment"
        assert reload(club_session).available_slots == 3


def test_every_cancel_through_the_api_is_audited_with_its_actor(client, auth, users, club_session, factory):
    def booking_for(headers):
        payload = {"session_id": club_session.id, "payment_method": "stripe"}
        return client.post("/api/bookings", json=payload, headers=headers).get_json()["id"]

    player = factory.user()
    owner = bearer(player)
    own = booking_for(owner)
    assert client.delete(f"/api/bookings/{own}", headers=owner).status_code == 200
    [row] = audit_rows()
    assert (row.action, row.actor_id, row.object_id) == ("booking.cancel", player.id, str(own))

    theirs = booking_for(owner)
    response = client.delete(f"/api/bookings/{theirs}", headers=auth["admin"])
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    row = audit_rows()[-1]
    assert (row.action, row.actor_id, row.object_id) == ("booking.cancel", users["admin"].id, str(theirs))
    assert json.loads(row.details)["reason"] == "cancelled via API"
    error_of(client.delete(f"/api/bookings/{theirs}", headers=auth["admin"]), 409, "not_active")
    assert len(audit_rows()) == 2


def test_owner_cancels_then_cannot_cancel_twice(client, club_session, factory, now):
    owner = factory.user()
    headers = bearer(owner)
    booking_id = client.post(
        "/api/bookings", json={"session_id": club_session.id, "payment_method": "stripe"}, headers=headers
    ).get_json()["id"]
    response = client.delete(f"/api/bookings/{booking_id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["cancelled_at"] == now.isoformat() + "+00:00"
    error_of(client.delete(f"/api/bookings/{booking_id}", headers=headers), 409, "not_active")
    error_of(client.delete("/api/bookings/999999", headers=headers), 404)


def test_owner_cannot_cancel_after_the_cutoff(client, factory, now):
    soon = factory.club_session(starts_at=now + timedelta(hours=5))
    headers = bearer(factory.user())
    booking_id = client.post(
        "/api/bookings", json={"session_id": soon.id, "payment_method": "stripe"}, headers=headers
    ).get_json()["id"]
    error_of(client.delete(f"/api/bookings/{booking_id}", headers=headers), 409, "cancellation_closed")
    assert Booking.get_by_id(booking_id).status == "pending_payment"


# --- never a 500, never HTML ------------------------------------------------------------------------


def test_unknown_api_paths_and_methods_answer_json(client, auth):
    error_of(client.get("/api/nothing-here"), 404, "not_found")
    error_of(client.patch("/api/sessions", headers=auth["admin"]), 405, "method_not_allowed")


def test_405_names_the_allowed_methods(client, auth):
    response = client.patch("/api/sessions", headers=auth["admin"])
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST"}
    page = client.put("/sessions")  # an HTML page answers the same way
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_malformed_json_for_a_payment_intent_is_400(client, auth):
    for body in (b"{", b"[1]", b"null"):
        response = client.post(
            "/api/payments/stripe/intent",
            data=body,
            headers={**auth["player"], "Content-Type": "application/json"},
        )
        error_of(response, 400, "bad_request")
    response = client.post("/api/payments/stripe/intent", json={}, headers=auth["player"])
    assert error_of(response, 422)["field"] == "booking_id"


def test_a_disabled_users_token_is_401(client, factory, club_session):
    user = factory.user()
    headers = bearer(user)
    User.update(active=False).where(User.id == user.id).execute()
    error_of(
        client.post(
            "/api/bookings",
            json={"session_id": club_session.id, "payment_method": "bank_transfer"},
            headers=headers,
        ),
        401,
    )
