"""A real OpenID provider for sign-in tests (oidc-provider-mock on loopback) and helpers to drive it.

The Flask side runs in the test client; the provider is a real HTTP server in a thread, reached
with `requests`. Nothing about HTTP is mocked: redirects are followed by hand, hop by hop.
"""

import json
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import g, has_app_context
from flask.testing import FlaskClient
from oidc_provider_mock import run_server_in_thread
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# The provider and the app talk plain http on loopback; Authlib refuses that unless told.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_ID = "loafy-test"
CLIENT_SECRET = "loafy-test-secret"


class FreshRequestClient(FlaskClient):
    """A test client whose every request starts without the previous request's signed-in user.

    conftest's `app` fixture keeps an app context pushed for the whole test, and Flask reuses it for
    each test-client request, so `g` (where Flask-Login caches the current user and Flask-WTF the
    CSRF token) would carry one client's user and token into another client's request. A real
    server starts every request with an empty `g`; so does this client.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            vars(g).clear()
        return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def fresh_user_per_request(app):
    """Import into a test module to give every client there a fresh user per request."""
    app.test_client_class = FreshRequestClient


@pytest.fixture(scope="session")
def oidc_issuer():
    """One oidc-provider-mock for the whole run; tests use fresh subjects so they never collide."""
    with run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


def new_subject(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def set_claims(issuer, subject, **claims):
    """Store the claims the provider will assert for `subject` (PUT /users/<sub>)."""
    response = requests.put(f"{issuer}/users/{subject}", json=claims, timeout=5)
    assert response.status_code == 204, response.text


def oidc_provider(issuer, label="Dev sign-in"):
    return {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "label": label}


def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_login(client, provider="dev", next_url=None):
    """GET /auth/login/<provider>; returns the provider's authorize URL the app redirected to."""
    query = {"next": next_url} if next_url is not None else None
    response = client.get(f"/auth/login/{provider}", query_string=query)
    assert response.status_code == 302, response.data
    location = response.headers["Location"]
    assert not location.startswith("/auth/login"), "the app refused to start the sign-in"
    return location


def authorize(authorize_url, subject=None, deny=False):
    """Play the person at the provider: choose `subject` (or deny); returns the callback URL it sends back."""
    data = {"action": "deny"} if deny else {"sub": subject}
    response = requests.post(authorize_url, data=data, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def local_path(url):
    """The path and query of a URL pointing at the app (BASE_URL is http://localhost in tests)."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in(client, issuer, subject, provider="dev", next_url=None):
    """The whole journey: app → provider → app callback. Returns the callback's response."""
    callback_url = authorize(start_login(client, provider, next_url), subject)
    return client.get(local_path(callback_url))


def flashed(client):
    """The messages waiting in the client's session (what the next page would show)."""
    with client.session_transaction() as session:
        return [message for _category, message in session.get("_flashes", [])]


@contextmanager
def junk_provider():
    """A real HTTP server that answers like a broken provider, for "garbage from the provider" tests.

    Issuers under it, by path: /html (discovery answers an HTML page), /list (discovery answers
    JSON that is not an object), /token-html (valid discovery, token endpoint answers HTML),
    /no-id-token (token endpoint answers an access token but no id_token), /bad-id-token (an
    id_token that is not a JWT).
    """
    base = {}

    def metadata(issuer):
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def token_answer(kind):
        if kind == "token-html":
            return Response("<html><body>Service Unavailable</body></html>", 200, mimetype="text/html")
        body = {"access_token": "at-123", "token_type": "Bearer", "expires_in": 3600}
        if kind == "bad-id-token":
            body["id_token"] = "not.a-jwt.at-all"
        return Response(json.dumps(body), 200, mimetype="application/json")

    @Request.application
    def app(request):
        kind, _, rest = request.path.strip("/").partition("/")
        issuer = f"{base['url']}/{kind}"
        if rest == ".well-known/openid-configuration":
            if kind == "html":
                return Response("<html>Oops</html>", 200, mimetype="text/html")
            if kind == "list":
                return Response("[1, 2, 3]", 200, mimetype="application/json")
            return Response(json.dumps(metadata(issuer)), 200, mimetype="application/json")
        if rest == "token":
            return token_answer(kind)
        if rest == "userinfo":
            return Response("{}", 200, mimetype="application/json")
        if rest == "jwks":
            return Response(json.dumps({"keys": []}), 200, mimetype="application/json")
        return Response("not found", 404)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base["url"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield base["url"]
    finally:
        server.shutdown()
        thread.join(2)
        server.server_close()
