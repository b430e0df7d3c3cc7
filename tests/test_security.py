"""Security hardening and abuse (issue 9): one test, or one parametrized test, per item.

CSRF on every unsafe route that rides on the browser session · security headers · rate limits per
user and per address (behind a proxy too) · no IDOR on booking ids · HTML escaped everywhere a
title or a name is shown · CSV exports neutralised against formula injection · secrets never logged.
"""

import csv
import email
import io
import logging
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from loafy.app import create_app
from loafy.booking.bookings import book_session
from loafy.models import ALL_MODELS, Booking, Identity
from loafy.people import tokens
from public import CSRF_EXEMPT_ENDPOINTS
from tests.conftest import _close_pool, _test_config
from tests.helpers import csrf_token, login, reload
from tests.oidc_fixtures import (
    CLIENT_SECRET,
    authorize,
    closed_port,
    local_path,
    new_subject,
    oidc_issuer,  # noqa: F401 - a fixture
    oidc_provider,
    set_claims,
    start_login,
)
from tests.stripe_fixtures import (  # noqa: F401 - fixtures
    SECRET_KEY,
    WEBHOOK_SECRET,
    localstripe_url,
    served,
    stripe_live,
    stripe_settings,
    wait_for,
)

APP_SECRET = "loafy-security-test-secret-key-7f3a9c2e"
STRIPE_SECRET = SECRET_KEY
UNSAFE = {"POST", "PUT", "DELETE", "PATCH"}
EXPECTED_EXEMPT = {
    "payments.stripe_webhook",
    "auth.apple_form_post",
    "bank_webhooks.sepay",  # signed by the bank feed's key or HMAC, not a browser session
    "bank_webhooks.casso",
}
CSRF_MESSAGE = "expired or was sent from elsewhere"
EN = {"Accept-Language": "en"}


def apple_settings():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"APPLE_CLIENT_ID": "c", "APPLE_TEAM_ID": "t", "APPLE_KEY_ID": "k", "APPLE_PRIVATE_KEY": pem}


@pytest.fixture
def app_config(database_url, tmp_path, localstripe_url, oidc_issuer, request):  # noqa: F811
    """Stripe on localstripe, a real OIDC provider ("dev") and one that is down; a test may add more
    settings with `@pytest.mark.parametrize("app_config", [{...}], indirect=True)`."""
    providers = {
        "dev": oidc_provider(oidc_issuer),
        "down": oidc_provider(f"http://127.0.0.1:{closed_port()}", label="Down SSO"),
    }
    return _test_config(
        database_url,
        tmp_path,
        SECRET_KEY=APP_SECRET,
        OIDC_PROVIDERS=providers,
        **stripe_settings(localstripe_url),
        **apple_settings(),
        **getattr(request, "param", {}),
    )


def is_csrf_refusal(response):
    if response.status_code != 400:
        return False
    if response.is_json:
        return (response.get_json().get("error") or {}).get("code") == "csrf"
    return CSRF_MESSAGE in response.get_data(as_text=True)


def snapshot():
    """Every row of every table: a refused request must leave all of them exactly as they were."""
    return {m._meta.table_name: sorted(map(repr, m.select().tuples())) for m in ALL_MODELS}


def signed_in(client):
    response = client.get("/api/auth/me")
    return response.status_code == 200


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


# --- CSRF everywhere -----------------------------------------------------------------------------

SESSION_FORM = {
    "title": "Forged session",
    "description": "",
    "location": "Somewhere",
    "starts_at": "2026-12-20T18:00",
    "ends_at": "2026-12-20T20:00",
    "max_slots": "10",
    "price": "50000",
    "status": "published",
    "booking_opens_at": "2026-11-20T18:00",
    "allow_pay_at_door": "y",
}


def unsafe_routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & UNSAFE):
            yield rule, method


def csrf_world(factory, now):
    """An admin with a token, two identities and a booking; a player with a booking; a draft."""
    admin = factory.user(role="admin", name="Admin An")
    player = factory.user(name="Player Binh")
    club_session = factory.club_session(starts_at=now + timedelta(days=5))
    empty = factory.club_session(starts_at=now + timedelta(days=6))
    draft = factory.club_session(status="draft", starts_at=now + timedelta(days=7))
    Identity.create(user=admin, provider="dev", subject="admin-dev")
    spare = Identity.create(user=admin, provider="down", subject="admin-down")
    token, raw = tokens.create_token(admin, "admin's token")
    own = book_session(admin, club_session, 0, "bank_transfer", now)
    theirs = book_session(player, club_session, 1, "stripe", now)
    product = factory.product("pack")
    return {
        "admin": admin,
        "player": player,
        "raw": raw,
        "product": product.id,
        "args": {
            "session_id": club_session.id,
            "booking_id": own.id,
            "token_id": token.id,
            "code": "en",
            "secret": "a" * 32,  # door: a ticket secret no booking has
            "strike_id": 999_999,  # a strike that does not exist
            "template_id": 999_999,  # a session template that does not exist
            "entry_id": 1,  # a waitlist place: none exists, and the CSRF check answers first anyway
            "product_id": product.id,
            "pass_id": factory.paid_pass(player, "pack", product=product).id,
        },
        "identity_id": spare.id,
        "session": club_session.id,
        "empty": empty.id,
        "draft": draft.id,
        "own": own.id,
        "theirs": theirs.id,
    }


