"""Which payment methods a session accepts: one Core rule (loafy.money.methods), asked by the
booking service (pages and API alike), the pay page, the intent endpoint and the admin's settings.

A club without Stripe's keys offers no card payment anywhere: a card booking would hold spots that
nobody can pay for.
"""

import re

import pytest

from loafy import settings as club_settings
from loafy.app import create_app
from loafy.booking import bookings
from loafy.models import Booking, ClubSession
from loafy.money import methods, stripe_client
from loafy.people import tokens
from tests.conftest import NO_STRIPE
from tests.helpers import login, reload

EN = {"Accept-Language": "en"}


def bearer(user):
    _token, raw = tokens.create_token(user, "test")
    return {"Authorization": f"Bearer {raw}", **EN}


@pytest.fixture
def player(factory):
    return factory.user(name="Lan")


@pytest.fixture
def club_session(factory):
    return factory.club_session(price=120_000, max_slots=6, allow_pay_at_door=True)


def all_methods():
    club_settings.update_settings({"payment_methods": ["stripe", "bank_transfer", "cash"]})


# --- with Stripe's keys (the tests' default club) ---------------------------------------------------


def test_a_club_with_stripe_keys_accepts_card(app, club_session, now):
    all_methods()
    with app.app_context():
        assert methods.accepted_payment_methods(club_session, now) == ["stripe", "bank_transfer", "cash"]


def test_cash_only_where_the_session_takes_it_at_the_door(app, factory, now):
    all_methods()
    no_door = factory.club_session(price=50_000, allow_pay_at_door=False)
    with app.app_context():
        assert methods.accepted_payment_methods(no_door, now) == ["stripe", "bank_transfer"]
        with pytest.raises(methods.PaymentMethodUnavailable, match="cash at the door"):
            methods.check_payment_method(no_door, "cash", now)


def test_a_free_session_needs_no_payment_method(app, factory, now):
    all_methods()
    free = factory.club_session(price=0)
    with app.app_context():
        assert methods.accepted_payment_methods(free, now) == []
        methods.check_payment_method(free, "cash", now)  # nothing to pay: any choice is fine


def test_the_settings_decide_first(app, club_session, now):
    club_settings.update_settings({"payment_methods": ["bank_transfer"]})
    with app.app_context():
        assert methods.accepted_payment_methods(club_session, now) == ["bank_transfer"]


def test_the_api_books_by_card_when_keys_are_set(client, player, club_session):
    all_methods()
    response = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 1, "payment_method": "stripe"},
        headers=bearer(player),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["payment_method"] == "stripe"


# --- without them ------------------------------------------------------------------------------------


@pytest.fixture
def bare_app(app_config, app):
    """The same database, served by an app built without any Stripe key. (Stripe's settings are
    the process's: building it switches card payment off for the test's own app too.)"""
    bare = create_app({**app_config, **NO_STRIPE})
    yield bare
    stripe_client.init_app(app)


def test_without_keys_card_is_accepted_nowhere(bare_app, club_session, now):
    all_methods()
    with bare_app.app_context():
        assert methods.offered_methods() == ["bank_transfer", "cash"]
        assert methods.accepted_payment_methods(club_session, now) == ["bank_transfer", "cash"]
        with pytest.raises(methods.PaymentMethodUnavailable, match="not set up"):
            methods.check_payment_method(club_session, "stripe", now)


def test_without_keys_the_api_refuses_a_card_booking_with_a_clear_422(bare_app, player, club_session):
    all_methods()
    client = bare_app.test_client()
    response = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 1, "payment_method": "stripe"},
        headers=bearer(player),
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "payment_method_unavailable"
    assert "not set up" in error["message"]
    assert Booking.select().count() == 0
    assert reload(club_session).available_slots == 6
    # The other methods still book.
    response = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 0, "payment_method": "bank_transfer"},
        headers=bearer(player),
    )
    assert response.status_code == 201


def test_without_keys_the_service_refuses_card_on_every_path(bare_app, factory, club_session, now):
    """The fast path (one UPDATE) and the locked path (after a lapsed hold) both ask the rule."""
    all_methods()
    player = factory.user()
    with bare_app.app_context():
        with pytest.raises(bookings.PaymentMethodUnavailable):
            bookings.book_session(player, club_session.id, 0, "stripe", now)
        with pytest.raises(bookings.PaymentMethodUnavailable):
            bookings._book_locked(player, club_session.id, 0, 1, "stripe", club_settings.get_settings(), now)
    assert Booking.select().count() == 0
    assert ClubSession.get_by_id(club_session.id).available_slots == 6


def test_without_keys_the_booking_form_offers_no_card(bare_app, player, club_session):
    all_methods()
    client = login(bare_app.test_client(), player)
    page = client.get(f"/sessions/{club_session.id}", headers=EN).get_data(as_text=True)
    assert 'name="payment_method"' in page
    assert 'value="stripe"' not in page and 'value="bank_transfer"' in page
    # A hand-made post of the card choice is refused on the page, with the form shown again.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/sessions/{club_session.id}/book",
        data={"csrf_token": token, "guest_count": "0", "payment_method": "stripe"},
        headers=EN,
    )
    assert response.status_code == 422
    assert "not set up" in response.get_data(as_text=True)
    assert Booking.select().count() == 0


def test_without_keys_a_card_booking_made_earlier_cannot_start_a_payment(
    app, bare_app, player, club_session, now
):
    all_methods()
    stripe_client.init_app(app)  # the keys were set when the player booked
    with app.app_context():
        booking = bookings.book_session(player, club_session.id, 0, "stripe", now)
    stripe_client.init_app(bare_app)
    client = login(bare_app.test_client(), player)
    page = client.get(f"/bookings/{booking.id}/pay", headers=EN).get_data(as_text=True)
    assert "not set up" in page and 'id="card-form"' not in page
    me = client.get("/api/auth/me").get_json()
    response = client.post(
        "/api/payments/stripe/intent",
        json={"booking_id": booking.id},
        headers={"X-CSRFToken": me["csrf_token"]},
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payments_not_configured"


def test_the_admin_settings_say_card_is_not_offered_without_keys(bare_app, factory):
    all_methods()
    client = login(bare_app.test_client(), factory.user(role="admin"))
    page = client.get("/admin/settings/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Not offered to players" in page and "no Stripe keys" in page
    page = client.get("/admin/settings/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert "Không hiển thị cho người chơi" in page and "chưa có khóa Stripe" in page


def test_the_admin_settings_say_nothing_when_keys_are_set(client, factory):
    all_methods()
    login(client, factory.user(role="admin"))
    page = client.get("/admin/settings/").get_data(as_text=True)
    assert 'name="payment_methods" value="stripe"' in page
    assert "not-offered" not in page
