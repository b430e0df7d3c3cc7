"""Who may reach every route of the app: anonymous, player, organizer, admin → expected status.

Every (endpoint, method) in app.url_map needs a line in ROUTES (or a prefix rule for Flask-Admin's
generated views). A new route without one fails `test_every_route_has_an_entry`: add a line.

Expectations: an int is an exact status; LOGIN = sent to sign in (302 to /auth/login for pages,
401 for /api/); OK = let through (anything below 500 that is not 401, 403 or a sign-in redirect).
Unsafe methods are sent with a valid CSRF token, so what answers is the guard, not the CSRF check.
"""

import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from loafy.models import Identity
from loafy.people import tokens
from tests.conftest import NO_STRIPE, _test_config
from tests.helpers import login
from tests.oidc_fixtures import closed_port, fresh_user_per_request, oidc_provider  # noqa: F401

ROLES = ("anonymous", "player", "organizer", "admin")
LOGIN = "LOGIN"
OK = "OK"


@dataclass(frozen=True)
class R:
    """Expected answers for anonymous, player, organizer, admin; `args` builds the URL's values."""

    anonymous: object
    player: object
    organizer: object
    admin: object
    args: dict = field(default_factory=dict)  # values may name a sample row: "session", "token", "identity"
    query: dict = field(default_factory=dict)


def everyone(status, **kw):
    return R(status, status, status, status, **kw)


SIGNED_IN = dict(anonymous=LOGIN, player=OK, organizer=OK, admin=OK)
STAFF = R(LOGIN, 403, OK, OK)
ADMIN_ONLY = R(LOGIN, 403, 403, OK)

