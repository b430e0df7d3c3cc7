"""Personal API tokens as `Authorization: Bearer`: valid, revoked, malformed, and owners only."""

import pytest

from loafy.errors import Conflict, NotFound
from loafy.models import ApiToken, utcnow
from loafy.people import tokens
from tests.helpers import csrf_token, login
from tests.oidc_fixtures import fresh_user_per_request  # noqa: F401 - an autouse fixture


def bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def player(factory):
    return factory.user(name="Lan")


def test_a_valid_token_signs_the_request_in(client, player):
    token, raw = tokens.create_token(player, "script")
    response = client.get("/api/auth/me", headers=bearer(raw))
    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == player.id
    assert ApiToken.get_by_id(token.id).last_used_at is not None
    with client.session_transaction() as session:
        assert "_user_id" not in session  # a token signs in one request, never a browser session
    assert client.get("/api/auth/me").status_code == 401


def test_a_revoked_token_is_refused(client, player):
    token, raw = tokens.create_token(player)
    tokens.revoke_token(player, token.id, utcnow())
    response = client.get("/api/auth/me", headers=bearer(raw))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_disabled_users_token_is_refused(client, factory):
    user = factory.user(active=False)
    _token, raw = tokens.create_token(user)
    assert client.get("/api/auth/me", headers=bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer lfy_",
        "Bearer lfy_not-a-real-token",
        "Bearer abc_" + "x" * 43,  # wrong prefix
        "Bearer " + "lfy_" + "x" * 500,  # too long
        "Bearer lfy_ünïcödé",
        "Basic dXNlcjpwYXNz",
        "bearer lfy_lowercase-scheme",
        "Bearer lfy_a b c",
    ],
)
def test_malformed_or_unknown_tokens_are_401_never_500(client, player, header):
    tokens.create_token(player)
    response = client.get("/api/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_the_prefix_alone_does_not_match_a_real_token(client, player):
    _token, raw = tokens.create_token(player)
    assert client.get("/api/auth/me", headers=bearer(raw[:-1])).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(raw.replace("lfy_", "lfx_", 1))).status_code == 401


def test_a_token_request_ignores_the_session(client, player, factory):
    """A request carrying a token is that token's user only, even with someone's session cookie."""
    login(client, factory.user(role="admin"))
    _token, raw = tokens.create_token(player)
    assert client.get("/api/auth/me", headers=bearer(raw)).get_json()["user"]["id"] == player.id
    assert client.get("/api/auth/me", headers=bearer("lfy_wrong")).status_code == 401


def test_token_requests_need_no_csrf(client, player, factory):
    """A bearer token cannot be attached by a cross-site form, so unsafe API calls need no CSRF token."""
    _token, raw = tokens.create_token(player)
    club_session = factory.club_session()
    response = client.post(
        "/api/bookings", json={"session_id": club_session.id, "payment_method": "stripe"}, headers=bearer(raw)
    )
    assert response.status_code == 201, response.data


def test_a_token_opens_the_api_only(client, player):
    """Pages and the staff area need the browser session: a leaked token must not open them."""
    token, raw = tokens.create_token(player)
    assert client.get("/api/auth/me", headers=bearer(raw)).status_code == 200
    for path in ("/bookings", "/profile", "/admin/"):
        response = client.get(path, headers=bearer(raw))
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], path
    response = client.post(f"/profile/tokens/{token.id}/revoke", headers=bearer(raw))
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert ApiToken.get_by_id(token.id).revoked_at is None


def test_another_users_token_is_404_not_403(client, player, factory):
    stranger = factory.user()
    theirs, their_raw = tokens.create_token(stranger)

    # With the browser session (a token opens no page): the same answer as for an id that does not exist.
    login(client, player)
    for token_id in (theirs.id, 999_999):
        response = client.post(f"/profile/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client)})
        assert response.status_code == 404
        assert "Chúng tôi không tìm thấy mục này." in response.get_data(
            as_text=True
        )  # not_found, in Vietnamese
    assert ApiToken.get_by_id(theirs.id).revoked_at is None
    assert client.get("/api/auth/me", headers=bearer(their_raw)).status_code == 200


def test_revoke_service_scopes_by_owner(player, factory):
    token, _raw = tokens.create_token(factory.user())
    with pytest.raises(NotFound):
        tokens.revoke_token(player, token.id, utcnow())


def test_cli_token_create_prints_the_token_last(app, player):
    result = app.test_cli_runner().invoke(args=["token", "create", player.email])
    assert result.exit_code == 0
    raw = result.output.strip().splitlines()[-1]
    assert raw.startswith("lfy_")
    assert ApiToken.get().token_hash == tokens._hash(raw)


def test_active_tokens_are_capped(player):
    for _ in range(tokens.MAX_ACTIVE_TOKENS):
        tokens.create_token(player)
    with pytest.raises(Conflict):
        tokens.create_token(player)
