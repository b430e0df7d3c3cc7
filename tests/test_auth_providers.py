"""Google, Facebook and Apple: configured from settings, absent otherwise; Apple's client secret;
Facebook and Apple journeys played against the real oidc-provider-mock standing in for them."""

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from loafy.app import create_app
from loafy.errors import ConfigError
from loafy.models import Identity, User
from public import providers
from tests.conftest import _test_config
from tests.helpers import english
from tests.oidc_fixtures import (
    authorize,
    flashed,
    fresh_user_per_request,  # noqa: F401 - an autouse fixture
    local_path,
    new_subject,
    oidc_issuer,  # noqa: F401 - a fixture
    query_of,
    set_claims,
    start_login,
)


def ec_key_pem():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, public


APPLE_PEM, APPLE_PUBLIC = ec_key_pem()
APPLE = {
    "APPLE_CLIENT_ID": "vn.loafy.signin",
    "APPLE_TEAM_ID": "TEAM123456",
    "APPLE_KEY_ID": "KEY987",
    "APPLE_PRIVATE_KEY": APPLE_PEM.replace("\n", "\\n"),  # as an env var usually carries it
}
GOOGLE = {"GOOGLE_CLIENT_ID": "g-id", "GOOGLE_CLIENT_SECRET": "g-secret"}
FACEBOOK = {"FACEBOOK_CLIENT_ID": "fb-id", "FACEBOOK_CLIENT_SECRET": "fb-secret"}


# --- Apple's client secret -------------------------------------------------------------------


def test_apple_client_secret_is_an_es256_jwt_apple_accepts():
    now = int(time.time())
    secret = providers.make_apple_client_secret("TEAM123456", "vn.loafy.signin", "KEY987", APPLE_PEM, now=now)
    token = jwt.decode(secret, ECKey.import_key(APPLE_PUBLIC), algorithms=["ES256"])
    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == "KEY987"
    claims = token.claims
    assert claims["iss"] == "TEAM123456"
    assert claims["sub"] == "vn.loafy.signin"
    assert claims["aud"] == "https://appleid.apple.com"
    assert claims["iat"] == now
    assert 0 < claims["exp"] - claims["iat"] <= 180 * 24 * 3600

    _other_pem, other_public = ec_key_pem()
    with pytest.raises(Exception):  # any verification failure
        jwt.decode(secret, ECKey.import_key(other_public), algorithms=["ES256"])


def test_apple_client_secret_refuses_more_than_six_months():
    with pytest.raises(ValueError, match="6 months"):
        providers.make_apple_client_secret("T", "c", "K", APPLE_PEM, lifetime=200 * 24 * 3600)


@pytest.mark.parametrize(
    "bad_key", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
)
def test_a_broken_apple_key_stops_start_up_with_one_line(database_url, tmp_path, bad_key):
    with pytest.raises(ConfigError, match="APPLE_PRIVATE_KEY is not a valid EC private key"):
        create_app(_test_config(database_url, tmp_path, **{**APPLE, "APPLE_PRIVATE_KEY": bad_key}))


@pytest.mark.parametrize(
    "settings, missing",
    [
        ({"GOOGLE_CLIENT_ID": "x"}, "GOOGLE_CLIENT_SECRET"),
        ({"FACEBOOK_CLIENT_SECRET": "x"}, "FACEBOOK_CLIENT_ID"),
        ({k: v for k, v in APPLE.items() if k != "APPLE_KEY_ID"}, "APPLE_KEY_ID"),
    ],
)
def test_half_configured_provider_names_the_missing_setting(database_url, tmp_path, settings, missing):
    with pytest.raises(ConfigError, match=missing):
        create_app(_test_config(database_url, tmp_path, **settings))


# --- which providers exist --------------------------------------------------------------------


@pytest.fixture
def app_config(database_url, tmp_path):
    return _test_config(database_url, tmp_path, **GOOGLE, **FACEBOOK, **APPLE)


def test_configured_providers_appear_as_buttons(client, app):
    page = client.get("/auth/login").get_data(as_text=True)
    for label, path in (("Google", "google"), ("Facebook", "facebook"), ("Apple", "apple")):
        assert label in page and f"/auth/login/{path}" in page
    oauth = app.extensions["loafy_oauth"]
    assert oauth.create_client("google")._server_metadata_url == providers.GOOGLE_METADATA_URL
    assert oauth.create_client("apple")._server_metadata_url == (
        "https://appleid.apple.com/.well-known/openid-configuration"
    )


