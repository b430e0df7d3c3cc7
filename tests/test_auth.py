"""Sign-in against a real OpenID provider (oidc-provider-mock): the journey, its failures, sessions.

Every failure must end on the sign-in page with a message a person understands, never a 500,
and must leave no user or identity behind.
"""

from urllib.parse import urlencode

import pytest
import requests

from loafy.models import Identity, User
from tests.conftest import _test_config
from tests.helpers import csrf_token, english, login
from tests.oidc_fixtures import (
    authorize,
    closed_port,
    flashed,
    fresh_user_per_request,  # noqa: F401 - an autouse fixture
    junk_provider,
    local_path,
    new_subject,
    oidc_issuer,  # noqa: F401 - a fixture
    oidc_provider,
    query_of,
    set_claims,
    sign_in,
    start_login,
)

JUNK_KINDS = {
    "junkhtml": "html",
    "junklist": "list",
    "junktoken": "token-html",
    "noidtoken": "no-id-token",
    "badidtoken": "bad-id-token",
}


@pytest.fixture(scope="session")
def junk_base():
    with junk_provider() as url:
        yield url


@pytest.fixture
def app_config(database_url, tmp_path, oidc_issuer, junk_base):  # noqa: F811
    providers = {
        "dev": oidc_provider(oidc_issuer),
        "down": oidc_provider(f"http://127.0.0.1:{closed_port()}", label="Club SSO"),
    }
    for name, kind in JUNK_KINDS.items():
        providers[name] = oidc_provider(f"{junk_base}/{kind}", label="Junk SSO")
    return _test_config(database_url, tmp_path, OIDC_PROVIDERS=providers)


@pytest.fixture
def client(client):
    return english(client)  # the messages below are asserted in English; Vietnamese in test_pages


def assert_failed_sign_in(client, response, message):
    """Back on the sign-in page, with `message` waiting, nobody signed in and nothing created."""
    assert response.status_code == 302, response.data
    assert response.headers["Location"].endswith("/auth/login")
    messages = flashed(client)
    assert any(message in m for m in messages), messages
    page = client.get("/auth/login")
    assert page.status_code == 200
    assert message in page.get_data(as_text=True)
    assert client.get("/api/auth/me").status_code == 401
    assert User.select().count() == 0
    assert Identity.select().count() == 0


# --- the happy paths -------------------------------------------------------------------------


def test_first_sign_in_creates_a_player(client, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(
        oidc_issuer,
        subject,
        email="Lan.Nguyen@Example.com",
        email_verified=True,
        name="Nguyễn Thị Lan",
        picture="https://cdn.example.com/lan.png",
    )
    response = sign_in(client, oidc_issuer, subject)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"

    user = User.get()
    assert (user.name, user.email, user.role_id) == ("Nguyễn Thị Lan", "lan.nguyen@example.com", "player")
    assert user.avatar_url == "https://cdn.example.com/lan.png"
    assert user.last_login_at is not None
    identity = Identity.get()
    assert (identity.user_id, identity.provider, identity.subject) == (user.id, "dev", subject)
    assert identity.email_verified is True

    me = client.get("/api/auth/me").get_json()
    assert me["user"]["id"] == user.id
    assert me["user"]["roles"] == ["player"]


def test_returning_user_is_found_by_provider_and_subject(client, app, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="minh@example.com", email_verified=True, name="Minh")
    sign_in(client, oidc_issuer, subject)
    first = User.get()

    # Another browser, and the provider now reports another name and e-mail: still the same person.
    set_claims(oidc_issuer, subject, email="minh.new@example.com", email_verified=True, name="Minh T.")
    other = app.test_client()
    response = sign_in(other, oidc_issuer, subject)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert User.select().count() == 1
    assert Identity.select().count() == 1
    assert other.get("/api/auth/me").get_json()["user"]["id"] == first.id
    assert Identity.get().email == "minh.new@example.com"


def test_verified_email_links_to_the_existing_user(client, factory, oidc_issuer):  # noqa: F811
    existing = factory.user(email="hoa@example.com", name="Hoa", role="organizer")
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="HOA@example.com", email_verified=True, name="Someone else")
    response = sign_in(client, oidc_issuer, subject)
    assert response.status_code == 302 and response.headers["Location"] == "/"

    assert User.select().count() == 1
    identity = Identity.get()
    assert identity.user_id == existing.id
    me = client.get("/api/auth/me").get_json()["user"]
    assert (me["id"], me["role"], me["name"]) == (existing.id, "organizer", "Hoa")


