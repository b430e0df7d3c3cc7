"""Signing out ends the session on the server: a cookie copied before it no longer works.

Also "sign out everywhere" on the profile page, and a role change ending a user's sessions.
"""

import pytest

from loafy.booking import staff
from loafy.db import db
from loafy.models import User, WebSession
from loafy.people import tokens
from tests.conftest import _test_config
from tests.helpers import csrf_token, english, login
from tests.oidc_fixtures import (
    fresh_user_per_request,  # noqa: F401 - an autouse fixture
    new_subject,
    oidc_issuer,  # noqa: F401 - a fixture
    oidc_provider,
    set_claims,
    sign_in,
)


@pytest.fixture
def app_config(database_url, tmp_path, oidc_issuer):  # noqa: F811
    return _test_config(database_url, tmp_path, OIDC_PROVIDERS={"dev": oidc_provider(oidc_issuer)})


def copy_of(app, client):
    """Another browser carrying a copy of `client`'s session cookie (a stolen or shared cookie)."""
    other = english(app.test_client())
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def signed_in(client):
    return client.get("/api/auth/me").status_code == 200


def test_a_cookie_copied_before_logout_no_longer_works(app, client, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="copy@example.com", email_verified=True)
    assert sign_in(client, oidc_issuer, subject).status_code == 302
    copied = copy_of(app, client)
    assert signed_in(copied)

    assert client.post("/auth/logout", data={"csrf_token": csrf_token(client)}).status_code == 302
    assert not signed_in(client)
    assert not signed_in(copied)
    assert copied.get("/profile").status_code == 302  # pages send it to sign in
    assert WebSession.select().count() == 0


def test_api_logout_ends_the_session_on_the_server(app, client, factory):
    login(client, factory.user())
    copied = copy_of(app, client)
    response = client.post("/api/auth/logout", headers={"X-CSRFToken": csrf_token(client)})
    assert response.get_json() == {"signed_out": True}
    assert not signed_in(client) and not signed_in(copied)


def test_logout_ends_only_this_browser(app, factory):
    player = factory.user()
    phone, laptop = login(app.test_client(), player), login(app.test_client(), player)
    phone.post("/auth/logout", data={"csrf_token": csrf_token(phone)})
    assert not signed_in(phone)
    assert signed_in(laptop)


def test_a_token_logout_ends_no_browser_session(app, client, factory):
    player = factory.user()
    login(client, player)
    raw = tokens.create_token(player)[1]
    bearer = app.test_client().post("/api/auth/logout", headers={"Authorization": f"Bearer {raw}"})
    assert bearer.status_code == 200
    assert signed_in(client)


def test_sign_out_everywhere_ends_every_browser_but_not_the_tokens(app, client, factory):
    player, other = factory.user(), factory.user()
    phone, laptop = english(login(app.test_client(), player)), login(app.test_client(), player)
    stranger = login(app.test_client(), other)
    raw = tokens.create_token(player)[1]

    refused = phone.post("/profile/sign-out-everywhere")  # no CSRF token: refused, nothing ends
    assert refused.status_code == 400
    assert signed_in(phone) and signed_in(laptop)

    response = phone.post("/profile/sign-out-everywhere", data={"csrf_token": csrf_token(phone)})
    assert response.status_code == 302
    assert "You are signed out on every device." in phone.get("/").get_data(as_text=True)
    assert not signed_in(phone) and not signed_in(laptop)
    assert signed_in(stranger)
    assert (
        app.test_client().get("/api/auth/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    )


def test_the_profile_page_offers_sign_out_everywhere_in_both_languages(app, factory):
    player = factory.user()
    page = english(login(app.test_client(), player)).get("/profile").get_data(as_text=True)
    assert 'action="/profile/sign-out-everywhere"' in page
    assert "Sign out everywhere" in page
    vietnamese = login(app.test_client(), player).get("/profile").get_data(as_text=True)
    assert "Đăng xuất khỏi mọi nơi" in vietnamese


def test_a_role_change_ends_the_users_sessions(app, factory, now):
    admin, player = factory.user(role="admin"), factory.user()
    browser = login(app.test_client(), player)
    admin_browser = login(app.test_client(), admin)
    staff.set_role(admin, player.id, "organizer", now)
    assert not signed_in(browser)
    assert signed_in(admin_browser)
    login(browser, User.get_by_id(player.id))  # signing in again gives the new role
    assert browser.get("/api/auth/me").get_json()["user"]["role"] == "organizer"
    staff.set_role(admin, player.id, "organizer", now)  # no change: nobody is signed out
    assert signed_in(browser)


def test_a_deactivated_account_is_signed_out(app, client, factory):
    player = factory.user()
    login(client, player)
    User.update(active=False).where(User.id == player.id).execute()
    assert not signed_in(client)


def test_a_cookie_without_a_server_session_is_not_signed_in(client, factory):
    player = factory.user()
    with client.session_transaction() as session:  # a cookie as signed before sessions were kept
        session["_user_id"] = str(player.id)
    assert not signed_in(client)


def test_loading_the_signed_in_user_is_one_query(client, factory, monkeypatch):
    login(client, factory.user())
    client.get("/api/auth/me")  # warm: settings, translations
    statements = []
    original = type(db.obj).execute_sql

    def counting(self, sql, *args, **kwargs):
        statements.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(type(db.obj), "execute_sql", counting)
    assert client.get("/api/auth/me").status_code == 200
    # The user and their server-side session in one statement; /me's membership (from passes) is its own.
    loading = [sql for sql in statements if '"passes"' not in sql]
    assert len(loading) == 1, statements
