"""The public pages over HTTP (Flask test client): lists, filters, the booking form, my bookings,
cancelling, languages and error pages. Services are tested elsewhere; these check the wiring."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from loafy import settings as club_settings
from loafy.booking.bookings import book_session, expire_unpaid
from loafy.models import Booking, ClubSession, User
from loafy.people import tokens
from tests.helpers import csrf_token, login, reload

EN = {"Accept-Language": "en"}


def text(response):
    return response.get_data(as_text=True)


def form_token(client, path="/"):
    """The CSRF token the page at `path` puts in its forms (the sign-out form is on every page)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path)))
    assert match, "no form with a CSRF token on " + path
    return match.group(1)


def book(client, club_session, guests="0", method="stripe", token=True, headers=None):
    data = {"guest_count": guests, "payment_method": method}
    if token:
        data["csrf_token"] = form_token(client, f"/sessions/{club_session.id}")
    return client.post(f"/sessions/{club_session.id}/book", data=data, headers=headers or EN)


@pytest.fixture
def player(factory):
    return factory.user(name="Lan")


# --- the lists ---------------------------------------------------------------------------------


def test_home_lists_upcoming_published_sessions_with_local_time_and_vnd(client, factory, now):
    factory.club_session(title="Evening smash", price=150_000, starts_at=now + timedelta(days=1))
    factory.club_session(title="Secret draft", status="draft")
    factory.club_session(title="Last week", starts_at=now - timedelta(days=7))
    page = text(client.get("/"))
    assert "Evening smash" in page
    assert "150.000 ₫" in page
    # 2026-11-25 03:00 UTC is Wednesday 10:00 in Ho Chi Minh City; Vietnamese by default.
    assert "Thứ Tư, 25/11 · 10:00" in page
    assert "Secret draft" not in page and "Last week" not in page
    assert "Còn 10 chỗ" in page


def test_all_includes_past_sessions_but_never_drafts(client, factory, now):
    factory.club_session(title="Last week", starts_at=now - timedelta(days=7))
    factory.club_session(title="Secret draft", status="draft")
    page = text(client.get("/sessions?when=all", headers=EN))
    assert "Last week" in page and "Started" in page
    assert "Secret draft" not in page


def test_cards_show_spots_full_and_member_opening(client, factory, now):
    factory.club_session(title="Roomy", max_slots=10, available_slots=3)
    factory.club_session(title="Packed", max_slots=8, available_slots=0)
    factory.club_session(
        title="Members first",
        early_access_opens_at=now + timedelta(hours=2),
        booking_opens_at=now + timedelta(hours=26),
    )
    page = text(client.get("/sessions", headers=EN))
    assert re.search(r"Roomy.*?3 spots left", page, re.S)
    assert re.search(r"Packed.*?Full", page, re.S)
    # now + 2 h = 05:00 UTC = 12:00 club time on 24 Nov.
    assert re.search(r"Members first.*?Opens for members at 12:00, 24 Nov", page, re.S)


def test_a_member_is_never_shown_a_later_opening_than_everyone_else(client, factory, now):
    """Early access without a public time (allowed before that rule existed): open to everyone."""
    factory.club_session(
        title="Loose ends", booking_opens_at=None, early_access_opens_at=now + timedelta(hours=2)
    )
    member = factory.user(member=True)
    for viewer in (None, member):
        browser = client.application.test_client()
        if viewer is not None:
            login(browser, viewer)
        page = text(browser.get("/sessions", headers=EN))
        assert re.search(r"Loose ends.*?spots left", page, re.S) and "Opens for members" not in page


def test_cards_show_the_players_own_booking(client, factory, player, now):
    mine = factory.club_session(title="Mine")
    factory.club_session(title="Not mine")
    booking = book_session(player, mine, 1, "stripe", now)
    login(client, player)
    page = text(client.get("/", headers=EN))
    assert re.search(rf"Mine.*?Your booking {booking.code}.*?Awaiting payment", page, re.S)
    assert page.count("Your booking") == 1