@pytest.mark.parametrize("verified", [False, "false", None])
def test_unverified_email_does_not_link(client, factory, oidc_issuer, verified):  # noqa: F811
    existing = factory.user(email="hoa@example.com", name="Hoa", role="admin")
    subject = new_subject()
    claims = {"email": "hoa@example.com", "name": "Impostor"}
    if verified is not None:
        claims["email_verified"] = verified
    set_claims(oidc_issuer, subject, **claims)
    sign_in(client, oidc_issuer, subject)

    assert User.select().count() == 2
    newcomer = User.get(User.id != existing.id)
    assert newcomer.role_id == "player"
    assert newcomer.email is None  # the address belongs to someone else and is not proven
    assert Identity.get().user_id == newcomer.id
    assert client.get("/api/auth/me").get_json()["user"]["id"] == newcomer.id


def test_next_brings_the_user_back_to_a_local_page(client, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="a@example.com", email_verified=True)
    response = sign_in(client, oidc_issuer, subject, next_url="/sessions?status=all")
    assert response.headers["Location"] == "/sessions?status=all"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "http:evil.com",
        "///evil.com",
        "/\tevil.com",
        "javascript:alert(1)",
        "evil.com",
    ],
)
def test_next_never_leaves_the_site(client, oidc_issuer, target):  # noqa: F811
    page = client.get("/auth/login", query_string={"next": target}).get_data(as_text=True)
    assert "evil" not in page and "javascript" not in page

    subject = new_subject()
    set_claims(oidc_issuer, subject, email="b@example.com", email_verified=True)
    response = sign_in(client, oidc_issuer, subject, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"

    # Already signed in, /auth/login?next=... must not bounce off-site either.
    again = client.get("/auth/login", query_string={"next": target})
    assert again.status_code == 302 and again.headers["Location"] == "/"


# --- failures: each ends on the sign-in page with a message and nothing created ---------------


def test_denied_consent(client, oidc_issuer):  # noqa: F811
    callback = authorize(start_login(client), deny=True)
    assert query_of(callback)["error"] == "access_denied"
    response = client.get(local_path(callback))
    assert_failed_sign_in(client, response, "You cancelled signing in")


def test_sign_in_messages_are_in_vietnamese_by_default(app):
    browser = app.test_client()  # no English asked for
    response = browser.get("/auth/callback/dev?error=access_denied")
    assert any("Bạn đã huỷ đăng nhập" in m for m in flashed(browser))
    assert response.headers["Location"].endswith("/auth/login")


@pytest.mark.parametrize("forged_state", ["forged", "", None])
def test_state_mismatch(client, oidc_issuer, forged_state, caplog):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="c@example.com", email_verified=True)
    callback = authorize(start_login(client), subject)
    params = query_of(callback)
    if forged_state is None:
        params.pop("state")
    else:
        params["state"] = forged_state
    response = client.get("/auth/callback/dev?" + urlencode(params))
    assert_failed_sign_in(client, response, "We could not confirm your sign-in with Dev sign-in")
    assert "mismatching_state" in caplog.text


def test_callback_forged_in_another_browser(client, app, oidc_issuer):  # noqa: F811
    """A victim's callback URL played in the attacker's browser: that browser never started a sign-in."""
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="d@example.com", email_verified=True)
    callback = authorize(start_login(client), subject)
    attacker = english(app.test_client())
    response = attacker.get(local_path(callback))
    assert_failed_sign_in(attacker, response, "We could not confirm your sign-in")


def test_replayed_callback_is_refused(client, app, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="e@example.com", email_verified=True)
    callback = authorize(start_login(client), subject)
    assert client.get(local_path(callback)).headers["Location"] == "/"
    assert client.post("/auth/logout", data={"csrf_token": csrf_token(client)}).status_code == 302

    replay = client.get(local_path(callback))
    assert replay.status_code == 302 and replay.headers["Location"].endswith("/auth/login")
    assert any("could not confirm" in m for m in flashed(client))
    assert client.get("/api/auth/me").status_code == 401
    assert User.select().count() == 1 and Identity.select().count() == 1


def test_nonce_mismatch_is_refused(client, oidc_issuer, caplog):  # noqa: F811
    """A valid code from one sign-in sent with the state of another: the id_token's nonce does not match.

    The code is genuine and the state belongs to this browser, so only the nonce check stands in the way.
    """
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="f@example.com", email_verified=True)
    first = start_login(client)
    second = start_login(client)
    assert query_of(first)["nonce"] != query_of(second)["nonce"]
    callback = query_of(authorize(first, subject))
    forged = {"code": callback["code"], "state": query_of(second)["state"]}
    response = client.get("/auth/callback/dev?" + urlencode(forged))
    assert_failed_sign_in(client, response, "We could not confirm your sign-in")
    assert "'nonce'" in caplog.text  # refused by the nonce check, not by something earlier


def test_provider_unreachable(client):
    response = client.get("/auth/login/down")
    assert_failed_sign_in(client, response, "Club SSO is not answering right now")


