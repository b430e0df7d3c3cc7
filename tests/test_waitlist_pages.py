"""The waitlist on the public pages and in the staff area, over HTTP: joining from a full session's
page with a party, the position and Leave, My bookings with the offer's countdown and pay button,
the count of those waiting, and the staff's list with removal."""

import re

from loafy.booking import waitlist
from loafy.booking.bookings import book_session, cancel_booking
from loafy.models import AuditLog, Booking, WaitlistEntry
from tests.helpers import csrf_token, login, reload

EN = {"Accept-Language": "en"}


def text(response):
    return response.get_data(as_text=True)


def form_token(client, path):
    match = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path, headers=EN)))
    assert match, "no form with a CSRF token on " + path
    return match.group(1)


def _full(factory, now, max_slots=2):
    club_session = factory.club_session(max_slots=max_slots, price=100_000)
    holders = [book_session(factory.user(), club_session, 0, "bank_transfer", now) for _ in range(max_slots)]
    return club_session, holders


def test_a_full_session_offers_the_waitlist_and_shows_the_place(client, factory, now):
    club_session, _ = _full(factory, now)
    waitlist.join_waitlist(factory.user(), club_session.id, 1, now)
    login(client, factory.user())
    page = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert "Join the waitlist" in page and 'name="party_size"' in page
    assert "1 party waiting" in page

    path = f"/sessions/{club_session.id}"
    response = client.post(
        f"/sessions/{club_session.id}/waitlist",
        data={"csrf_token": form_token(client, path), "party_size": "3", "min_party": "2"},
        headers=EN,
    )
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"], headers=EN))
    assert "You are on the waitlist: number 2." in page
    assert "Your position: 2" in page and "Leave the waitlist" in page
    assert "2 parties waiting" in page
    entry = WaitlistEntry.get(WaitlistEntry.party_size == 3)
    assert (entry.min_party, entry.status) == (2, "waiting")

    response = client.post(
        f"/waitlist/{entry.id}/leave", data={"csrf_token": form_token(client, path), "next": path}, headers=EN
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(path)
    assert reload(entry).status == "left"
    assert "Join the waitlist" in text(client.get(path, headers=EN))


def test_a_refusal_is_shown_in_place(client, factory, now):
    club_session = factory.club_session(max_slots=3)
    login(client, factory.user())
    path = f"/sessions/{club_session.id}"
    response = client.post(
        f"/sessions/{club_session.id}/waitlist",
        data={"csrf_token": form_token(client, path), "party_size": "1"},
        headers=EN,
    )
    assert response.status_code == 409
    assert "book it instead" in text(response)
    assert WaitlistEntry.select().count() == 0


def test_vietnamese_by_default(client, factory, now):
    club_session, _ = _full(factory, now)
    login(client, factory.user())
    page = text(client.get(f"/sessions/{club_session.id}"))
    assert "Vào danh sách chờ" in page


def test_my_bookings_shows_the_place_then_the_offer_with_its_countdown(client, factory, now):
    club_session, holders = _full(factory, now, max_slots=1)
    player = factory.user()
    entry = waitlist.join_waitlist(player, club_session.id, 1, now)
    login(client, player)
    page = text(client.get("/bookings", headers=EN))
    assert "Waitlist" in page and "Your position: 1" in page and ">Leave<" in page

    cancel_booking(holders[0].user, holders[0].id, now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    page = text(client.get("/bookings", headers=EN))
    assert "Offer waiting" in page and offer.code in page
    assert 'class="countdown"' in page and f"/bookings/{offer.id}/pay" in page
    assert "From the waitlist" in page
    session_page = text(client.get(f"/sessions/{club_session.id}", headers=EN))
    assert "A spot opened for you from the waitlist" in session_page
    assert f"/bookings/{offer.id}/pay" in session_page


def test_staff_see_the_waitlist_in_order_and_remove_an_entry(client, factory, now):
    organizer = factory.user(role="organizer")
    club_session = factory.club_session(max_slots=1, created_by=organizer)
    holder = book_session(factory.user(), club_session, 0, "bank_transfer", now)
    first = waitlist.join_waitlist(factory.user(name="Ánh Dương"), club_session.id, 1, now)
    waitlist.join_waitlist(factory.user(name="Bảo Ngọc"), club_session.id, 1, now)
    cancel_booking(holder.user, holder.id, now)  # the first gets the offer
    login(client, organizer)
    page = text(client.get(f"/admin/sessions/details/?id={club_session.id}", headers=EN))
    assert page.index("Ánh Dương") < page.index("Bảo Ngọc")
    assert (
        "Waitlist" in page
        and "Offers made" in page
        and Booking.get_by_id(reload(first).booking_id).code in page
    )
    vietnamese = text(client.get(f"/admin/sessions/details/?id={club_session.id}"))
    assert "Danh sách chờ" in vietnamese and "Các lời mời đã gửi" in vietnamese and "Đang chờ" in vietnamese
    second = WaitlistEntry.get(WaitlistEntry.status == "waiting")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/admin/sessions/waitlist/remove/",
        data={"csrf_token": token, "id": second.id, "session_id": club_session.id},
    )
    assert response.status_code == 302
    assert reload(second).status == "left"
    assert AuditLog.get(AuditLog.action == "waitlist.remove").object_id == str(second.id)

    # Another organizer neither sees this session's waitlist nor removes from it.
    login(client, factory.user(role="organizer"))
    page = text(client.get(f"/admin/sessions/details/?id={club_session.id}"))
    assert "Bảo Ngọc" not in page
    third = waitlist.join_waitlist(factory.user(), club_session.id, 1, now)
    client.post("/admin/sessions/waitlist/remove/", data={"csrf_token": csrf_token(client), "id": third.id})
    assert reload(third).status == "waiting"