def test_date_filters_use_the_club_day(client, factory, now):
    # 16:30 UTC on 30 Nov is 23:30 on 30 Nov in the club's zone; 17:30 UTC is already 00:30 on 1 Dec.
    late = factory.club_session(title="Late on the 30th", starts_at=now.replace(day=30, hour=16, minute=30))
    early = factory.club_session(title="Early on the 1st", starts_at=now.replace(day=30, hour=17, minute=30))
    page = text(client.get("/sessions", query_string={"to": "2026-11-30"}))
    assert late.title in page and early.title not in page
    page = text(client.get("/sessions", query_string={"from": "2026-12-01"}))
    assert early.title in page and late.title not in page
    page = text(client.get("/sessions", query_string={"from": "2026-12-01", "to": "2026-12-01"}))
    assert early.title in page and late.title not in page
    page = text(client.get("/sessions", query_string={"from": "2026-12-02"}))
    assert early.title not in page and late.title not in page


@pytest.mark.parametrize(
    "query",
    [
        {"from": "yesterday"},
        {"to": "2026-13-45"},
        {"from": "0001-01-01", "to": "9999-12-31"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "999999999999"},
        {"when": "<script>", "status": "nope"},
    ],
)
def test_bad_filter_values_never_fail(client, factory, query):
    factory.club_session(title="Still here")
    response = client.get("/sessions", query_string=query)
    assert response.status_code == 200
    assert "Still here" in text(response)
    assert "<script>" not in text(response)


def test_a_bad_date_is_named_in_place(client, factory):
    page = text(client.get("/sessions", query_string={"from": "31/12/2026"}, headers=EN))
    assert "Enter dates as YYYY-MM-DD" in page


def test_pagination(client, factory, now):
    for i in range(30):
        factory.club_session(title=f"Session {i:02d}", starts_at=now + timedelta(days=1, hours=i))
    first = text(client.get("/sessions", headers=EN))
    assert "Session 00" in first and "Session 11" in first and "Session 12" not in first
    assert "Page 1 of 3" in first and 'rel="next" href="/sessions?page=2"' in first
    last = text(client.get("/sessions?page=3", headers=EN))
    assert "Session 24" in last and "Session 29" in last and "Session 23" not in last
    assert "Page 3 of 3" in last
    beyond = text(client.get("/sessions?page=50", headers=EN))
    assert "Page 3 of 3" in beyond  # clamped to the last page


def test_pagination_keeps_the_filters(client, factory, now):
    for i in range(14):
        factory.club_session(starts_at=now + timedelta(days=1, hours=i))
    page = text(client.get("/sessions?when=all&from=2026-11-01"))
    assert 'href="/sessions?page=2&amp;when=all&amp;from=2026-11-01"' in page


def test_status_filter_is_for_staff_only(client, factory):
    factory.club_session(title="Secret draft", status="draft")
    factory.club_session(title="Open one")
    login(client, factory.user())
    page = text(client.get("/sessions?status=draft"))
    assert "Secret draft" not in page and "Open one" in page
    login(client, factory.user(role="organizer"))
    page = text(client.get("/sessions?status=draft"))
    assert "Secret draft" in page and "Open one" not in page


# --- the session page and the booking form -------------------------------------------------------


def test_session_page_shows_the_form_with_enabled_methods(client, factory, player, monkeypatch):
    from loafy.money import stripe_client

    club_session = factory.club_session(price=120_000, allow_pay_at_door=False)
    club_settings.update_settings({"payment_methods": ["stripe", "cash"]})
    login(client, player)
    monkeypatch.setitem(stripe_client._state, "publishable_key", None)
    page = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert 'value="stripe"' not in page  # no Stripe keys: a card booking would have no way to pay
    monkeypatch.setitem(stripe_client._state, "publishable_key", "pk_test_page")
    page = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert 'name="guest_count"' in page and '<option value="3"' in page and '<option value="4"' not in page
    assert 'value="stripe"' in page
    assert 'value="bank_transfer"' not in page  # disabled in the settings
    assert 'value="cash"' not in page  # this session does not take cash at the door
    assert "120.000 ₫" in page and 'data-price="120000"' in page