def forged_request(w, endpoint):
    """A body that would change something if the route ran: (query, form data, JSON)."""
    s, theirs, player = w["session"], w["theirs"], w["player"].id
    json_bodies = {
        "api.create_session_view": {
            "title": "Forged",
            "starts_at": "2026-12-20T11:00:00Z",
            "ends_at": "2026-12-20T13:00:00Z",
            "max_slots": 10,
            "price": 0,
            "status": "published",
        },
        "api.update_session_view": {"title": "Forged title"},
        "api.create_booking_view": {"session_id": w["empty"], "guest_count": 0, "payment_method": "stripe"},
        "payments.create_intent": {"booking_id": w["own"]},
        "passes.create_product_view": {"name": "Forged", "kind": "period", "price": 1, "duration_days": 9},
        "passes.update_product_view": {"price": 1},
        "passes.buy_pass_view": {"product_id": w["product"], "payment_method": "cash"},
        "passes.auto_renew_on_view": {"payment_method": "pm_card_visa"},
    }
    forms = {
        "pages.book": {"guest_count": "0", "payment_method": "stripe"},
        "profile.create_token": {"name": "forged"},
        "sessions.create_view": SESSION_FORM,
        "sessions.edit_view": SESSION_FORM,
        "sessions.delete_view": {"id": w["empty"]},
        "sessions.action_view": {"action": "delete", "rowid": w["empty"]},
        "sessions.ajax_update": {"list_form_pk": s, "title": "Forged title"},
        "sessions.cancel": {"id": s, "reason": "forged"},
        "sessions.publish": {"id": w["draft"]},
        "bookings.mark_paid": {"id": theirs, "method": "cash"},
        "bookings.check_in": {"id": theirs},
        "bookings.cancel": {"id": theirs, "reason": "forged"},
        "bookings.refund": {"id": theirs},
        "bookings.delete_view": {"id": theirs},
        "bookings.action_view": {"action": "delete", "rowid": theirs},
        "bookings.ajax_update": {"list_form_pk": theirs, "status": "cancelled"},
        "players.set_role": {"id": player, "role": "admin"},
        "passes.buy_pass_page": {"product_id": w["product"], "payment_method": "cash"},
        "passes_admin.sell": {"user_id": player, "product_id": w["product"], "method": "grant"},
        "passes_admin.cancel": {"id": w["args"]["pass_id"]},
        "players.edit_view": {"name": "Forged name"},
        "players.delete_view": {"id": player},
        "players.action_view": {"action": "delete", "rowid": player},
        "players.ajax_update": {"list_form_pk": player, "name": "Forged name"},
        "settings.index": {"max_guests": "0", "payment_deadline_minutes": "5", "club_name": "Forged"},
        "auth.apple_form_post": {"code": "c", "state": "s"},
    }
    query = {}
    if endpoint.endswith(".edit_view"):
        query["id"] = player if endpoint.startswith("players.") else theirs if "bookings" in endpoint else s
    if endpoint in json_bodies:
        return query, None, json_bodies[endpoint]
    return query, forms.get(endpoint, {"id": "1"}), None


def route_url(app, w, rule):
    values = {**w["args"], "identity_id": w["identity_id"]}
    with app.test_request_context():
        return app.url_for(rule.endpoint, **{k: v for k, v in values.items() if k in rule.arguments})


def test_the_csrf_exemptions_are_exactly_the_signed_callbacks(app):
    assert CSRF_EXEMPT_ENDPOINTS == EXPECTED_EXEMPT
    endpoints = {(rule.endpoint, method) for rule, method in unsafe_routes(app)}
    for endpoint in EXPECTED_EXEMPT:
        assert (endpoint, "POST") in endpoints, f"{endpoint} is exempt but no longer exists"
    assert not app.extensions["csrf"]._exempt_views and not app.extensions["csrf"]._exempt_blueprints