def test_unconfigured_providers_have_no_button_and_no_route(database_url, tmp_path):
    bare = create_app(_test_config(database_url, tmp_path))
    client = bare.test_client()
    page = client.get("/auth/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "No sign-in provider is configured" in page
    for name in ("google", "facebook", "apple"):
        assert client.get(f"/auth/login/{name}").status_code == 404
        assert client.get(f"/auth/callback/{name}?code=x&state=y").status_code == 404
    assert client.post("/auth/callback/apple", data={"code": "x", "state": "y"}).status_code == 404


def test_facebook_sends_the_browser_to_facebook_with_state(client):
    location = start_login(client, "facebook")
    assert location.startswith("https://www.facebook.com/v19.0/dialog/oauth?")
    params = query_of(location)
    assert params["client_id"] == "fb-id"
    assert params["scope"] == "email public_profile"
    assert params["redirect_uri"] == "http://localhost/auth/callback/facebook"
    assert params["state"]
    with client.session_transaction() as session:
        assert f"_state_facebook_{params['state']}" in session


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {
                "id": "10",
                "name": "Lan",
                "email": "lan@example.com",
                "picture": {"data": {"url": "https://p/x.jpg"}},
            },
            ("10", "lan@example.com", True, "Lan", "https://p/x.jpg"),
        ),
        ({"id": 11, "name": "No Mail"}, ("11", None, False, "No Mail", None)),
        # Passed on as given: the sign-in refuses an e-mail that is not an address (test_email_claims).
        ({"id": "12", "email": "not-an-email", "picture": "odd"}, ("12", "not-an-email", True, None, None)),
    ],
)
def test_facebook_profile_counts_a_present_email_as_verified(data, expected):
    profile = providers.facebook_profile(data)
    assert (
        profile.subject,
        profile.email,
        profile.email_verified,
        profile.name,
        profile.avatar_url,
    ) == expected


@pytest.mark.parametrize("data", [{"name": "no id"}, [], "garbage", {"id": ""}, {"id": "x" * 300}])
def test_facebook_profile_without_an_id_is_refused(data):
    with pytest.raises(providers.ProviderError):
        providers.facebook_profile(data)


@pytest.mark.parametrize(
    "field, expected",
    [
        (json.dumps({"name": {"firstName": "Lan", "lastName": "Nguyễn"}, "email": "x@y"}), "Lan Nguyễn"),
        (json.dumps({"name": {"firstName": " Minh "}}), "Minh"),
        ("{not json", None),
        (json.dumps(["a"]), None),
        (json.dumps({"name": "flat"}), None),
        (None, None),
    ],
)
def test_apple_name_is_read_from_the_user_field(field, expected):
    assert providers.apple_name(field) == expected


# --- journeys with the mock standing in for Facebook and Apple ---------------------------------


@pytest.fixture
def stand_ins(oidc_issuer, monkeypatch):  # noqa: F811
    """Point Facebook's and Apple's endpoints at the mock (real HTTP, another host)."""
    monkeypatch.setattr(providers, "FACEBOOK_AUTHORIZE_URL", f"{oidc_issuer}/oauth2/authorize")
    monkeypatch.setattr(providers, "FACEBOOK_TOKEN_URL", f"{oidc_issuer}/oauth2/token")
    monkeypatch.setattr(providers, "FACEBOOK_PROFILE_URL", f"{oidc_issuer}/userinfo")
    monkeypatch.setattr(providers, "APPLE_ISSUER", oidc_issuer)
    return oidc_issuer


@pytest.fixture
def stand_in_client(stand_ins, database_url, tmp_path):
    app = create_app(_test_config(database_url, tmp_path, **FACEBOOK, **APPLE))
    return english(app.test_client())


def test_facebook_sign_in_through_graph_me(app, stand_in_client, stand_ins):
    subject = new_subject("fb")
    set_claims(stand_ins, subject, id="fb-4242", email="Tuan@Example.com")
    callback = authorize(start_login(stand_in_client, "facebook"), subject)
    response = stand_in_client.get(local_path(callback))
    assert response.status_code == 302 and response.headers["Location"] == "/", flashed(stand_in_client)
    identity = Identity.get()
    assert (identity.provider, identity.subject, identity.email_verified) == ("facebook", "fb-4242", True)
    assert identity.user.email == "tuan@example.com"


def test_apple_form_post_is_bounced_to_the_checked_callback(app, stand_in_client, stand_ins):
    subject = new_subject("apple")
    set_claims(stand_ins, subject, email="hoa@privaterelay.appleid.com", email_verified="true")
    authorize_url = start_login(stand_in_client, "apple")
    params = query_of(authorize_url)
    assert params["response_mode"] == "form_post"
    assert params["scope"] == "openid name email"
    assert params["nonce"]
    answer = query_of(authorize(authorize_url, subject))

    # Apple POSTs cross-site: no CSRF token, and the view must not set (and so replace) the cookie.
    user_field = json.dumps({"name": {"firstName": "Hoa", "lastName": "Trần"}})
    bounce = stand_in_client.post("/auth/callback/apple", data={**answer, "user": user_field})
    assert bounce.status_code == 303
    assert "Set-Cookie" not in bounce.headers
    assert bounce.headers["Location"].startswith("/auth/callback/apple?")

    response = stand_in_client.get(bounce.headers["Location"])
    assert response.status_code == 302 and response.headers["Location"] == "/", flashed(stand_in_client)
    user = User.get()
    assert (user.name, user.email) == ("Hoa Trần", "hoa@privaterelay.appleid.com")
    assert Identity.get().provider == "apple"


def test_apple_cancel_ends_on_the_login_page(app, stand_in_client):
    bounce = stand_in_client.post("/auth/callback/apple", data={"error": "user_cancelled_authorize"})
    response = stand_in_client.get(bounce.headers["Location"])
    assert response.headers["Location"].endswith("/auth/login")
    assert any("cancelled" in m for m in flashed(stand_in_client))
    assert User.select().count() == 0
