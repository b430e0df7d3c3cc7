"""Rate limits: booking creation per user and per IP, sign-in start per IP; 429 as JSON under /api."""

import pytest

from loafy.models import Booking
from loafy.people import tokens
from public.limits import storage_uri
from tests.conftest import _test_config
from tests.oidc_fixtures import closed_port, fresh_user_per_request, oidc_provider  # noqa: F401


@pytest.fixture
def app_config(database_url, tmp_path):
    down = oidc_provider(f"http://127.0.0.1:{closed_port()}", label="Down SSO")
    return _test_config(
        database_url,
        tmp_path,
        OIDC_PROVIDERS={"down": down},
        RATELIMIT_ENABLED=True,
        RATELIMIT_BOOKING_PER_USER="3 per minute",
        RATELIMIT_BOOKING_PER_IP="5 per minute",
        RATELIMIT_LOGIN_PER_IP="2 per minute",
        RATELIMIT_CALLBACK_PER_IP="2 per minute",
    )


def bearer(user):
    return {"Authorization": f"Bearer {tokens.create_token(user)[1]}"}


def book(client, headers, session_id, ip="10.0.0.1"):
    return client.post(
        "/api/bookings",
        json={"session_id": session_id, "payment_method": "stripe"},
        headers=headers,
        environ_base={"REMOTE_ADDR": ip},
    )


def test_booking_is_limited_per_user(client, factory):
    sessions = [factory.club_session() for _ in range(4)]
    lan = bearer(factory.user())
    assert [book(client, lan, s.id, ip=f"10.0.0.{i}").status_code for i, s in enumerate(sessions)] == [
        201,
        201,
        201,
        429,
    ]
    response = book(client, lan, sessions[3].id, ip="10.9.9.9")  # another address: still the same user
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert response.headers.get("Retry-After")
    assert Booking.select().count() == 3
    # Someone else is not affected.
    assert book(client, bearer(factory.user()), sessions[3].id, ip="10.0.0.50").status_code == 201


def test_signed_in_players_are_not_limited_per_ip(client, factory):
    club_session = factory.club_session(max_slots=20)
    statuses = [book(client, bearer(factory.user()), club_session.id).status_code for _ in range(8)]
    assert statuses == [201] * 8  # one address, eight players: each counted on their own
    assert Booking.select().count() == 8


def test_anonymous_booking_attempts_are_limited_per_ip(client, factory):
    club_session = factory.club_session(max_slots=20)
    statuses = [book(client, {}, club_session.id).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert book(client, {}, club_session.id, ip="10.0.0.2").status_code == 401


def test_sign_in_callbacks_are_limited_per_ip(client):
    ip = {"REMOTE_ADDR": "10.1.2.1"}
    answers = [client.get("/auth/callback/down?code=x&state=y", environ_base=ip) for _ in range(3)]
    assert [r.status_code for r in answers] == [302, 302, 429]
    assert answers[2].mimetype == "text/html"
    assert (
        client.get("/auth/callback/down?code=x&state=y", environ_base={"REMOTE_ADDR": "10.1.2.2"}).status_code
        == 302
    )


def test_refused_bookings_count_too(client, factory):
    headers = bearer(factory.user())
    statuses = [book(client, headers, 999_999).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]


def test_sign_in_start_is_limited_per_ip_with_a_friendly_page(client):
    ip = {"REMOTE_ADDR": "10.1.1.1"}
    assert [client.get("/auth/login/down", environ_base=ip).status_code for _ in range(2)] == [302, 302]
    response = client.get("/auth/login/down", environ_base=ip)
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "429" in page and "Traceback" not in page  # the friendly error page, in the visitor's language
    assert client.get("/auth/login/down", environ_base={"REMOTE_ADDR": "10.1.1.2"}).status_code == 302


def test_other_routes_are_not_limited(client, factory):
    headers = bearer(factory.user())
    assert {client.get("/api/sessions", headers=headers).status_code for _ in range(30)} == {200}


def test_storage_follows_the_environment():
    assert storage_uri({"LOAFY_ENV": "testing"}) == "memory://"
    assert storage_uri({"LOAFY_ENV": "development", "REDIS_URL": "redis://x:6379/0"}) == "memory://"
    assert storage_uri({"LOAFY_ENV": "production", "REDIS_URL": "redis://x:6379/0"}) == "redis://x:6379/0"
    assert (
        storage_uri(
            {"LOAFY_ENV": "production", "REDIS_URL": "redis://x", "RATELIMIT_STORAGE_URI": "memory://"}
        )
        == "memory://"
    )


def test_limits_are_off_by_default_in_tests(database_url, tmp_path, factory):
    from loafy.app import create_app

    plain = create_app(_test_config(database_url, tmp_path / "plain"))
    assert plain.config["RATELIMIT_ENABLED"] is False


def test_limits_shared_through_real_redis(database_url, tmp_path, redis_url, redis_conn, factory):
    """Two apps (two web processes) on one Redis share the per-user budget."""
    from loafy.app import create_app

    config = _test_config(
        database_url,
        tmp_path / "a",
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=redis_url,
        RATELIMIT_BOOKING_PER_USER="2 per minute",
    )
    first, second = create_app(config), create_app({**config, "INSTANCE_PATH": str(tmp_path / "b")})
    headers = bearer(factory.user())
    statuses = [book(app.test_client(), headers, 999_999).status_code for app in (first, second, first)]
    assert statuses == [404, 404, 429]


def test_retry_after_is_the_rest_of_the_window(client, factory):
    headers = bearer(factory.user())
    for _ in range(3):
        book(client, headers, 999_999)
    response = book(client, headers, 999_999)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60  # "3 per minute": within this minute


def test_limits_count_in_memory_while_redis_is_unreachable(database_url, tmp_path, factory, caplog):
    """Redis down: bookings still go through, the limits still hold (per process), a warning says
    why; booking never waits on the limits' storage."""
    from loafy.app import create_app

    config = _test_config(
        database_url,
        tmp_path,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{closed_port()}/0",
        RATELIMIT_BOOKING_PER_USER="2 per minute",
    )
    client = create_app(config).test_client()
    sessions = [factory.club_session() for _ in range(3)]
    headers = bearer(factory.user())
    statuses = [book(client, headers, s.id).status_code for s in sessions]
    assert statuses == [201, 201, 429]
    assert Booking.select().count() == 2
    assert "rate-limit storage unreachable" in caplog.text