def test_provider_goes_down_before_the_callback(client, app_config, oidc_issuer):  # noqa: F811
    """Discovery worked, the person chose an account, then the provider died before the token exchange."""
    from oidc_provider_mock import run_server_in_thread

    from loafy.app import create_app

    with run_server_in_thread(port=0) as server:
        issuer = f"http://localhost:{server.server_port}"
        config = {**app_config, "OIDC_PROVIDERS": {"brief": oidc_provider(issuer, label="Brief SSO")}}
        brief_app = create_app(config)
        browser = english(brief_app.test_client())
        subject = new_subject()
        set_claims(issuer, subject, email="g@example.com", email_verified=True)
        callback = authorize(start_login(browser, "brief"), subject)
    with pytest.raises(requests.ConnectionError):
        requests.get(issuer, timeout=2)
    response = browser.get(local_path(callback))
    assert_failed_sign_in(browser, response, "We could not confirm your sign-in with Brief SSO")


@pytest.mark.parametrize("provider", ["junkhtml", "junklist"])
def test_garbage_discovery_document(client, provider):
    response = client.get(f"/auth/login/{provider}")
    assert_failed_sign_in(client, response, "Junk SSO is not answering right now")


@pytest.mark.parametrize("provider", ["junktoken", "noidtoken", "badidtoken"])
def test_garbage_token_answer(client, provider):
    authorize_url = start_login(client, provider)
    state = query_of(authorize_url)["state"]
    response = client.get(f"/auth/callback/{provider}?" + urlencode({"code": "abc", "state": state}))
    assert_failed_sign_in(client, response, "We could not confirm your sign-in with Junk SSO")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"error": "server_error", "error_description": "boom"}, "Dev sign-in could not sign you in"),
        ({"error": "x" * 5000}, "Dev sign-in could not sign you in"),
        ({"code": "only-a-code"}, "We could not confirm your sign-in"),
        ({}, "We could not confirm your sign-in"),
    ],
)
def test_odd_callbacks_are_refused_politely(client, params, message):
    response = client.get("/auth/callback/dev?" + urlencode(params))
    assert_failed_sign_in(client, response, message)


def test_disabled_user_cannot_sign_in(client, factory, oidc_issuer):  # noqa: F811
    user = factory.user(email="gone@example.com", active=False)
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="gone@example.com", email_verified=True)
    response = sign_in(client, oidc_issuer, subject)
    assert response.headers["Location"].endswith("/auth/login")
    assert any("disabled" in m for m in flashed(client))
    assert Identity.select().count() == 0
    assert User.select().count() == 1 and User.get().id == user.id


def test_unknown_provider_is_404(client):
    assert client.get("/auth/login/nope").status_code == 404
    assert client.get("/auth/callback/nope?code=x&state=y").status_code == 404
    assert client.post("/auth/callback/apple", data={"code": "x"}).status_code == 404


def test_login_page_shows_configured_providers(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assert "Dev sign-in" in page
    assert "/auth/login/dev" in page
    for absent in ("Google", "Facebook", "Apple"):
        assert absent not in page


# --- sessions and logout ---------------------------------------------------------------------


def test_sign_in_rotates_the_session(client, oidc_issuer):  # noqa: F811
    client.get("/auth/logout")  # its form plants a CSRF token in the session
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        old_csrf = session["csrf_token"]
    old_cookie = client.get_cookie("session").value

    subject = new_subject()
    set_claims(oidc_issuer, subject, email="h@example.com", email_verified=True)
    response = sign_in(client, oidc_issuer, subject)
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie

    assert client.get_cookie("session").value != old_cookie
    with client.session_transaction() as session:
        assert "planted" not in session
        assert not any(key.startswith("_state_") for key in session)
        assert session["_user_id"] == str(User.get().id)
        new_csrf = session.get("csrf_token")
    assert new_csrf != old_csrf


def test_session_cookie_is_secure_in_production(tmp_path, database_url):
    from loafy.app import create_app

    config = _test_config(
        database_url,
        tmp_path,
        LOAFY_ENV="production",
        SECRET_KEY="x" * 32,
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
    )
    production = create_app(config)
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_HTTPONLY"] is True
    assert production.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert production.config["REMEMBER_COOKIE_SECURE"] is True


def test_logout_needs_post_and_csrf(client, factory):
    login(client, factory.user())
    assert client.get("/auth/logout").status_code == 200
    assert client.get("/api/auth/me").status_code == 200  # GET only asks

    refused = client.post("/auth/logout", headers={"Accept-Language": "en"})
    assert refused.status_code == 400
    assert "expired or was sent from elsewhere" in refused.get_data(as_text=True)
    assert client.post("/auth/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/api/auth/me").status_code == 200

    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert client.get("/api/auth/me").status_code == 401
    with client.session_transaction() as session:
        assert "_user_id" not in session