def test_anonymous_visitors_are_asked_to_sign_in(client, factory):
    club_session = factory.club_session()
    page = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert "Sign in to book" in page and 'name="guest_count"' not in page
    response = client.post(f"/sessions/{club_session.id}/book", data={"guest_count": "0"})
    assert response.status_code in (302, 400)  # CSRF first or sign-in: never a booking
    assert Booking.select().count() == 0


def test_drafts_and_unknown_sessions_are_404(client, factory, player):
    draft = factory.club_session(status="draft")
    login(client, player)
    assert client.get(f"/sessions/{draft.id}").status_code == 404
    assert client.get("/sessions/999999").status_code == 404
    assert client.get("/sessions/99999999999999999999").status_code == 404


def test_booking_redirects_to_the_booking_and_stores_it(client, factory, player):
    club_session = factory.club_session(price=150_000, max_slots=10)
    login(client, player)
    response = book(client, club_session, guests="2", method="bank_transfer")
    assert response.status_code == 302
    booking = Booking.get(Booking.user == player.id)
    assert (
        response.headers["Location"].endswith(f"/bookings/{booking.id}")
        or "/pay" in response.headers["Location"]
    )
    assert (booking.guest_count, booking.slots, booking.amount) == (2, 3, 450_000)
    assert reload(club_session).available_slots == 7
    page = text(client.get(f"/bookings/{booking.id}", headers=EN))
    # Not "booked" while unpaid: what is held, and until when (03:30 UTC is 10:30 in the club).
    assert f"Your spot is held until 10:30. Pay to confirm booking {booking.code}." in page
    assert "Booked!" not in page
    assert "450.000 ₫" in page and "Awaiting payment" in page


@pytest.mark.parametrize(
    ("guests", "method", "status", "message"),
    [
        ("abc", "stripe", 422, "The number of guests must be a whole number from 0 to 3."),
        ("-1", "stripe", 422, "The number of guests must be a whole number from 0 to 3."),
        ("4", "stripe", 422, "You can bring at most 3 guests."),
        ("1", "paypal", 422, "That payment method is not available for this session."),
        ("", "", 422, "The number of guests must be a whole number from 0 to 3."),
    ],
)
def test_invalid_form_is_shown_again_with_the_message_and_values(
    client, factory, player, guests, method, status, message
):
    club_session = factory.club_session()
    login(client, player)
    response = book(client, club_session, guests=guests, method=method)
    assert response.status_code == status
    page = text(response)
    assert message in page
    assert 'role="alert"' in page and f'action="/sessions/{club_session.id}/book"' in page
    assert Booking.select().count() == 0


def test_the_chosen_values_are_kept(client, factory, player):
    club_session = factory.club_session(max_slots=3)
    login(client, player)
    response = book(client, club_session, guests="3", method="bank_transfer")
    assert response.status_code == 409
    page = text(response)
    assert "Only 3 spots left: bring fewer guests." in page
    assert '<option value="3" selected>' in page
    assert 'value="bank_transfer" checked' in page
    assert Booking.select().count() == 0


def test_full_session_is_a_409_in_place(client, factory, player):
    club_session = factory.club_session(max_slots=4, available_slots=0)
    login(client, player)
    response = book(client, club_session)
    assert response.status_code == 409
    assert "Sorry, this session is full." in text(response)
    # Vietnamese readers get the same refusal in Vietnamese (translated by its code).
    response = book(client, club_session, headers={"Accept-Language": "vi"})
    assert response.status_code == 409 and "Rất tiếc, buổi này đã hết chỗ." in text(response)


def test_booking_twice_is_a_409(client, factory, player):
    club_session = factory.club_session()
    login(client, player)
    assert book(client, club_session).status_code == 302
    page_after = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert "You are in" in page_after and 'name="guest_count"' not in page_after
    response = client.post(
        f"/sessions/{club_session.id}/book",
        data={"guest_count": "0", "payment_method": "stripe", "csrf_token": form_token(client)},
        headers=EN,
    )
    assert response.status_code == 409
    assert "already have a booking" in text(response)
    assert Booking.select().count() == 1


