"""Session management through the services: create, edit (capacity rule), cancel, delete."""

from datetime import timedelta

import pytest

from loafy.booking.bookings import book_session, cancel_booking, record_payment
from loafy.booking.club_sessions import (
    cancel_session,
    create_session,
    delete_session,
    get_session,
    update_session,
)
from loafy.checks import find_violations
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError
from loafy.models import ClubSession
from tests.helpers import reload


def _data(now, **overrides):
    data = {
        "title": "Pickleball",
        "starts_at": (now + timedelta(days=3)).isoformat() + "+00:00",
        "ends_at": (now + timedelta(days=3, hours=2)).isoformat() + "Z",
        "max_slots": 12,
        "price": 150_000,
    }
    data.update(overrides)
    return data


def test_organizer_creates_a_draft_with_all_slots_available(factory, now):
    organizer = factory.user(role="organizer")
    club_session = create_session(organizer, _data(now), now)
    assert club_session.status == "draft" and club_session.available_slots == 12
    assert club_session.starts_at == now + timedelta(days=3)
    assert club_session.created_by_id == organizer.id


def test_offset_times_are_stored_as_utc(factory, now):
    data = _data(now, starts_at="2026-12-01T18:00:00+07:00", ends_at="2026-12-01T20:00:00+07:00")
    club_session = create_session(factory.user(role="admin"), data, now)
    assert club_session.starts_at.hour == 11


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"title": ""}, "title"),
        ({"max_slots": 0}, "max_slots"),
        ({"max_slots": "many"}, "max_slots"),
        ({"price": -1}, "price"),
        ({"price": 100_000_000}, "price"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "0001-01-01T00:00:00+07:00"}, "starts_at"),  # out of datetime's range in UTC
        ({"ends_at": "9999-12-31T23:00:00-10:00"}, "ends_at"),
        ({"status": "open"}, "status"),
        ({"status": "cancelled"}, "status"),
        ({"allow_pay_at_door": "false"}, "allow_pay_at_door"),
        ({"title": ["a", "b"]}, "title"),
    ],
)
def test_invalid_sessions_are_refused_naming_the_field(factory, now, overrides, field):
    with pytest.raises(ValidationError) as error:
        create_session(factory.user(role="admin"), _data(now, **overrides), now)
    assert error.value.field == field
    assert ClubSession.select().count() == 0


def test_public_booking_opens_by_default_at_the_start_of_the_current_minute(factory, now):
    club_session = create_session(factory.user(role="admin"), _data(now), now + timedelta(seconds=42.5))
    assert reload(club_session).booking_opens_at == now


def test_early_access_must_open_before_public_booking(factory, now):
    data = _data(
        now, early_access_opens_at=(now + timedelta(hours=2)).isoformat(), booking_opens_at=now.isoformat()
    )
    with pytest.raises(ValidationError, match="Early access"):
        create_session(factory.user(role="admin"), data, now)


def test_early_access_needs_a_public_booking_time(factory, now):
    admin = factory.user(role="admin")
    data = _data(now, early_access_opens_at=now.isoformat(), booking_opens_at=None)
    with pytest.raises(ValidationError, match="public booking time") as error:
        create_session(admin, data, now)
    assert error.value.field == "booking_opens_at"
    club_session = create_session(admin, _data(now), now)
    early = {"early_access_opens_at": now.isoformat()}
    update_session(
        admin, club_session.id, {**early, "booking_opens_at": (now + timedelta(hours=1)).isoformat()}, now
    )
    with pytest.raises(ValidationError, match="public booking time"):
        update_session(admin, club_session.id, {"booking_opens_at": None}, now)
    assert reload(club_session).booking_opens_at == now + timedelta(hours=1)


def test_players_cannot_create_sessions(factory, now):
    with pytest.raises(PermissionDenied):
        create_session(factory.user(), _data(now), now)


def test_drafts_are_hidden_from_players(factory):
    draft = factory.club_session(status="draft")
    with pytest.raises(NotFound):
        get_session(draft.id, factory.user())
    assert get_session(draft.id, factory.user(role="organizer")).id == draft.id


def test_capacity_change_moves_available_slots_and_refuses_below_booked(factory, now):
    club_session = factory.club_session(max_slots=10)
    book_session(factory.user(), club_session, 3, "stripe", now)  # 4 held
    admin = factory.user(role="admin")
    assert update_session(admin, club_session, {"max_slots": 15}, now).available_slots == 11
    assert update_session(admin, club_session, {"max_slots": 4}, now).available_slots == 0
    with pytest.raises(Conflict, match="4 spots are already booked") as error:
        update_session(admin, club_session, {"max_slots": 3}, now)
    assert error.value.field == "max_slots"
    assert reload(club_session).max_slots == 4
    assert find_violations() == []


def test_organizers_edit_only_their_own_drafts(factory, now):
    organizer = factory.user(role="organizer")
    own = create_session(organizer, _data(now), now)
    assert update_session(organizer, own, {"status": "published"}, now).status == "published"
    with pytest.raises(PermissionDenied):  # published now: only admins edit it
        update_session(organizer, own, {"title": "x"}, now)
    other = factory.club_session(status="draft")
    with pytest.raises(PermissionDenied):
        update_session(organizer, other, {"title": "x"}, now)


def test_cancel_session_cancels_every_booking_and_marks_paid_ones_for_refund(factory, now):
    club_session = factory.club_session(max_slots=10)
    paid = book_session(factory.user(), club_session, 1, "stripe", now)
    record_payment(paid.id, provider="stripe", provider_id="pi_paid", amount=paid.amount, now=now)
    unpaid = book_session(factory.user(), club_session, 0, "stripe", now)
    with pytest.raises(PermissionDenied):
        cancel_session(factory.user(role="organizer"), club_session, now)
    cancelled = cancel_session(factory.user(role="admin"), club_session, now)
    assert cancelled.status == "cancelled" and cancelled.available_slots == 10
    assert reload(paid).status == "cancelled" and reload(paid).refund_due_at == now
    assert reload(unpaid).status == "cancelled" and reload(unpaid).refund_due_at is None
    assert find_violations() == []
    with pytest.raises(Conflict):
        cancel_session(factory.user(role="admin"), club_session, now)


def test_delete_only_without_bookings(factory, now):
    admin = factory.user(role="admin")
    empty = factory.club_session()
    delete_session(admin, empty)
    assert ClubSession.get_or_none(ClubSession.id == empty.id) is None
    booked = factory.club_session()
    book_session(factory.user(), booked, 0, "stripe", now)
    with pytest.raises(Conflict, match="cancel it instead"):
        delete_session(admin, booked)


def test_a_session_with_active_bookings_cannot_go_back_to_draft(factory, now):
    admin = factory.user(role="admin")
    club_session = factory.club_session()
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    with pytest.raises(Conflict, match="cannot go back to draft") as error:
        update_session(admin, club_session, {"status": "draft", "title": "Renamed"}, now)
    assert (error.value.code, error.value.field) == ("has_bookings", "status")
    assert (reload(club_session).status, reload(club_session).title) == ("published", club_session.title)
    cancel_booking(booking.user, booking.id, now)
    assert update_session(admin, club_session, {"status": "draft"}, now).status == "draft"