def test_every_unsafe_route_refuses_a_session_request_without_csrf_token(app, factory, now):
    """Signed in as an admin by the session cookie, no token → 400 from the CSRF check, nothing changed."""
    w = csrf_world(factory, now)
    routes = sorted(unsafe_routes(app), key=lambda rm: (rm[0].rule, rm[1]))
    assert len(routes) > 30, "the route table looks truncated"
    seen = {rule.endpoint.partition(".")[0] for rule, _ in routes}
    assert {
        "pages",
        "api",
        "profile",
        "auth",
        "payments",
        "sessions",
        "bookings",
        "players",
        "settings",
    } <= seen

    client = login(app.test_client(), w["admin"])
    before = snapshot()
    failures, exempt_answered = [], {}
    for rule, method in routes:
        path = route_url(app, w, rule)
        query, data, json_body = forged_request(w, rule.endpoint)
        for attempt in ({}, {"X-CSRFToken": "forged"}):
            response = client.open(
                path, method=method, query_string=query, data=data, json=json_body, headers={**EN, **attempt}
            )
            if rule.endpoint in EXPECTED_EXEMPT:
                exempt_answered[rule.endpoint] = response.status_code
                assert not is_csrf_refusal(response)
                continue
            if not is_csrf_refusal(response):
                failures.append(f"{method} {path} ({rule.endpoint}) {attempt}: {response.status_code}")
            if not signed_in(client):
                failures.append(f"{method} {path} ({rule.endpoint}) signed the admin out")
                login(client, w["admin"])
    assert not failures, "unsafe requests without a CSRF token were not refused:\n" + "\n".join(failures)
    assert snapshot() == before, "a refused request changed the database"
    assert exempt_answered["auth.apple_form_post"] == 303  # bounced to the GET callback (state checked)
    assert exempt_answered["payments.stripe_webhook"] == 400  # no Stripe signature: refused by it


def test_a_bearer_token_needs_no_csrf_token(app, factory, now):
    """The same requests with `Authorization: Bearer` and no cookie get past the CSRF check."""
    w = csrf_world(factory, now)
    client = app.test_client()
    response = client.post(
        "/api/bookings",
        json={"session_id": w["empty"], "guest_count": 0, "payment_method": "stripe"},
        headers=bearer(w["raw"]),
    )
    assert response.status_code == 201, response.data
    assert Booking.get_by_id(response.get_json()["id"]).user_id == w["admin"].id

    failures = []
    for rule, method in sorted(unsafe_routes(app), key=lambda rm: (rm[0].rule, rm[1])):
        query, data, json_body = forged_request(w, rule.endpoint)
        response = app.test_client().open(
            route_url(app, w, rule),
            method=method,
            query_string=query,
            data=data,
            json=json_body,
            headers={**EN, **bearer(w["raw"])},
        )
        if is_csrf_refusal(response) or response.status_code >= 500:
            failures.append(f"{method} {rule.rule} ({rule.endpoint}): {response.status_code}")
    assert not failures, "requests with a bearer token were refused:\n" + "\n".join(failures)


def test_a_bogus_bearer_header_does_not_unlock_the_cookie_session(app, factory, now):
    """Skipping CSRF for "Bearer" API requests is safe only if the cookie is then ignored; outside
    the API the header means nothing, so the cookie session still needs its CSRF token."""
    w = csrf_world(factory, now)
    client = login(app.test_client(), w["admin"])
    before = snapshot()
    for header in ("Bearer nonsense", "Bearer ", "Bearer lfy_forged"):
        response = client.post(
            "/api/bookings",
            json={"session_id": w["empty"], "payment_method": "stripe"},
            headers={"Authorization": header},
        )
        assert response.status_code == 401, (header, response.status_code)
        response = client.post(
            "/admin/players/role/",
            data={"id": w["player"].id, "role": "admin"},
            headers={"Authorization": header},
        )
        assert response.status_code == 400 and "csrf" in response.get_data(as_text=True).lower()
    assert snapshot() == before


# --- security headers ----------------------------------------------------------------------------


