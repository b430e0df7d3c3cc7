"""The attendance policy at its edges: no-shows after the grace period (idempotent), late cancels,
the Nth strike blocks with a message saying until when, forgiving unblocks (audited), the policy
can be turned off, and POST /api/bookings and the page refuse a blocked player clearly."""

import json
from datetime import timedelta

import pytest

from loafy.booking import staff
from loafy.booking.bookings import book_session, cancel_booking
from loafy.calendar import attendance
from loafy.models import AuditLog, Booking, Strike
from loafy.settings import update_settings
from tests.helpers import csrf_token, login, reload


def _played(factory, player, now, starts_ago_hours=5, checked_in=False):
    """A free session that ended (starts_ago_hours - 2) hours ago, with the player's confirmed booking."""
    club_session = factory.club_session(price=0, starts_at=now + timedelta(days=1))
    booking = book_session(player, club_session.id, 0, "stripe", now)
    starts = now - timedelta(hours=starts_ago_hours)
    club_session.starts_at, club_session.ends_at = starts, starts + timedelta(hours=2)
    club_session.save()
    if checked_in:
        Booking.update(checked_in_at=starts).where(Booking.id == booking.id).execute()
    return booking


def test_no_shows_and_attended_after_the_grace_period_idempotently(factory, now):
    player = factory.user()
    came = _played(factory, player, now, checked_in=True)
    missed = _played(factory, player, now)
    too_soon = _played(factory, player, now, starts_ago_hours=3)  # ended 1 hour ago: grace is 2
    assert attendance.mark_attendance(now) == {"attended": 1, "no_show": 1}
    assert attendance.mark_attendance(now) == {"attended": 0, "no_show": 0}
    assert (reload(came).attendance, reload(missed).attendance, reload(too_soon).attendance) == (
        "attended",
        "no_show",
        None,
    )
    assert [(s.booking_id, s.kind) for s in Strike.select()] == [(missed.id, "no_show")]
    assert attendance.mark_attendance(now + timedelta(hours=2))["no_show"] == 1
    assert Strike.select().count() == 2


def test_the_nth_strike_blocks_and_says_until_when(factory, now):
    player = factory.user()
    for _ in range(2):
        _played(factory, player, now)
    attendance.mark_attendance(now)
    assert attendance.blocked_until(player.id, now) is None  # two strikes: not yet
    book_session(player, factory.club_session().id, 0, "stripe", now)
    _played(factory, player, now)
    attendance.mark_attendance(now)
    until = attendance.blocked_until(player.id, now)
    assert until is not None and until - now == timedelta(days=14) - timedelta(hours=3)
    with pytest.raises(attendance.BookingBlocked) as refused:
        book_session(player, factory.club_session().id, 0, "stripe", now)
    assert refused.value.code == "blocked" and refused.value.status == 409
    assert "until" in refused.value.message and "3 missed sessions" in refused.value.message
    assert attendance.blocked_until(player.id, until + timedelta(seconds=1)) is None  # the block ends
    # Staff are never blocked, nor is anyone else.
    book_session(factory.user(), factory.club_session().id, 0, "stripe", now)


def test_forgiving_a_strike_unblocks_and_is_audited(factory, now):
    player, organizer = factory.user(), factory.user(role="organizer")
    for _ in range(3):
        _played(factory, player, now)
    attendance.mark_attendance(now)
    assert attendance.blocked_until(player.id, now) is not None
    strike = Strike.select().first()
    with pytest.raises(attendance.PermissionDenied):
        attendance.forgive_strike(organizer, strike.id, now)  # not the organizer's session
    admin = factory.user(role="admin")
    attendance.forgive_strike(admin, strike.id, now, reason="flat tyre")
    assert attendance.blocked_until(player.id, now) is None
    book_session(player, factory.club_session().id, 0, "stripe", now)
    row = AuditLog.get(AuditLog.action == "strike.forgive")
    assert row.actor_id == admin.id and json.loads(row.details)["reason"] == "flat tyre"
    with pytest.raises(attendance.Conflict):
        attendance.forgive_strike(admin, strike.id, now)


def test_strikes_outside_the_window_do_not_count(factory, now):
    player = factory.user()
    for _ in range(3):
        _played(factory, player, now)
    attendance.mark_attendance(now)
    first = Strike.select().first()
    Strike.update(occurred_at=first.occurred_at - timedelta(days=61)).where(Strike.id == first.id).execute()
    assert attendance.blocked_until(player.id, now) is None


