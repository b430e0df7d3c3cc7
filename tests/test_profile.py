"""The profile page: identities with unlink, API tokens created once-shown and revoked."""

import re

import pytest

from loafy.errors import Conflict, NotFound
from loafy.models import ApiToken, Identity
from loafy.people import accounts
from tests.helpers import csrf_token, english, login
from tests.oidc_fixtures import fresh_user_per_request  # noqa: F401 - an autouse fixture


def identity(user, provider, subject=None, **fields):
    return Identity.create(user=user, provider=provider, subject=subject or f"{provider}-{user.id}", **fields)


@pytest.fixture
def client(client):
    return english(client)  # messages asserted in English; test_pages checks the Vietnamese ones


@pytest.fixture
def player(factory):
    return factory.user(name="Lan", email="lan@example.com")


def test_profile_needs_sign_in(client):
    response = client.get("/profile")
    assert response.status_code == 302
    assert "/auth/login?next=/profile" in response.headers["Location"]


def test_profile_lists_identities_and_tokens(client, player):
    identity(player, "google", email="lan@example.com", email_verified=True)
    identity(player, "facebook")
    ApiToken.create(user=player, name="My script", token_hash="a" * 64)
    login(client, player)
    page = client.get("/profile").get_data(as_text=True)
    assert "Lan" in page and "lan@example.com" in page
    assert "google" in page and "facebook" in page
    assert "My script" in page
    # two unlinks, one revoke, one create, sign out everywhere, and the language and sign-out
    # forms in the navigation; and making a calendar link (calendar)
    assert page.count('name="csrf_token"') == 2 + 1 + 1 + 1 + 1 + 1 + 1


def test_unlink_an_identity(client, player):
    keep = identity(player, "google")
    drop = identity(player, "facebook")
    login(client, player)
    response = client.post(f"/profile/identities/{drop.id}/unlink", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    assert [i.id for i in Identity.select()] == [keep.id]
    assert "can no longer be used to sign in" in client.get("/profile").get_data(as_text=True)


def test_the_last_identity_cannot_be_unlinked(client, player):
    only = identity(player, "google")
    login(client, player)
    response = client.post(f"/profile/identities/{only.id}/unlink", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 409
    assert "only way to sign in" in response.get_data(as_text=True)
    assert Identity.select().count() == 1


def test_another_users_identity_is_not_found(client, player, factory):
    identity(player, "google")
    identity(player, "apple")
    stranger = factory.user()
    theirs = identity(stranger, "google", subject="theirs")
    identity(stranger, "apple", subject="theirs-2")
    login(client, player)
    response = client.post(f"/profile/identities/{theirs.id}/unlink", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 404
    assert Identity.select().count() == 4


def test_unlink_without_csrf_is_refused(client, player):
    identity(player, "google")
    drop = identity(player, "facebook")
    login(client, player)
    assert client.post(f"/profile/identities/{drop.id}/unlink").status_code == 400
    assert Identity.select().count() == 2


def test_unlink_service_refuses_last_identity_and_strangers(player, factory):
    first = identity(player, "google")
    second = identity(player, "facebook")
    with pytest.raises(NotFound):
        accounts.unlink_identity(factory.user(), first.id)
    accounts.unlink_identity(player, second.id)
    with pytest.raises(Conflict) as refused:
        accounts.unlink_identity(player, first.id)
    assert refused.value.code == "last_identity"
    assert Identity.select().count() == 1


def test_create_token_shows_it_once_and_stores_only_a_hash(client, player):
    login(client, player)
    response = client.post("/profile/tokens", data={"name": "  Bot  ", "csrf_token": csrf_token(client)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/profile")
    shown = client.get("/profile")
    assert shown.headers["Cache-Control"] == "no-store"
    page = shown.get_data(as_text=True)
    raw = re.search(r'<code class="token" id="new-token">(lfy_[^<]+)</code>', page).group(1)
    token = ApiToken.get()
    assert token.name == "Bot"
    assert raw not in token.token_hash and len(token.token_hash) == 64
    with client.session_transaction() as session:
        assert raw not in str(dict(session))  # never carried readable, and now gone
    assert raw not in client.get("/profile").get_data(as_text=True)  # never again

    fresh = client.application.test_client()
    me = fresh.get("/api/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200 and me.get_json()["user"]["id"] == player.id


def test_reloading_after_creating_a_token_creates_no_second_one(client, player):
    """Post/redirect/get: the browser's reload repeats the GET it was redirected to, not the POST."""
    login(client, player)
    response = client.post(
        "/profile/tokens", data={"name": "Bot", "csrf_token": csrf_token(client)}, follow_redirects=True
    )
    assert response.status_code == 200 and 'id="new-token"' in response.get_data(as_text=True)
    assert response.request.method == "GET"  # what a reload repeats
    reloaded = client.get(response.request.path)
    assert 'id="new-token"' not in reloaded.get_data(as_text=True)
    assert ApiToken.select().count() == 1


def test_create_token_without_csrf_is_refused(client, player):
    login(client, player)
    assert client.post("/profile/tokens", data={"name": "x"}).status_code == 400
    assert ApiToken.select().count() == 0


def test_revoke_token(client, player):
    login(client, player)
    client.post("/profile/tokens", data={"name": "Old", "csrf_token": csrf_token(client)})
    token = ApiToken.get()
    response = client.post(f"/profile/tokens/{token.id}/revoke", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    assert ApiToken.get_by_id(token.id).revoked_at is not None
    page = client.get("/profile", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "no longer works" in page and "revoked" in page
    # Revoking again is harmless.
    again = client.post(f"/profile/tokens/{token.id}/revoke", data={"csrf_token": csrf_token(client)})
    assert again.status_code == 302
