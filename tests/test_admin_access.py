"""Role matrix over every staff-area endpoint and action: anonymous, player, organizer, admin.

Unsafe methods carry a valid CSRF token, so what answers is the guard. An organizer's own session is
used where ownership matters; admin-only actions answer 403 to organizers.
"""

import re
from datetime import timedelta

import pytest

from tests.helpers import english, login

ROLES = ("anonymous", "player", "organizer", "admin")
LOGIN, OK = "LOGIN", "OK"
STAFF = {"anonymous": LOGIN, "player": 403, "organizer": OK, "admin": OK}
ADMIN_ONLY = {"anonymous": LOGIN, "player": 403, "organizer": 403, "admin": OK}

# Per endpoint; a prefix rule covers Flask-Admin's generated endpoints of one view.
EXACT = {
    "admin.index": STAFF,
    "sessions.cancel": ADMIN_ONLY,
    "bookings.cancel": STAFF,  # Core decides: an admin any booking, anyone their own
    "bookings.refund": ADMIN_ONLY,
    "bookings.manual_refund": ADMIN_ONLY,
}
PREFIXES = {
    "sessions.": STAFF,
    "bookings.": STAFF,
    "players.": ADMIN_ONLY,
    "settings.": ADMIN_ONLY,
    "jobs.": ADMIN_ONLY,
    "audit.": ADMIN_ONLY,
    "session_templates.": ADMIN_ONLY,  # calendar
    "strikes.": STAFF,
    "reports.": ADMIN_ONLY,
    "passes_admin.": STAFF,  # organizers see passes and take payment; selling, granting and
    "pass_products.": ADMIN_ONLY,  # cancelling are refused by the service (admin only)
    "bank.": ADMIN_ONLY,
}


@pytest.fixture(autouse=True)
def _english_staff_area(client):
    """These tests read the staff area's English words (test_admin_vietnamese.py reads its Vietnamese)."""
    english(client)


def expectation(endpoint):
    if endpoint in EXACT:
        return EXACT[endpoint]
    for prefix, rule in PREFIXES.items():
        if endpoint.startswith(prefix):
            return rule
    return None


def admin_routes(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint == "admin.static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _csrf(client):
    page = client.get("/auth/logout").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_every_admin_route_has_an_expectation(app):
    missing = sorted({rule.endpoint for rule, _m in admin_routes(app) if expectation(rule.endpoint) is None})
    assert not missing


def test_the_staff_area_has_the_expected_views(app):
    endpoints = {rule.endpoint for rule, _m in admin_routes(app)}
    for endpoint in (
        "sessions.roster_csv",
        "sessions.cancel",
        "sessions.publish",
        "bookings.export_csv",
        "bookings.mark_paid",
        "bookings.check_in",
        "bookings.cancel",
        "bookings.refund",
        "bookings.manual_refund",
        "players.set_role",
        "passes_admin.sell",
        "passes_admin.mark_paid",
        "passes_admin.cancel",
        "pass_products.create_view",
        "settings.index",
        "jobs.index",
        "audit.index_view",
    ):
        assert endpoint in endpoints


@pytest.mark.parametrize("role", ROLES)
def test_admin_access_matrix(app, factory, now, role, monkeypatch):
    from loafy import queue

    monkeypatch.setitem(queue._state, "url", "redis://127.0.0.1:1/0")  # a closed port: "Redis is down"
    monkeypatch.setitem(queue._state, "connection", None)
    user = factory.user(role=role) if role != "anonymous" else None
    club_session = factory.club_session(
        starts_at=now + timedelta(days=3), created_by=user if role == "organizer" else None
    )
    failures = []
    for rule, method in sorted(admin_routes(app), key=lambda rm: (rm[0].rule, rm[1])):
        expected = expectation(rule.endpoint)[role]
        values = {"export_type": "csv", "session_id": club_session.id}
        values.update(template_id=999_999, strike_id=999_999, user_id=999_999)  # calendar: unknown rows
        with app.test_request_context():
            path = app.url_for(rule.endpoint, **{k: v for k, v in values.items() if k in rule.arguments})
        client = app.test_client()
        if user is not None:
            login(client, user)
        kwargs = {}
        if method != "GET":
            kwargs["data"] = {"csrf_token": _csrf(client)}
        response = client.open(path, method=method, **kwargs)
        status = response.status_code
        to_login = status == 302 and "/auth/login" in response.headers.get("Location", "")
        if expected == LOGIN:
            good = to_login
        elif expected == OK:
            good = status < 500 and status not in (401, 403) and not to_login
        else:
            good = status == expected
        if not good:
            failures.append(f"{method} {path} ({rule.endpoint}) as {role}: expected {expected}, got {status}")
    assert not failures, "\n".join(failures)


def test_organizer_cannot_download_another_organizers_roster(client, factory, now):
    owner, other = factory.user(role="organizer"), factory.user(role="organizer")
    club_session = factory.club_session(created_by=owner)
    login(client, other)
    assert client.get(f"/admin/sessions/{club_session.id}/roster.csv").status_code == 403
    login(client, owner)
    assert client.get(f"/admin/sessions/{club_session.id}/roster.csv").status_code == 200


def test_organizer_menu_hides_admin_only_views(client, factory):
    login(client, factory.user(role="organizer"))
    page = client.get("/admin/").get_data(as_text=True)
    assert "/admin/sessions/" in page and "/admin/bookings/" in page
    for hidden in ("/admin/players/", "/admin/settings/", "/admin/jobs/", "/admin/audit/"):
        assert hidden not in page