def test_a_cancel_before_the_cutoff_is_no_strike_a_late_one_is(factory, now):
    player, admin = factory.user(), factory.user(role="admin")
    early = book_session(
        player, factory.club_session(price=0, starts_at=now + timedelta(days=3)).id, 0, "stripe", now
    )
    cancel_booking(player, early.id, now)  # 72 hours before; the cutoff is 24
    late = book_session(
        player, factory.club_session(price=0, starts_at=now + timedelta(hours=5)).id, 0, "stripe", now
    )
    staff.cancel_booking(admin, late.id, now, reason="phoned in")  # after the cutoff
    assert [(s.booking_id, s.kind) for s in Strike.select()] == [(late.id, "late_cancel")]
    # A session cancelled by the club gives its players no strike.
    off = factory.club_session(price=0, starts_at=now + timedelta(hours=5))
    book_session(player, off.id, 0, "stripe", now)
    staff.cancel_session(admin, off.id, now)
    assert Strike.select().count() == 1


def test_the_policy_can_be_turned_off(factory, now):
    update_settings({"attendance_policy": False})
    player = factory.user()
    for _ in range(3):
        _played(factory, player, now)
    assert attendance.mark_attendance(now)["no_show"] == 3  # attendance is still recorded
    assert Strike.select().count() == 0
    update_settings({"attendance_policy": True})
    assert attendance.blocked_until(player.id, now) is None


def test_thresholds_are_settings(factory, now):
    update_settings({"strike_limit": 1, "strike_block_days": 2, "no_show_grace_hours": 0})
    player = factory.user()
    _played(factory, player, now, starts_ago_hours=2)  # ended just now: no grace
    attendance.mark_attendance(now)
    assert attendance.blocked_until(player.id, now) == now + timedelta(days=2)


def _block(factory, player, now):
    for _ in range(3):
        _played(factory, player, now)
    attendance.mark_attendance(now)


def test_the_api_and_the_page_refuse_a_blocked_player_clearly(client, factory, now):
    player = factory.user()
    _block(factory, player, now)
    club_session = factory.club_session()
    login(client, player)
    response = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": 0, "payment_method": "stripe"},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "blocked" and "until" in error["message"]
    page = client.post(
        f"/sessions/{club_session.id}/book",
        data={"csrf_token": csrf_token(client), "guest_count": "0", "payment_method": "stripe"},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 409 and "paused" in page.get_data(as_text=True)
    page = client.post(  # the club's language by default: the same facts, in Vietnamese
        f"/sessions/{club_session.id}/book",
        data={"csrf_token": csrf_token(client), "guest_count": "0", "payment_method": "stripe"},
    )
    assert "tạm thời không đặt chỗ trực tuyến được đến" in page.get_data(as_text=True)


def test_staff_see_strikes_per_player_and_forgive_in_the_admin(client, factory, now):
    player, admin = factory.user(name="Lê Thị Cúc"), factory.user(role="admin")
    _block(factory, player, now)
    login(client, admin)
    listing = client.get("/admin/strikes/").get_data(as_text=True)
    assert "Lê Thị Cúc" in listing
    detail = client.get(f"/admin/strikes/player/{player.id}").get_data(as_text=True)
    assert 'id="blocked-until"' in detail and "Bị chặn đặt chỗ trực tuyến đến" in detail
    strike = Strike.select().first()
    response = client.post(
        f"/admin/strikes/{strike.id}/forgive", data={"csrf_token": csrf_token(client), "reason": "ok"}
    )
    assert response.status_code == 302 and reload(strike).forgiven_by_id == admin.id


def test_the_job_and_the_cli(app, factory, now):
    from click.testing import CliRunner

    from jobs import tasks
    from loafy.cli import jobs_mark_attendance

    player = factory.user()
    _played(factory, player, now)
    assert tasks.mark_attendance() == {"attended": 0, "no_show": 1}
    _played(factory, player, now)
    with app.app_context():
        result = CliRunner().invoke(jobs_mark_attendance, ["--now", now.isoformat()])
    assert result.exit_code == 0 and "1 no-show" in result.output


def test_a_blocked_player_cannot_join_a_waitlist_either(factory, now):
    """An offer from the waitlist is a booking: the block applies there too."""
    from loafy.booking import waitlist

    player = factory.user()
    _block(factory, player, now)
    full = factory.club_session(max_slots=1, price=0)
    book_session(factory.user(), full.id, 0, "stripe", now)
    with pytest.raises(attendance.BookingBlocked):
        waitlist.join_waitlist(player, full.id, 1, now)
    waitlist.join_waitlist(factory.user(), full.id, 1, now)  # anyone else may