def csp(response):
    header = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("path", ["/", "/sessions", "/auth/login", "/api/sessions", "/nope", "/ping"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    policy = csp(response)
    assert "https://js.stripe.com" in policy["script-src"]
    nonces = [v for v in policy["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1 and len(nonces[0]) > len("'nonce-'") + 16
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers  # testing: no HSTS


def test_the_pay_page_inline_script_carries_this_responses_nonce(client, factory, now, localstripe_url):  # noqa: F811
    player = factory.user()
    booking = book_session(player, factory.club_session(), 0, "stripe", now)
    login(client, player)
    pages = [client.get(f"/bookings/{booking.id}/pay") for _ in range(2)]
    nonces = []
    for page in pages:
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        (nonce,) = [v[len("'nonce-") : -1] for v in csp(page)["script-src"] if v.startswith("'nonce-")]
        nonces.append(nonce)
        scripts = re.findall(r"<script\b([^>]*)>", html)
        inline = [attrs for attrs in scripts if "src=" not in attrs]
        assert inline, "the pay page has its inline script"
        assert all(f'nonce="{nonce}"' in attrs for attrs in inline), inline
        # Stripe.js itself (localstripe's stand-in here) loads from an origin the policy names.
        external = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs in scripts if "src=" in attrs]
        assert f"{localstripe_url}/js.stripe.com/v3/" in external
        assert localstripe_url in csp(page)["script-src"]
    assert nonces[0] != nonces[1], "a nonce must be fresh on every response"


@pytest.mark.parametrize(("env", "hsts"), [("production", True), ("development", False), ("testing", False)])
def test_hsts_only_in_production(database_url, tmp_path, env, hsts):
    extra = {"LOAFY_ENV": env, "SECRET_KEY": APP_SECRET, "JOBS_INLINE": "1"}
    if env == "production":
        extra.update(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x")
    app = create_app(_test_config(database_url, tmp_path, **extra))
    try:
        response = app.test_client().get("/ping")
    finally:
        _close_pool()  # this app's pool, not the fixture's: nothing else closes it
    assert response.status_code == 200
    if hsts:
        value = response.headers["Strict-Transport-Security"]
        assert int(re.search(r"max-age=(\d+)", value).group(1)) >= 15_552_000  # at least 180 days
    else:
        assert "Strict-Transport-Security" not in response.headers
    assert csp(response)["frame-ancestors"] == ["'none'"]


# --- rate limits ---------------------------------------------------------------------------------

LIMITS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_BOOKING_PER_USER": "3 per minute",
    "RATELIMIT_BOOKING_PER_IP": "5 per minute",
    "RATELIMIT_LOGIN_PER_IP": "2 per minute",
}


def api_book(client, session_id, ip, headers=None, **environ):
    return client.post(
        "/api/bookings",
        json={"session_id": session_id, "payment_method": "stripe"},
        headers=headers or {},
        environ_base={"REMOTE_ADDR": ip, **environ},
    )


def form_book(client, session_id, ip):
    return client.post(
        f"/sessions/{session_id}/book",
        data={"guest_count": "0", "payment_method": "stripe", "csrf_token": csrf_token(client)},
        headers=EN,
        environ_base={"REMOTE_ADDR": ip},
    )


def is_limited(response):
    if response.status_code != 429:
        return False
    if response.is_json:
        return response.get_json()["error"]["code"] == "rate_limited"
    return '<p class="error-code" aria-hidden="true">429</p>' in response.get_data(as_text=True)


@pytest.mark.parametrize("app_config", [LIMITS], indirect=True)
@pytest.mark.parametrize("channel", ["api", "form"])
def test_booking_is_limited_per_user(app, factory, channel):
    sessions = [factory.club_session() for _ in range(4)]
    player = factory.user()
    client = app.test_client()
    if channel == "api":
        headers = bearer(tokens.create_token(player)[1])
        attempt = lambda s, ip: api_book(client, s.id, ip, headers)  # noqa: E731
    else:
        login(client, player)
        attempt = lambda s, ip: form_book(client, s.id, ip)  # noqa: E731
    answers = [attempt(s, f"10.0.1.{n}") for n, s in enumerate(sessions)]  # a new address every time
    assert [is_limited(r) for r in answers] == [False, False, False, True], [r.status_code for r in answers]
    assert answers[-1].headers.get("Retry-After")
    assert Booking.select().where(Booking.user == player.id).count() == 3
    assert not is_limited(
        api_book(
            app.test_client(), sessions[3].id, "10.0.1.9", bearer(tokens.create_token(factory.user())[1])
        )
    )


@pytest.mark.parametrize("app_config", [LIMITS], indirect=True)
@pytest.mark.parametrize("channel", ["api", "form"])
def test_players_behind_one_address_are_counted_per_player(app, factory, channel):
    """A club's Wi-Fi or a carrier's NAT: many signed-in players, one address, no 429."""
    club_session = factory.club_session(max_slots=50)
    answers = []
    for _ in range(8):  # eight players behind one address, more than its anonymous budget
        player, client = factory.user(), app.test_client()
        if channel == "api":
            answers.append(
                api_book(client, club_session.id, "10.0.2.1", bearer(tokens.create_token(player)[1]))
            )
        else:
            answers.append(form_book(login(client, player), club_session.id, "10.0.2.1"))
    assert [is_limited(r) for r in answers] == [False] * 8, [r.status_code for r in answers]
    assert Booking.select().count() == 8


@pytest.mark.parametrize("app_config", [LIMITS], indirect=True)
@pytest.mark.parametrize("channel", ["api", "form"])
def test_anonymous_booking_attempts_are_limited_per_address(app, factory, channel):
    club_session = factory.club_session(max_slots=50)
    client = app.test_client()

    def attempt(ip):
        if channel == "api":
            return api_book(client, club_session.id, ip)
        return client.post(
            f"/sessions/{club_session.id}/book",
            data={"guest_count": "0"},
            headers=EN,
            environ_base={"REMOTE_ADDR": ip},
        )

    answers = [attempt("10.0.2.9") for _ in range(6)]
    assert [is_limited(r) for r in answers] == [False] * 5 + [True], [r.status_code for r in answers]
    assert answers[0].status_code in (302, 401)  # sent to sign in
    assert not is_limited(attempt("10.0.2.10"))
    assert Booking.select().count() == 0


@pytest.mark.parametrize("app_config", [LIMITS], indirect=True)
def test_the_booking_budget_is_shared_by_the_api_and_the_form(app, factory):
    """One player cannot double their budget by alternating the form and the API."""
    sessions = [factory.club_session() for _ in range(4)]
    player = factory.user()
    client = login(app.test_client(), player)
    headers = bearer(tokens.create_token(player)[1])
    answers = [
        api_book(client, sessions[0].id, "10.0.3.1", headers),
        form_book(client, sessions[1].id, "10.0.3.2"),
        api_book(client, sessions[2].id, "10.0.3.3", headers),
        form_book(client, sessions[3].id, "10.0.3.4"),
    ]
    assert [is_limited(r) for r in answers] == [False, False, False, True], [r.status_code for r in answers]


@pytest.mark.parametrize("app_config", [LIMITS], indirect=True)
def test_sign_in_start_is_limited_per_address(app):
    client = app.test_client()
    starts = [client.get("/auth/login/down", environ_base={"REMOTE_ADDR": "10.0.4.1"}) for _ in range(3)]
    assert [is_limited(r) for r in starts] == [False, False, True], [r.status_code for r in starts]
    assert starts[0].status_code == 302
    assert not is_limited(client.get("/auth/login/down", environ_base={"REMOTE_ADDR": "10.0.4.2"}))


@pytest.mark.parametrize(
    ("app_config", "separate"),
    [({**LIMITS, "TRUSTED_PROXIES": 1}, True), ({**LIMITS, "TRUSTED_PROXIES": 0}, False)],
    indirect=["app_config"],
)
def test_forwarded_addresses_count_only_behind_a_trusted_proxy(app, separate):
    """Behind the router (TRUSTED_PROXIES=1) each phone has its own budget; without it, a client
    cannot pick a fresh budget by sending its own X-Forwarded-For."""
    client = app.test_client()

    def start(forwarded):
        return client.get(
            "/auth/login/down",
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": "10.0.5.1"},  # the router
        )

    assert [is_limited(start("203.0.113.7")) for _ in range(2)] == [False, False]
    assert is_limited(start("203.0.113.7"))
    assert is_limited(start("198.51.100.8")) is not separate
    # Only the address the trusted proxy saw counts: a spoofed first hop does not buy a new budget.
    assert is_limited(start("192.0.2.99, 203.0.113.7"))


# --- no IDOR -------------------------------------------------------------------------------------

# Every way to name a booking by id: endpoint → (method, path template).
BOOKING_ID_ROUTES = {
    "pages.booking_detail": ("GET", "/bookings/{id}"),
    "pages.cancel": ("POST", "/bookings/{id}/cancel"),
    "payments.pay": ("GET", "/bookings/{id}/pay"),
    "payments.booking_status": ("GET", "/bookings/{id}/status.json"),
    "api.get_booking_view": ("GET", "/api/bookings/{id}"),
    "api.cancel_booking_view": ("DELETE", "/api/bookings/{id}"),
    "calendar.booking_file": ("GET", "/bookings/{id}/calendar.ics"),
    "payments.create_intent": ("POST", "/api/payments/stripe/intent"),  # {"booking_id": id} in the body
    "payments.simulate_transfer": ("POST", "/bookings/{id}/simulate-transfer"),  # development only
}


def ask_about_booking(client, endpoint, booking_id, headers):
    method, template = BOOKING_ID_ROUTES[endpoint]
    path = template.format(id=booking_id)
    if endpoint == "payments.create_intent":
        return client.post(path, json={"booking_id": booking_id}, headers=headers)
    if method == "POST":
        return client.post(path, data={"csrf_token": headers.get("X-CSRFToken", "")}, headers=headers)
    return client.open(path, method=method, headers=headers)


# door: staff-only routes naming a booking by id; a player (even its owner) gets 403, an organizer of
# another session the same 404 as for no booking at all (test_staff_booking_id_routes_hide_others').
STAFF_BOOKING_ID_ROUTES = {
    "door.undo_checkin_view": ("DELETE", "/api/checkin/{id}"),
    "door.regenerate_ticket_view": ("POST", "/api/bookings/{id}/ticket"),
}


def test_every_booking_id_route_is_listed(app):
    """A new route taking a booking id must be added to BOOKING_ID_ROUTES (and so to the IDOR test)."""
    found = {rule.endpoint for rule in app.url_map.iter_rules() if "booking_id" in rule.arguments}
    assert found | {"payments.create_intent"} == set(BOOKING_ID_ROUTES) | set(STAFF_BOOKING_ID_ROUTES)


@pytest.mark.parametrize("endpoint", sorted(STAFF_BOOKING_ID_ROUTES))
def test_staff_booking_id_routes_hide_others(app, factory, now, endpoint):
    method, template = STAFF_BOOKING_ID_ROUTES[endpoint]
    owner = factory.user(name="Owner")
    booking = book_session(
        owner, factory.club_session(created_by=factory.user(role="organizer"), price=0), 0, "cash", now
    )
    clients = []
    for user, expected in ((owner, 403), (factory.user(role="organizer"), 404)):
        client = login(app.test_client(), user)
        clients.append((client, {**EN, "X-CSRFToken": csrf_token(client)}, user, expected))
    before = snapshot()
    for client, headers, user, expected in clients:
        response = client.open(template.format(id=booking.id), method=method, headers=headers)
        missing = client.open(template.format(id=999_999), method=method, headers=headers)
        assert response.status_code == expected, (user.role_id, response.data[:300])
        assert response.get_json() == missing.get_json()
        assert booking.code not in response.get_data(as_text=True)
    assert snapshot() == before


API_BOOKING_ID_ROUTES = sorted(e for e, (_m, path) in BOOKING_ID_ROUTES.items() if path.startswith("/api/"))


@pytest.mark.parametrize(
    ("endpoint", "auth"),
    [(endpoint, "session") for endpoint in sorted(BOOKING_ID_ROUTES)]
    + [(endpoint, "token") for endpoint in API_BOOKING_ID_ROUTES],  # tokens open the API only
)
def test_another_players_booking_is_404_everywhere(app, factory, now, endpoint, auth):
    owner, stranger = factory.user(name="Owner"), factory.user(name="Stranger")
    booking = book_session(owner, factory.club_session(), 1, "stripe", now)
    client = app.test_client()
    if auth == "session":
        login(client, stranger)
        headers = {**EN, "X-CSRFToken": csrf_token(client), "Accept": "application/json"}
    else:
        headers = {**EN, **bearer(tokens.create_token(stranger)[1]), "Accept": "application/json"}
        assert client.get("/api/auth/me", headers=headers).status_code == 200  # stamps last_used_at once
    before = snapshot()

    response = ask_about_booking(client, endpoint, booking.id, headers)
    missing = ask_about_booking(client, endpoint, 999_999, headers)
    assert response.status_code == 404, (response.status_code, response.data[:300])
    assert response.get_json() is not None
    assert response.get_json() == missing.get_json(), "the answer must not hint that the booking exists"
    assert booking.code not in response.get_data(as_text=True)
    assert snapshot() == before

    # The owner is let through on the same route (so the 404 above was about who asked).
    owner_client = login(app.test_client(), owner)
    owner_headers = {**EN, "X-CSRFToken": csrf_token(owner_client), "Accept": "application/json"}
    owner_answer = ask_about_booking(owner_client, endpoint, booking.id, owner_headers).status_code
    if endpoint == "payments.simulate_transfer":  # development only: 404 to everyone here
        assert owner_answer == 404
    else:
        assert owner_answer in (200, 302)


@pytest.mark.parametrize("endpoint", sorted(set(BOOKING_ID_ROUTES) - set(API_BOOKING_ID_ROUTES)))
def test_a_token_opens_no_page_about_a_booking(app, factory, now, endpoint):
    """Even the owner's own token: pages need the browser session, and send a token to sign in."""
    owner = factory.user(name="Owner")
    booking = book_session(owner, factory.club_session(), 1, "stripe", now)
    headers = {**EN, **bearer(tokens.create_token(owner)[1])}
    before = snapshot()
    response = ask_about_booking(app.test_client(), endpoint, booking.id, headers)
    assert response.status_code in (302, 401), (response.status_code, response.data[:300])
    assert response.status_code == 401 or "/auth/login" in response.headers["Location"]
    assert booking.code not in response.get_data(as_text=True)
    assert snapshot() == before


def test_another_players_bookings_are_not_listed(client, factory, now):
    owner, stranger = factory.user(), factory.user()
    booking = book_session(owner, factory.club_session(), 0, "stripe", now)
    login(client, stranger)
    assert client.get("/api/bookings").get_json()["items"] == []
    assert booking.code not in client.get("/bookings").get_data(as_text=True)


# --- HTML escaped --------------------------------------------------------------------------------


def hostile(n):
    """A text that runs script n if it reaches the page unescaped (as an element or in an attribute)."""
    return f"<script>alert({n})</script>", f'"><img src=x onerror=alert({n})>'


SCRIPT, ATTRIBUTE = hostile(1)
HOSTILE_TITLE = "Cầu lông " + "".join(hostile(1))
HOSTILE_NAME = "Lan " + "".join(reversed(hostile(2)))
RAW_MARKERS = ("<script>alert", "<img src=x")


def escaped_markers(n):
    return (f"&lt;script&gt;alert({n})&lt;/script&gt;", f"&lt;img src=x onerror=alert({n})&gt;")


def assert_escaped(html, where, shows=(1,)):
    """No hostile text runs; the hostile texts numbered in `shows` are there, as text."""
    for raw in RAW_MARKERS:
        assert raw not in html, f"{where}: {raw!r} is not escaped"
    for n in shows:
        assert all(m in html for m in escaped_markers(n)), f"{where}: hostile text {n} is not shown"


def hostile_world(factory, now):
    admin = factory.user(role="admin", name="Admin " + "".join(hostile(3)))
    player = factory.user(name=HOSTILE_NAME)
    club_session = factory.club_session(
        title=HOSTILE_TITLE, location=f"Hall {ATTRIBUTE}", description=f"Bring {SCRIPT}", created_by=admin
    )
    return admin, player, club_session


def test_titles_and_names_are_escaped_on_every_page(app, factory, now, outbox):
    admin, player, club_session = hostile_world(factory, now)
    client = login(app.test_client(), player)
    created = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "payment_method": "stripe"},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert created.status_code == 201
    booking = Booking.get_by_id(created.get_json()["id"])
    client.post("/profile/tokens", data={"name": f"token {SCRIPT}", "csrf_token": csrf_token(client)})

    # path → which hostile texts it shows: 1 the session title, 2 the player's name, 3 the admin's name.
    player_pages = {
        "/": (1,),
        "/sessions": (1,),
        f"/sessions/{club_session.id}": (1,),
        "/bookings": (1,),
        f"/bookings/{booking.id}": (1,),
        f"/bookings/{booking.id}/pay": (1,),
        "/profile": (2,),
    }
    for path, shows in player_pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert_escaped(response.get_data(as_text=True), path, shows)

    staff = login(app.test_client(), admin)
    token = csrf_token(staff)
    staff.post("/admin/players/role/", data={"id": player.id, "role": "organizer", "csrf_token": token})
    admin_pages = {
        f"/bookings/{booking.id}": (1, 2),  # staff see who booked
        "/admin/": (1, 2),
        "/admin/sessions/": (1, 3),
        f"/admin/sessions/details/?id={club_session.id}": (1, 3),
        f"/admin/sessions/edit/?id={club_session.id}": (1,),
        "/admin/bookings/": (1, 2),
        f"/admin/bookings/details/?id={booking.id}": (1, 2),
        "/admin/players/": (2, 3),
        f"/admin/players/details/?id={player.id}": (1, 2),  # and the flash "<name> is now organizer."
    }
    for path, shows in admin_pages.items():
        response = staff.get(path)
        assert response.status_code == 200, path
        assert_escaped(response.get_data(as_text=True), path, shows)
    # The audit log renders its details as markup: a hostile reason must still come out as text.
    cancelled = staff.post(
        "/admin/sessions/cancel/",
        data={"id": club_session.id, "reason": "".join(hostile(4)), "csrf_token": token},
    )
    assert cancelled.status_code == 302
    assert_escaped(staff.get("/admin/audit/").get_data(as_text=True), "/admin/audit/", (3, 4))
    search = staff.get("/admin/bookings/", query_string={"search": "".join(hostile(5))})
    assert_escaped(search.get_data(as_text=True), "the bookings search box", (5,))

    # The JSON API hands the text back as a plain string (escaping is the reader's job there).
    api = client.get(f"/api/sessions/{club_session.id}")
    assert api.mimetype == "application/json"
    assert api.get_json()["title"] == HOSTILE_TITLE
    login(client, player)  # the role change above signed the player out
    assert client.get("/api/auth/me").get_json()["user"]["name"] == HOSTILE_NAME
    assert client.get(f"/api/bookings/{booking.id}").get_json()["session"]["title"] == HOSTILE_TITLE

    # E-mail is plain text only: no HTML part a mail client would render.
    mails = sorted(outbox.glob("*.eml"))
    assert len(mails) == 2  # received, then cancelled with the session
    for path in mails:
        message = email.message_from_bytes(path.read_bytes())
        assert [part.get_content_type() for part in message.walk()] == ["text/plain"]
        body = message.get_payload(decode=True).decode()
        assert HOSTILE_TITLE in body and HOSTILE_NAME in body


# --- CSV exports ---------------------------------------------------------------------------------

FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x.test","Click")']


def read_csv(response):
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


@pytest.mark.parametrize("export", ["bookings", "roster"])
def test_csv_exports_neutralise_formulas(app, factory, now, export):
    admin = factory.user(role="admin")
    club_session = factory.club_session(title="=cmd|' /C calc'!A0", max_slots=20, created_by=admin)
    players = [factory.user(name=formula, email=f"@x{n}@example.com") for n, formula in enumerate(FORMULAS)]
    plain = factory.user(name="Nguyễn Lan")
    for player in [*players, plain]:
        book_session(player, club_session, 0, "bank_transfer", now)
    client = login(app.test_client(), admin)
    if export == "bookings":
        rows = read_csv(client.get("/admin/bookings/export.csv"))
    else:
        rows = read_csv(client.get(f"/admin/sessions/{club_session.id}/roster.csv"))
    header, body = rows[0], rows[1:]
    by_name = {row[header.index("player")]: row for row in body}
    assert len(body) == len(FORMULAS) + 1
    for formula in FORMULAS:
        row = by_name.get("'" + formula)
        assert row is not None, f"{formula!r} is not neutralised: {sorted(by_name)}"
        assert row[header.index("email")].startswith("'@x")
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r", f"a cell would run as a formula: {row}"
    assert plain.name in by_name  # ordinary text is left alone
    assert by_name[plain.name][header.index("amount_vnd")] == "100000"  # numbers stay numbers
    if export == "bookings":
        assert {row[header.index("session")] for row in body} == {"'" + club_session.title}


# --- secrets never logged ------------------------------------------------------------------------


def leaked(records, secrets):
    """(logger, secret) for every record whose message, arguments or traceback holds a secret."""
    found = []
    for record in records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.exc_info or "")]
        )
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        found += [(record.name, secret[:12]) for secret in secrets if secret in text]
    return found


