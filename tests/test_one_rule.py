"""Every rule once, in Core (issue 17 §2): whichever face asks -- page, API, staff area, job -- the
same Core function decides, and what a page offers is what the service accepts."""

import json
import re
from datetime import timedelta

import pytest

from loafy.booking import bookings, staff
from loafy.models import AuditLog, Booking
from tests.helpers import login, reload


def text(response):
    return response.get_data(as_text=True)


def form_token(client, path):
    match = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get(path)))
    assert match, "no form with a CSRF token on " + path
    return match.group(1)


def cancels():
    return [
        (row.actor_id, row.object_id, json.loads(row.details))
        for row in AuditLog.select().where(AuditLog.action == "booking.cancel").order_by(AuditLog.id)
    ]


# --- 1. a cancel writes its audit row in the service, whoever asks --------------------------------


def test_a_player_cancelling_on_the_page_is_audited(client, factory, now):
    player = factory.user()
    booking = bookings.book_session(player, factory.club_session(), 1, "stripe", now)
    login(client, player)
    path = f"/bookings/{booking.id}"
    response = client.post(f"{path}/cancel", data={"csrf_token": form_token(client, path)})
    assert response.status_code == 302 and reload(booking).status == "cancelled"
    [(actor, object_id, details)] = cancels()
    assert (actor, object_id) == (player.id, str(booking.id))
    assert details["code"] == booking.code and details["refund_due"] is False


@pytest.mark.parametrize("face", ["service", "staff_area", "session_cancel"])
def test_every_way_of_cancelling_writes_one_audit_row_naming_the_actor(face, factory, now):
    admin = factory.user(role="admin")
    club_session = factory.club_session()
    booking = bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now)
    if face == "service":
        bookings.cancel_booking(admin, booking.id, now, reason="asked by phone")
    elif face == "staff_area":
        staff.cancel_booking(admin, booking.id, now, reason="asked by phone")
    else:
        staff.cancel_session(admin, club_session.id, now, reason="asked by phone")
    assert reload(booking).status == "cancelled"
    [(actor, object_id, details)] = cancels()
    assert (actor, object_id, details["reason"]) == (admin.id, str(booking.id), "asked by phone")


def test_a_refused_cancel_writes_no_audit_row(factory, now):
    player = factory.user()
    booking = bookings.book_session(player, factory.club_session(), 0, "stripe", now)
    bookings.cancel_booking(player, booking.id, now)
    with pytest.raises(bookings.BookingNotActive):
        bookings.cancel_booking(player, booking.id, now + timedelta(minutes=1))
    assert len(cancels()) == 1
    assert Booking.get_by_id(booking.id).status == "cancelled"
