"""Helpers for tests: sign a client in, fetch a CSRF token, reload a row."""

from loafy.clock import utcnow
from loafy.people.web_sessions import COOKIE_KEY, open_session


def login(client, user):
    """Sign a test client in as `user` (the sign-in flow itself is tested against a real provider)."""
    key = open_session(user, utcnow())
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session[COOKIE_KEY] = key
    return client


def english(client):
    """Have every request of this test client ask for English (the default language is Vietnamese)."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def csrf_token(client):
    """A CSRF token for the client's session, read from /api/auth/me."""
    response = client.get("/api/auth/me")
    assert response.status_code == 200, response.data
    return response.get_json()["csrf_token"]


def reload(model):
    return type(model).get_by_id(model.id)