def test_missing_csrf_token_is_400_and_books_nothing(client, factory, player):
    club_session = factory.club_session()
    login(client, player)
    response = book(client, club_session, token=False)
    assert response.status_code == 400
    assert Booking.select().count() == 0
    assert reload(club_session).available_slots == club_session.max_slots


def test_cash_at_the_door_is_confirmed_at_once(client, factory, player):
    club_session = factory.club_session(allow_pay_at_door=True)
    login(client, player)
    response = book(client, club_session, guests="1", method="cash")
    booking = Booking.get(Booking.user == player.id)
    assert response.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert booking.status == "confirmed"


# --- my bookings -----------------------------------------------------------------------------------


def test_my_bookings_lists_only_mine_with_status_and_countdown(client, factory, player, now):
    other = factory.user()
    first = factory.club_session(title="Pending one", price=100_000)
    second = factory.club_session(title="Cash one", allow_pay_at_door=True)
    theirs = factory.club_session(title="Their session")
    pending = book_session(player, first, 1, "stripe", now)
    book_session(player, second, 0, "cash", now)
    book_session(other, theirs, 0, "stripe", now)
    login(client, player)
    page = text(client.get("/bookings", headers=EN))
    assert "Pending one" in page and "Cash one" in page and "Their session" not in page
    assert "2 bookings" in page
    assert "Awaiting payment" in page and "Confirmed" in page
    assert 'class="countdown" data-left="1800"' in page  # 30 minutes, counted from the server's clock
    assert f'action="/bookings/{pending.id}/cancel"' in page


def test_my_bookings_needs_sign_in(client):
    response = client.get("/bookings")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_booking_page_has_details_and_the_door_code_once_paid(client, factory, player, now):
    booking = book_session(player, factory.club_session(price=80_000), 2, "stripe", now)
    login(client, player)
    page = text(client.get(f"/bookings/{booking.id}", headers=EN))
    assert booking.code in page and "240.000 ₫" in page
    assert "You + 2 guests" in page and "Pay within" in page
    # No door QR while unpaid: the door checks in confirmed bookings only.
    assert "qr-code" not in page and "Your door code appears here once you have paid." in page

    Booking.update(status="confirmed", payment_status="paid").where(Booking.id == booking.id).execute()
    page = text(client.get(f"/bookings/{booking.id}", headers=EN))
    assert "<svg" in page and "qr-code" in page and "Show this code at the door" in page


def test_someone_elses_booking_is_404(client, factory, player, now):
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    login(client, player)
    assert client.get(f"/bookings/{booking.id}").status_code == 404
    response = client.post(f"/bookings/{booking.id}/cancel", data={"csrf_token": form_token(client)})
    assert response.status_code == 404
    assert reload(booking).status == "pending_payment"


def test_staff_can_view_a_players_booking(client, factory, now):
    organizer = factory.user(role="organizer")
    booking = book_session(
        factory.user(name="Minh"), factory.club_session(created_by=organizer), 0, "stripe", now
    )
    login(client, organizer)
    page = text(client.get(f"/bookings/{booking.id}", headers=EN))
    assert "Minh" in page and booking.code in page
    login(client, factory.user(role="organizer"))  # another organizer's session: no door code for them
    assert client.get(f"/bookings/{booking.id}", headers=EN).status_code == 404


def test_an_overdue_booking_shows_as_expired_and_frees_the_spot(client, factory, player, now):
    club_session = factory.club_session(max_slots=1)
    booking = book_session(player, club_session, 0, "stripe", now)
    assert expire_unpaid(now + timedelta(minutes=31)) == [booking.code]
    login(client, player)
    page = text(client.get("/bookings", headers=EN))
    assert "Expired" in page and f'/bookings/{booking.id}/cancel"' not in page
    assert "1 spot left" in text(client.get(f"/sessions/{club_session.id}", headers=EN))