# One line per (endpoint, method). Keep it sorted by area; add your route here.
ROUTES = {
    # public pages
    ("pages.home", "GET"): everyone(200),
    ("pages.session_list", "GET"): everyone(200),
    ("pages.session_detail", "GET"): everyone(200, args={"session_id": "session"}),
    ("pages.healthz", "GET"): everyone(200),
    ("static", "GET"): everyone(200, args={"filename": "loafy.css"}),
    ("favicon", "GET"): everyone(301),
    # sign-in ("down" points at a closed port: the flow ends on the login page)
    ("auth.login", "GET"): R(200, 302, 302, 302),
    ("auth.login_with", "GET"): everyone(302, args={"provider": "down"}),
    ("auth.callback", "GET"): everyone(302, args={"provider": "down"}),
    ("auth.apple_form_post", "POST"): everyone(303),
    ("auth.logout", "GET"): everyone(200),
    ("auth.logout", "POST"): everyone(302),
    # profile
    ("profile.show", "GET"): R(LOGIN, 200, 200, 200),
    ("profile.create_token", "POST"): R(LOGIN, 303, 303, 303),  # post/redirect/get
    ("profile.revoke_token", "POST"): R(LOGIN, 302, 302, 302, args={"token_id": "token"}),
    ("profile.unlink_identity", "POST"): R(LOGIN, 302, 302, 302, args={"identity_id": "identity"}),
    ("profile.sign_out_everywhere", "POST"): R(LOGIN, 302, 302, 302),
    ("profile.auto_renew_off", "POST"): R(LOGIN, 404, 404, 404, args={"pass_id": 999_999}),
    # JSON API
    ("api.me", "GET"): R(LOGIN, 200, 200, 200),
    ("api.logout", "POST"): R(LOGIN, 200, 200, 200),
    ("api.list_sessions_view", "GET"): everyone(200),
    ("api.get_session_view", "GET"): everyone(200, args={"session_id": "session"}),
    ("api.create_session_view", "POST"): R(LOGIN, 403, OK, OK),  # the matrix's form body: 415 for staff
    ("api.update_session_view", "PUT"): R(LOGIN, 403, 403, OK, args={"session_id": "session"}),
    ("api.cancel_session_view", "DELETE"): R(LOGIN, 403, 403, OK, args={"session_id": "session"}),
    ("api.list_bookings_view", "GET"): R(LOGIN, 200, 200, 200),
    ("api.get_booking_view", "GET"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("api.create_booking_view", "POST"): R(LOGIN, 415, 415, 415),  # a form body is not JSON
    ("api.cancel_booking_view", "DELETE"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("api.join_waitlist_view", "POST"): R(LOGIN, 415, 415, 415, args={"session_id": "session"}),
    ("api.list_waitlist_view", "GET"): R(LOGIN, 200, 200, 200),
    ("api.get_waitlist_entry_view", "GET"): R(LOGIN, 404, 404, 404, args={"entry_id": 999_999}),
    ("api.leave_waitlist_view", "DELETE"): R(LOGIN, 404, 404, 404, args={"entry_id": 999_999}),
    ("api.openapi_json", "GET"): everyone(200),
    ("api.docs", "GET"): everyone(200),
    # payments
    ("payments.create_intent", "POST"): R(**SIGNED_IN),  # no body → 422
    ("payments.stripe_webhook", "POST"): everyone(503),  # Stripe not configured in the matrix app
    ("payments.pay", "GET"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("payments.booking_status", "GET"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    # passes
    ("passes.list_products_view", "GET"): everyone(200),
    ("passes.create_product_view", "POST"): R(LOGIN, 403, 403, OK),  # a form body: 415 for admins
    ("passes.update_product_view", "PUT"): R(LOGIN, 403, 403, OK, args={"product_id": 999_999}),
    ("passes.buy_pass_view", "POST"): R(LOGIN, 415, 415, 415),
    ("passes.list_passes_view", "GET"): R(LOGIN, 200, 200, 200),
    ("passes.get_pass_view", "GET"): R(LOGIN, 404, 404, 404, args={"pass_id": 999_999}),
    ("passes.passes_page", "GET"): everyone(200),
    ("passes.auto_renew_on_view", "POST"): R(LOGIN, 415, 415, 415, args={"pass_id": 999_999}),
    ("passes.auto_renew_off_view", "DELETE"): R(LOGIN, 404, 404, 404, args={"pass_id": 999_999}),
    ("passes.buy_pass_page", "POST"): R(LOGIN, 302, 302, 302),  # no product: back to /passes, said why
    ("passes.pay_pass_page", "GET"): R(LOGIN, 404, 404, 404, args={"pass_id": 999_999}),
    ("passes.pass_status", "GET"): R(LOGIN, 404, 404, 404, args={"pass_id": 999_999}),
    ("payments.simulate_transfer", "POST"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    # bank feeds (not configured in the matrix app: 404, as for a club without them)
    ("bank_webhooks.sepay", "POST"): everyone(404),
    ("bank_webhooks.casso", "POST"): everyone(404),
    # operations
    ("ops.ping", "GET"): everyone(200),
    # booking pages
    ("pages.book", "POST"): R(LOGIN, OK, OK, OK, args={"session_id": "session"}),
    ("pages.my_bookings", "GET"): R(LOGIN, 200, 200, 200),
    ("pages.booking_detail", "GET"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("pages.cancel", "POST"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("pages.join_waitlist", "POST"): R(LOGIN, OK, OK, OK, args={"session_id": "session"}),
    ("pages.leave_waitlist", "POST"): R(LOGIN, 404, 404, 404, args={"entry_id": 999_999}),
    ("pages.set_language", "GET"): everyone(302, args={"code": "en"}),
    ("pages.set_language", "POST"): everyone(302, args={"code": "en"}),
    # door
    ("door.checkin_view", "POST"): R(LOGIN, 403, OK, OK),  # the matrix's form body: 415 for staff
    ("door.undo_checkin_view", "DELETE"): R(LOGIN, 403, 404, 404, args={"booking_id": 999_999}),
    ("door.door_session_view", "GET"): R(LOGIN, 403, 404, 200, args={"session_id": "session"}),
    ("door.regenerate_ticket_view", "POST"): R(LOGIN, 403, 404, 404, args={"booking_id": 999_999}),
    ("door.door_page", "GET"): R(LOGIN, 403, 200, 200),
    ("door.ticket_page", "GET"): everyone(404, args={"secret": "a" * 32}),
    ("door.ticket_checkin", "POST"): R(LOGIN, 403, 404, 404, args={"secret": "a" * 32}),
    # calendar: templates (admins), feeds, the profile's feed link, add-to-calendar
    ("calendar.list_templates_view", "GET"): R(LOGIN, 403, 403, 200),
    ("calendar.create_template_view", "POST"): R(LOGIN, 403, 403, 415),  # the matrix's form body
    ("calendar.get_template_view", "GET"): R(LOGIN, 403, 403, 404, args={"template_id": 999_999}),
    ("calendar.update_template_view", "PUT"): R(LOGIN, 403, 403, 415, args={"template_id": 999_999}),
    ("calendar.delete_template_view", "DELETE"): R(LOGIN, 403, 403, 404, args={"template_id": 999_999}),
    ("calendar.skip_date_view", "POST"): R(LOGIN, 403, 403, 415, args={"template_id": 999_999}),
    ("calendar.public_feed", "GET"): everyone(200),
    ("calendar.player_feed", "GET"): everyone(404, args={"token": "x" * 43}),
    ("calendar.booking_file", "GET"): R(LOGIN, 404, 404, 404, args={"booking_id": 999_999}),
    ("calendar.create_feed_link", "POST"): R(LOGIN, 201, 201, 201),
    ("calendar.revoke_feed_link", "POST"): R(LOGIN, 302, 302, 302),
    ("session_templates.edit", "GET"): R(LOGIN, 403, 403, OK, args={"template_id": 999_999}),
    ("session_templates.edit", "POST"): R(LOGIN, 403, 403, OK, args={"template_id": 999_999}),
    ("session_templates.skip", "POST"): R(LOGIN, 403, 403, OK, args={"template_id": 999_999}),
    ("session_templates.delete", "POST"): R(LOGIN, 403, 403, OK, args={"template_id": 999_999}),
    ("strikes.player", "GET"): R(LOGIN, 403, OK, OK, args={"user_id": 999_999}),
    ("strikes.forgive", "POST"): R(LOGIN, 403, OK, OK, args={"strike_id": 999_999}),
    # staff area actions
    ("sessions.cancel", "POST"): ADMIN_ONLY,
    ("sessions.roster_csv", "GET"): R(LOGIN, 403, 403, OK, args={"session_id": "session"}),
    ("bookings.cancel", "POST"): STAFF,  # Core decides: an admin any booking, anyone their own
    ("bookings.refund", "POST"): ADMIN_ONLY,
    ("bookings.manual_refund", "POST"): ADMIN_ONLY,
    # staff area
    ("admin.index", "GET"): STAFF,
    ("admin.static", "GET"): everyone(200, args={"filename": "admin/js/helpers.js"}),
}

# Flask-Admin generates a dozen endpoints per model view; they share their view's guard.
PREFIX_RULES = {
    "sessions.": STAFF,
    "bookings.": STAFF,
    "players.": ADMIN_ONLY,
    "settings.": ADMIN_ONLY,
    "jobs.": ADMIN_ONLY,
    "audit.": ADMIN_ONLY,
    "session_templates.": ADMIN_ONLY,  # calendar
    "strikes.": STAFF,
    "reports.": ADMIN_ONLY,
    "passes_admin.": STAFF,
    "pass_products.": ADMIN_ONLY,
    "bank.": ADMIN_ONLY,
}
GENERIC_ARGS = {"export_type": "csv"}


def expectation(endpoint, method):
    if (endpoint, method) in ROUTES:
        return ROUTES[(endpoint, method)]
    for prefix, rule in PREFIX_RULES.items():
        if endpoint.startswith(prefix):
            return rule
    return None


def route_methods(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def apple_settings():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"APPLE_CLIENT_ID": "c", "APPLE_TEAM_ID": "t", "APPLE_KEY_ID": "k", "APPLE_PRIVATE_KEY": pem}


@pytest.fixture
def app_config(database_url, tmp_path):
    down = oidc_provider(f"http://127.0.0.1:{closed_port()}", label="Down SSO")
    return _test_config(
        database_url, tmp_path, OIDC_PROVIDERS={"down": down}, **apple_settings(), **NO_STRIPE
    )


def test_every_route_has_an_entry(app):
    missing = sorted(
        {
            f"{endpoint!r}, {method!r}"
            for rule, method in route_methods(app)
            if not expectation(endpoint := rule.endpoint, method)
        }
    )
    assert not missing, (
        "Routes without an access expectation; add a line for each to ROUTES in "
        "tests/test_access_matrix.py:\n  "
        + "\n  ".join(f"({m}): R(anonymous, player, organizer, admin)," for m in missing)
    )
    existing = {(rule.endpoint, method) for rule, method in route_methods(app)}
    stale = sorted(set(ROUTES) - existing)
    assert not stale, f"ROUTES lists endpoints the app no longer has; remove them: {stale}"


def _csrf(client):
    page = client.get("/auth/logout").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _check(expected, response, path):
    status = response.status_code
    to_login = status == 302 and "/auth/login" in response.headers.get("Location", "")
    if expected == LOGIN:
        return status == 401 if path.startswith("/api/") else to_login
    if expected == OK:
        return status < 500 and status not in (401, 403) and not to_login
    return status == expected


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(app, factory, now, role):
    club_session = factory.club_session(starts_at=now + timedelta(days=3))
    samples = {"session": club_session.id, "token": 999_999, "identity": 999_999}
    user = None
    if role != "anonymous":
        user = factory.user(role=role)
        Identity.create(user=user, provider="down", subject=f"s-{user.id}")
        spare = Identity.create(user=user, provider="apple", subject=f"a-{user.id}")
        token, _raw = tokens.create_token(user)
        samples.update(token=token.id, identity=spare.id)

    failures = []
    for rule, method in sorted(route_methods(app), key=lambda rm: (rm[0].rule, rm[1])):
        entry = expectation(rule.endpoint, method)
        if entry is None:
            continue  # reported by test_every_route_has_an_entry
        values = {**GENERIC_ARGS, **entry.args}
        values = {k: samples.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
        with app.test_request_context():
            path = app.url_for(rule.endpoint, **{k: v for k, v in values.items() if k in rule.arguments})
        client = app.test_client()  # a fresh browser per request: signing out must not leak into the next
        if user is not None:
            login(client, user)
        kwargs = {"query_string": entry.query}
        if method not in ("GET", "HEAD"):
            kwargs["data"] = {"csrf_token": _csrf(client)}
        response = client.open(path, method=method, **kwargs)
        expected = getattr(entry, role)
        if not _check(expected, response, path):
            failures.append(
                f"{method} {path} ({rule.endpoint}) as {role}: expected {expected}, "
                f"got {response.status_code} {response.headers.get('Location', '')}"
            )
    assert not failures, "\n".join(failures)
