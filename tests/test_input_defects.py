"""Bad input found from outside: each is a clear 4xx with the JSON error shape (a page off the API),
and the database is untouched."""

import pytest

from loafy.booking.bookings import book_session
from loafy.models import ApiToken, Booking, ClubSession
from tests.helpers import csrf_token, english, login

NEW_SESSION = {
    "starts_at": "2026-12-01T10:00:00Z",
    "ends_at": "2026-12-01T12:00:00Z",
    "max_slots": 5,
    "price": 0,
}


@pytest.fixture
def organizer(client, factory):
    login(client, factory.user(role="organizer"))
    return {"X-CSRFToken": csrf_token(client)}


def post_session(client, headers, title_json):
    body = '{"title": ' + title_json + ', "starts_at": "2026-12-01T10:00:00Z", '
    body += '"ends_at": "2026-12-01T12:00:00Z", "max_slots": 5, "price": 0}'
    return client.post("/api/sessions", data=body, content_type="application/json", headers=headers)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize("title", [r'"\ud800"', r'"Cầu lông \udfff"', r'"\ud83d x"'])
def test_an_unpaired_surrogate_is_refused(client, organizer, title):
    error = assert_json_error(post_session(client, organizer, title), 422, "invalid_text")
    assert error["field"] == "title" and "Unicode" in error["message"]
    assert ClubSession.select().count() == 0


def test_a_surrogate_pair_is_one_character_and_welcome(client, organizer):
    response = post_session(client, organizer, r'"Smash \ud83c\udff8"')
    assert response.status_code == 201
    assert response.get_json()["title"] == "Smash \U0001f3f8"


@pytest.mark.parametrize("title", [r'"a\u0000b"', r'"\u0000"'])
def test_nul_in_json_text_is_refused(client, organizer, title):
    error = assert_json_error(post_session(client, organizer, title), 422, "invalid_text")
    assert error["field"] == "title" and "NUL" in error["message"]
    assert ClubSession.select().count() == 0


def test_nul_nested_in_json_is_refused(client, organizer):
    response = client.post(
        "/api/sessions", json={**NEW_SESSION, "title": "ok", "extra": [{"x": "a\x00"}]}, headers=organizer
    )
    assert_json_error(response, 422, "invalid_text")
    assert ClubSession.select().count() == 0


def test_nul_in_the_query_string_is_refused(client):
    assert_json_error(client.get("/api/sessions?status=published%00"), 422, "invalid_text")


def test_nul_in_a_form_is_refused_with_a_page_in_both_languages(client, factory):
    login(client, factory.user())
    token = csrf_token(client)
    response = client.post("/profile/tokens", data={"name": "my\x00script", "csrf_token": token})
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "ký tự không được phép (NUL)" in response.get_data(as_text=True)
    english(client)
    response = client.post("/profile/tokens", data={"name": "my\x00script", "csrf_token": token})
    assert "not allowed (NUL)" in response.get_data(as_text=True)
    assert ApiToken.select().count() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415(client, organizer, content_type):
    body = '{"title": "Plain", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T12:00:00Z"}'
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/api/sessions", data=body, headers=organizer, **kwargs)
    error = assert_json_error(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    assert ClubSession.select().count() == 0


def test_json_types_with_parameters_or_a_suffix_are_json(client, organizer):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = client.post(
            "/api/sessions",
            data='{"title": "T", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T12:00:00Z",'
            ' "max_slots": 5, "price": 0}',
            content_type=content_type,
            headers=organizer,
        )
        assert response.status_code == 201, (content_type, response.data)


def test_bodiless_requests_still_work(client, factory, now):
    booking = book_session(factory.user(), factory.club_session(), 0, "bank_transfer", now)
    admin = factory.user(role="admin")
    login(client, admin)
    headers = {"X-CSRFToken": csrf_token(client)}
    assert client.delete(f"/api/bookings/{booking.id}", headers=headers).status_code == 200
    assert Booking.get_by_id(booking.id).status == "cancelled"
    assert client.post("/api/auth/logout", headers=headers).status_code == 200


def test_webhooks_keep_their_own_rules(client):
    response = client.post("/api/webhooks/stripe", data="not json", content_type="text/plain")
    assert response.status_code != 415
    response = client.post("/api/webhooks/stripe", data='{"x": "\\u0000"}', content_type="application/json")
    assert response.status_code != 422 or response.get_json()["error"]["code"] != "invalid_text"


def test_the_guard_answers_before_the_content_type(app, factory):
    body = {"data": "title=x", "content_type": "text/plain"}
    assert app.test_client().post("/api/sessions", **body).status_code == 401
    player = login(app.test_client(), factory.user())
    assert (
        player.post("/api/sessions", headers={"X-CSRFToken": csrf_token(player)}, **body).status_code == 403
    )