def test_cancel_is_post_redirect_get_and_returns_the_spots(client, factory, player, now):
    club_session = factory.club_session(max_slots=5)
    booking = book_session(player, club_session, 1, "stripe", now)
    login(client, player)
    response = client.post(
        f"/bookings/{booking.id}/cancel", data={"csrf_token": form_token(client)}, headers=EN
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/bookings/{booking.id}")
    assert reload(booking).status == "cancelled"
    assert reload(club_session).available_slots == 5
    page = text(client.get(response.headers["Location"], headers=EN))
    assert f"Booking {booking.code} is cancelled" in page and "Cancel booking" not in page
    again = client.post(f"/bookings/{booking.id}/cancel", data={"csrf_token": form_token(client)}, headers=EN)
    assert again.status_code == 302
    assert "already cancelled or expired" in text(client.get(again.headers["Location"], headers=EN))


def test_cancel_without_csrf_token_is_400(client, factory, player, now):
    booking = book_session(player, factory.club_session(), 0, "stripe", now)
    login(client, player)
    assert client.post(f"/bookings/{booking.id}/cancel").status_code == 400
    assert reload(booking).status == "pending_payment"


def test_too_late_to_cancel_is_said_in_place(client, factory, player, now):
    booking = book_session(player, factory.club_session(starts_at=now + timedelta(hours=3)), 0, "stripe", now)
    login(client, player)
    page = text(client.get(f"/bookings/{booking.id}", headers=EN))
    assert "Online cancellation closed" in page and "Cancel booking" not in page
    response = client.post(f"/bookings/{booking.id}/cancel", data={"csrf_token": form_token(client)})
    assert response.status_code == 302 and reload(booking).status == "pending_payment"


# --- languages -------------------------------------------------------------------------------------


def test_vietnamese_by_default_and_english_from_the_browser(client, factory):
    factory.club_session()
    assert 'lang="vi"' in text(client.get("/")) and "Các buổi sắp tới" in text(client.get("/"))
    page = text(client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert 'lang="en"' in page and "Upcoming sessions" in page and "Wed 25 Nov · 10:00" not in page
    assert "Các buổi sắp tới" in text(client.get("/", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"}))
    assert "Các buổi sắp tới" in text(client.get("/", headers={"Accept-Language": "fr-FR"}))


def test_english_dates_per_locale(client, factory, now):
    factory.club_session(starts_at=now + timedelta(days=1))
    assert "Wed 25 Nov · 10:00" in text(client.get("/", headers=EN))


def test_the_language_switch_sets_a_cookie_and_goes_back(client, factory):
    response = client.get("/lang/en", query_string={"next": "/sessions?when=all"})
    assert response.status_code == 302 and response.headers["Location"] == "/sessions?when=all"
    assert "lang=en" in response.headers["Set-Cookie"]
    assert "Upcoming sessions" in text(client.get("/", headers={"Accept-Language": "vi"}))
    client.get("/lang/vi")
    assert "Các buổi sắp tới" in text(client.get("/", headers=EN))


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "javascript:alert(1)", "/\\evil"]
)
def test_the_language_switch_never_leaves_the_site(client, target):
    response = client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_unknown_language_is_404(client):
    assert client.get("/lang/fr").status_code == 404


def test_the_choice_is_saved_on_the_account(app, client, factory, player):
    login(client, player)
    page = text(client.get("/"))
    assert 'action="/lang/en?next=/"' in page and 'href="/lang/en' not in page  # a form, not a link
    response = client.post("/lang/en", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert User.get_by_id(player.id).locale == "en"
    other_browser = app.test_client()
    login(other_browser, player)
    assert "Upcoming sessions" in text(other_browser.get("/"))


def test_a_link_never_changes_the_account(client, factory, player):
    """A GET (a link or an image on another site) sets this browser's cookie only."""
    login(client, player)
    before = User.get_by_id(player.id).locale
    response = client.get("/lang/en")
    assert response.status_code == 302 and "lang=en" in response.headers["Set-Cookie"]
    assert User.get_by_id(player.id).locale == before != "en"


def test_the_saving_switch_needs_its_csrf_token(client, factory, player):
    login(client, player)
    before = User.get_by_id(player.id).locale
    assert client.post("/lang/en").status_code == 400
    assert User.get_by_id(player.id).locale == before


def test_every_page_has_a_switch_to_the_other_language(client, factory):
    club_session = factory.club_session()
    page = text(client.get(f"/sessions/{club_session.id}"))
    assert f'href="/lang/en?next=/sessions/{club_session.id}"' in page
    page = text(client.get("/", headers=EN))
    assert 'href="/lang/vi?next=/"' in page


# --- error pages -------------------------------------------------------------------------------


def test_404_page_in_both_languages(client):
    vi = client.get("/no-such-page")
    assert vi.status_code == 404 and "Không tìm thấy trang" in text(vi)
    en = client.get("/no-such-page", headers=EN)
    assert en.status_code == 404 and "Page not found" in text(en) and "Back to sessions" in text(en)


def test_403_page_in_both_languages(client, factory):
    login(client, factory.user())
    vi = client.get("/admin/")
    assert vi.status_code == 403 and "Trang này không công khai" in text(vi)
    assert "This page is private" in text(client.get("/admin/", headers=EN))


def test_500_page_in_both_languages(app, client):
    def boom():
        raise RuntimeError("kaboom")

    app.add_url_rule("/boom-for-test", "boom_for_test", boom)
    vi = client.get("/boom-for-test")
    assert vi.status_code == 500 and "Đã có lỗi xảy ra" in text(vi) and "kaboom" not in text(vi)
    assert "Something went wrong" in text(client.get("/boom-for-test", headers=EN))


def test_csrf_error_page_is_translated(client, factory, player):
    club_session = factory.club_session()
    login(client, player)
    response = book(client, club_session, token=False, headers={"Accept-Language": "vi"})
    assert response.status_code == 400 and "Biểu mẫu đã hết hạn" in text(response)


def test_every_flash_in_the_web_layer_is_translated():
    """A flash of a plain string would reach Vietnamese readers in English: each goes through
    gettext (`_`, `ngettext`) or `error_text`, never a literal or a service's English message."""
    untranslated = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(Path("public").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(flash|_login_failed)\(\s*(f?[\"']|exc\.message)", line)
    ]
    assert not untranslated, untranslated


def test_profile_and_sign_out_messages_are_in_vietnamese(client, player):
    login(client, player)
    token = tokens.create_token(player, "điện thoại")[0]
    page = text(
        client.post(
            f"/profile/tokens/{token.id}/revoke",
            data={"csrf_token": csrf_token(client)},
            follow_redirects=True,
        )
    )
    assert "Mã “điện thoại” không còn dùng được nữa." in page
    page = text(client.post("/auth/logout", data={"csrf_token": csrf_token(client)}, follow_redirects=True))
    assert "Bạn đã đăng xuất." in page and "signed out" not in page


def test_the_profile_names_the_role_and_membership_in_vietnamese(client, factory, now):
    member = factory.user(membership_until=now + timedelta(days=30))
    tokens.create_token(member, "script")
    login(client, member)
    page = text(client.get("/profile"))
    assert "Người chơi" in page and "Hội viên đến 24/12/2026" in page and "Vai trò: player" not in page
    assert 'data-confirm="Thu hồi mã “script”?' in page  # revoking asks first


def test_the_pay_page_speaks_vietnamese(client, factory, player, now):
    booking = book_session(player, factory.club_session(price=150_000), 0, "stripe", now)
    Booking.update(payment_deadline=now - timedelta(minutes=1)).where(Booking.id == booking.id).execute()
    login(client, player)
    page = text(client.get(f"/bookings/{booking.id}/pay"))
    # Past its deadline it has expired for everyone, whether or not the expiry job has run.
    assert "Đặt chỗ đã hết hạn trước khi được thanh toán" in page
    assert "Thứ Năm, 26/11" in page and "Thu " not in page  # the session's day, in Vietnamese
    errors = json.loads(html.unescape(re.search(r'data-errors="([^"]*)"', page).group(1)))
    assert errors["payment_unavailable"].startswith("Thanh toán tạm thời")
    english = text(client.get(f"/bookings/{booking.id}/pay", headers=EN))
    assert "expired before it was paid" in english and 'data-errors="{}"' in english


def test_every_vietnamese_message_is_translated():
    from babel.messages.pofile import read_po

    with open("translations/vi/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(f)
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert not untranslated
    assert ClubSession  # the models import stays used by the module
