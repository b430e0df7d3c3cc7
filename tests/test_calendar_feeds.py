"""Calendar feeds: they parse with icalendar, hold exactly the expected events, keep UIDs stable,
bump SEQUENCE on change, keep cancelled ones as STATUS:CANCELLED and never leak another player's
bookings; the private link is made and revoked on the profile page; confirmations attach an .ics."""

import email
import re
from datetime import timedelta

from icalendar import Calendar

from loafy import notifications
from loafy.booking import staff
from loafy.booking.bookings import book_session, cancel_booking
from loafy.calendar import ics
from tests.helpers import login


def _events(body):
    calendar = Calendar.from_ical(body)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def test_the_public_feed_holds_published_sessions_and_keeps_cancelled_ones(client, factory, now):
    admin = factory.user(role="admin")
    shown = factory.club_session(title="Shown", starts_at=now + timedelta(days=1))
    factory.club_session(title="Draft", status="draft")
    cancelled = factory.club_session(title="Off", starts_at=now + timedelta(days=3))
    staff.cancel_session(admin, cancelled.id, now)
    response = client.get("/sessions.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    events = _events(response.data)
    assert set(events) == {f"session-{shown.id}@localhost", f"session-{cancelled.id}@localhost"}
    assert str(events[f"session-{cancelled.id}@localhost"]["STATUS"]) == "CANCELLED"
    event = events[f"session-{shown.id}@localhost"]
    assert str(event["SUMMARY"]) == "Shown" and str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTART").replace(tzinfo=None) == shown.starts_at
    assert int(event["SEQUENCE"]) == 0 and int(events[f"session-{cancelled.id}@localhost"]["SEQUENCE"]) == 1


def test_a_change_bumps_the_sequence_and_keeps_the_uid(client, factory, now):
    admin = factory.user(role="admin")
    club_session = factory.club_session()
    before = _events(client.get("/sessions.ics").data)
    staff.update_session(admin, club_session.id, {"location": "Sân mới"}, now)
    after = _events(client.get("/sessions.ics").data)
    assert set(before) == set(after)
    (uid,) = after
    assert int(after[uid]["SEQUENCE"]) == int(before[uid]["SEQUENCE"]) + 1
    assert str(after[uid]["LOCATION"]) == "Sân mới"
    staff.update_session(admin, club_session.id, {"max_slots": 30}, now)  # not a calendar change
    assert int(_events(client.get("/sessions.ics").data)[uid]["SEQUENCE"]) == 1


def _feed_url(client):
    page = client.post("/profile/calendar", data={"csrf_token": _csrf(client)})
    assert page.status_code == 201
    assert "Lịch của bạn" in page.get_data(as_text=True)  # Vietnamese by default
    match = re.search(r'id="new-feed-url">([^<]+)<', page.get_data(as_text=True))
    return match.group(1)


def _csrf(client):
    page = client.get("/profile").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_private_feed_holds_my_bookings_only(app, client, factory, now):
    me, other = factory.user(), factory.user()
    mine = factory.club_session(title="Mine")
    theirs = factory.club_session(title="Theirs")
    cancelled = factory.club_session(title="Cancelled later", price=0)
    kept = book_session(me, mine.id, 1, "stripe", now)
    book_session(other, theirs.id, 0, "stripe", now)
    book_session(other, mine.id, 0, "stripe", now)
    gone = book_session(me, cancelled.id, 0, "stripe", now)  # free: confirmed at once
    cancel_booking(me, gone.id, now)
    login(client, me)
    url = _feed_url(client)
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    assert len(token) >= 43  # 256 bits
    anonymous = app.test_client()
    events = _events(anonymous.get(f"/calendar/{token}.ics").data)
    assert set(events) == {ics.booking_uid(kept), ics.booking_uid(gone)}
    assert str(events[ics.booking_uid(kept)]["SUMMARY"]) == "Mine (+1)"
    assert str(events[ics.booking_uid(kept)]["STATUS"]) == "TENTATIVE"  # not paid yet
    assert str(events[ics.booking_uid(gone)]["STATUS"]) == "CANCELLED"
    assert int(events[ics.booking_uid(gone)]["SEQUENCE"]) == 1
    # A new link replaces the old one; revoking ends it.
    second = _feed_url(client).rsplit("/", 1)[1].removesuffix(".ics")
    assert anonymous.get(f"/calendar/{token}.ics").status_code == 404
    assert anonymous.get(f"/calendar/{second}.ics").status_code == 200
    client.post("/profile/calendar/revoke", data={"csrf_token": _csrf(client)})
    assert anonymous.get(f"/calendar/{second}.ics").status_code == 404
    assert anonymous.get("/calendar/" + "A" * 43 + ".ics").status_code == 404


def test_a_confirmation_email_attaches_the_booking_as_ics(factory, now, outbox):
    player = factory.user(email="an@example.com")
    booking = book_session(player, factory.club_session(price=0, title="Free run"), 0, "stripe", now)
    notifications.send_due(now)
    (path,) = [p for p in outbox.glob("*.eml") if "booking_confirmed" in p.name]
    message = email.message_from_bytes(path.read_bytes())
    assert message.get_content_type() == "multipart/mixed"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert "text/plain" in parts
    attached = parts["text/calendar"]
    assert attached.get_filename() == f"{booking.code}.ics"
    events = _events(attached.get_payload(decode=True))
    assert set(events) == {ics.booking_uid(booking)}  # the same UID as in the private feed
    assert str(events[ics.booking_uid(booking)]["SUMMARY"]) == "Free run"


def test_the_booking_page_offers_add_to_calendar(client, factory, now):
    player = factory.user()
    booking = book_session(player, factory.club_session(), 0, "stripe", now)
    login(client, player)
    page = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert f"/bookings/{booking.id}/calendar.ics" in page and "calendar.google.com" in page
    response = client.get(f"/bookings/{booking.id}/calendar.ics")
    assert response.status_code == 200 and set(_events(response.data)) == {ics.booking_uid(booking)}
    other = login(client.application.test_client(), factory.user())
    assert other.get(f"/bookings/{booking.id}/calendar.ics").status_code == 404