def test_secrets_are_never_logged(app, app_config, factory, now, stripe_live, oidc_issuer, caplog, capsys):  # noqa: F811
    caplog.set_level(logging.DEBUG)  # the root logger: every library's debug output too
    _close_pool()  # the fixture app's connections: the second app below replaces the shared pool
    create_app(app_config)  # start-up, at DEBUG (same settings, so the fixture app keeps working)
    secrets = [
        APP_SECRET,
        STRIPE_SECRET,
        WEBHOOK_SECRET,
        CLIENT_SECRET,
        app_config["APPLE_PRIVATE_KEY"].split()[4],
    ]

    # Sign in through the real OIDC provider (client secret at the token endpoint; SECRET_KEY signs).
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="lan@example.com", email_verified=True, name="Lan")
    client = app.test_client()
    callback = authorize(start_login(client, "dev"), subject)
    assert client.get(local_path(callback)).status_code == 302
    assert signed_in(client)

    # Create a personal token on the profile page, then use it (and a near miss) on the API.
    page = client.post(
        "/profile/tokens", data={"name": "cli", "csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert page.status_code == 200 and len(page.history) == 1
    raw = re.search(r"lfy_[A-Za-z0-9_-]{20,}", page.get_data(as_text=True)).group(0)
    secrets.append(raw)
    api = app.test_client()
    created = api.post(
        "/api/bookings",
        json={"session_id": factory.club_session(price=150_000).id, "payment_method": "stripe"},
        headers=bearer(raw),
    )
    assert created.status_code == 201
    assert api.get("/api/auth/me", headers=bearer(raw[:-1] + "x")).status_code == 401

    # Pay: the Stripe secret key talks to Stripe, the webhook secret checks what Stripe sends back.
    intent = api.post(
        "/api/payments/stripe/intent", json={"booking_id": created.get_json()["id"]}, headers=bearer(raw)
    )
    assert intent.status_code == 200, intent.data
    secrets.append(intent.get_json()["client_secret"])  # Stripe: "don't store it, log it, embed it in URLs"
    stripe_live.pay(intent.get_json()["payment_intent_id"])
    booking = Booking.get_by_id(created.get_json()["id"])
    wait_for(lambda: reload(booking).status == "confirmed", message="the succeeded webhook")
    forged = stripe_live.deliver(
        {"id": "evt_forged", "type": "payment_intent.succeeded"}, signature="t=1,v1=00"
    )
    assert forged.status_code == 400

    token_id = re.search(
        r"/profile/tokens/(\d+)/revoke", client.get("/profile").get_data(as_text=True)
    ).group(1)
    client.post(f"/profile/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client)})
    assert api.get("/api/auth/me", headers=bearer(raw)).status_code == 401

    records = caplog.get_records("setup") + caplog.get_records("call")
    assert len(records) > 20, "the flow logged next to nothing: is DEBUG capture on?"
    assert not leaked(records, secrets), leaked(records, secrets)
    out = capsys.readouterr()
    assert not [s for s in secrets if s in out.out + out.err]


def test_the_dev_banner_shows_no_secret(capsys):
    from loafy.dev import devserver

    env = {
        "BASE_URL": "http://127.0.0.1:5000",
        "SECRET_KEY": APP_SECRET,
        **devserver.DEV_STRIPE,
        "OIDC_DEV_CLIENT_SECRET": "loafy-dev-secret",
        "GOOGLE_CLIENT_SECRET": "google-secret-value",
        "SMTP_PASSWORD": "smtp-password-value",
    }
    devserver._print_banner(env)
    banner = capsys.readouterr().out
    assert "Loafy is running at http://127.0.0.1:5000" in banner
    secrets = [
        APP_SECRET,
        *devserver.DEV_STRIPE.values(),
        "loafy-dev-secret",
        "google-secret-value",
        "smtp-password-value",
    ]
    secrets.remove(devserver.DEV_STRIPE["STRIPE_PUBLISHABLE_KEY"])  # public by design
    assert not [s for s in secrets if s in banner]
