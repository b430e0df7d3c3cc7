"""Session templates: rules in the club's zone, generation twice and from two processes at once,
edits with and without bookings, a skipped holiday, the API and the CLI."""

import multiprocessing
from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner

from loafy.booking.bookings import book_session
from loafy.calendar import templates
from loafy.clock import to_local
from loafy.db import db
from loafy.errors import PermissionDenied, ValidationError
from loafy.models import ClubSession, SessionTemplate
from tests.helpers import csrf_token, login

BASE = {
    "title": "Cầu lông tối thứ Ba / Tuesday badminton",
    "location": "Nhà thi đấu Quận 1",
    "rrule": "FREQ=WEEKLY;BYDAY=TU,TH",
    "start_time": "18:30",
    "duration_minutes": 120,
    "max_slots": 12,
    "price": 120_000,
    "weeks_ahead": 4,
    "booking_opens_hours_before": 72,
    "early_access_hours": 96,
}


def _make(factory, now, **changes):
    admin = factory.user(role="admin")
    template, created = templates.create_template(admin, {**BASE, **changes}, now)
    return admin, template, created


def _starts(template_id):
    return [
        to_local(s.starts_at)
        for s in ClubSession.select()
        .where((ClubSession.template_id == template_id) & (ClubSession.status != "cancelled"))
        .order_by(ClubSession.starts_at)
    ]


def test_a_weekly_rule_makes_the_next_weeks_at_club_time(factory, now):
    # now is Tue 24 Nov 2026 10:00 in Hồ Chí Minh City: today's 18:30 is still to come.
    _admin, template, created = _make(factory, now)
    local = _starts(template.id)
    assert len(created) == len(local) == 8  # 4 weeks of Tue and Thu
    assert local[0].date() == date(2026, 11, 24) and local[-1].date() == date(2026, 12, 17)
    assert {(s.hour, s.minute) for s in local} == {(18, 30)}
    assert {s.strftime("%a") for s in local} == {"Tue", "Thu"}
    first = ClubSession.get(ClubSession.id == created[0].id)
    assert first.starts_at == datetime(2026, 11, 24, 11, 30)  # 18:30 +07:00 stored as UTC
    assert first.ends_at - first.starts_at == timedelta(minutes=120)
    assert first.booking_opens_at == first.starts_at - timedelta(hours=72)
    assert first.early_access_opens_at == first.starts_at - timedelta(hours=96)
    assert (first.status, first.max_slots, first.available_slots, first.price) == (
        "published",
        12,
        12,
        120_000,
    )
    assert first.template_id == template.id


@pytest.mark.parametrize(
    ("rule", "weeks", "expected"),
    [
        ("FREQ=DAILY", 1, 7),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=SA", 6, 3),
        ("FREQ=MONTHLY;BYMONTHDAY=1", 8, 2),  # 1 Dec and 1 Jan: across the year's end
        ("FREQ=WEEKLY;BYDAY=MO;COUNT=3", 10, 3),
        ("FREQ=MONTHLY;BYDAY=-1FR", 12, 3),  # the last Friday of Nov, Dec, Jan
    ],
)
def test_several_rules_across_month_and_year_end(factory, now, rule, weeks, expected):
    _admin, template, created = _make(factory, now, rrule=rule, weeks_ahead=weeks, starts_on="2026-11-24")
    assert len(created) == expected
    assert len(set(_starts(template.id))) == expected


def test_the_year_end_is_crossed_in_club_time(factory, now):
    # 23:30 on 31 Dec in the club is 16:30 UTC the same day; 00:15 on 1 Jan is 17:15 UTC on 31 Dec.
    _admin, template, _created = _make(factory, now, rrule="FREQ=DAILY", start_time="00:15", weeks_ahead=6)
    dates = [s.date() for s in _starts(template.id)]
    assert date(2027, 1, 1) in dates and date(2026, 12, 31) in dates
    assert len(dates) == len(set(dates)) == 42
    new_year = ClubSession.get(
        (ClubSession.template_id == template.id) & (ClubSession.starts_at == datetime(2026, 12, 31, 17, 15))
    )
    assert to_local(new_year.starts_at).date() == date(2027, 1, 1)


def test_generating_twice_makes_nothing_new(factory, now):
    _admin, template, created = _make(factory, now)
    assert templates.generate_sessions(now) == []
    assert templates.generate_sessions(now + timedelta(hours=1)) == []
    assert ClubSession.select().where(ClubSession.template_id == template.id).count() == len(created)
    # A week later the window has moved on: exactly the next week's two sessions.
    later = templates.generate_sessions(now + timedelta(days=7))
    assert len(later) == 2


def test_the_database_refuses_a_second_session_for_the_same_start(factory, now):
    from peewee import IntegrityError

    _admin, template, created = _make(factory, now)
    first = created[0]
    with pytest.raises(IntegrityError), db.atomic():
        ClubSession.create(
            title="dup",
            starts_at=first.starts_at,
            ends_at=first.ends_at,
            max_slots=1,
            available_slots=1,
            template_id=template.id,
        )


def _generate_in_process(config, now, start, out):
    from loafy.app import create_app

    app = create_app(config)
    with app.app_context(), db.connection_context():
        start.wait(timeout=60)
        try:
            out.put(("ok", len(templates.generate_sessions(now))))
        except Exception as exc:  # reported to the test
            out.put(("error", repr(exc)))


@pytest.mark.slow
def test_two_processes_generating_at_once_make_each_session_once(app, app_config, factory, now):
    admin = factory.user(role="admin")
    with db.atomic():  # a template whose sessions are not made yet (create_template would make them)
        template = SessionTemplate.create(
            **{**BASE, "weeks_ahead": 8}, starts_on=date(2026, 11, 24), created_by=admin.id
        )
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    config = dict(app_config, JOBS_INLINE="1", DB_POOL_SIZE="4")
    processes = [ctx.Process(target=_generate_in_process, args=(config, now, start, out)) for _ in range(3)]
    for process in processes:
        process.start()
    start.set()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert all(kind == "ok" for kind, _ in results), results
    assert sum(n for _, n in results) == 16  # made once in all, by whichever got there first
    assert ClubSession.select().where(ClubSession.template_id == template.id).count() == 16


def test_editing_a_template_changes_unbooked_sessions_and_names_the_others(factory, now):
    admin, template, created = _make(factory, now)
    booked = created[1]
    book_session(factory.user(), booked.id, 0, "stripe", now)
    _template, result = templates.update_template(
        admin, template.id, {"price": 150_000, "max_slots": 16, "location": "Sân mới"}, now
    )
    assert [item["id"] for item in result["left_alone"]] == [booked.id]
    assert result["left_alone"][0]["reason"] == "has bookings"
    assert set(result["updated"]) == {s.id for s in created} - {booked.id}
    untouched = ClubSession.get_by_id(booked.id)
    assert (untouched.price, untouched.max_slots, untouched.location) == (120_000, 12, BASE["location"])
    changed = ClubSession.get_by_id(created[2].id)
    assert (changed.price, changed.max_slots, changed.available_slots, changed.location) == (
        150_000,
        16,
        16,
        "Sân mới",
    )
    assert changed.revision == 1  # calendars see a new SEQUENCE for the new place


def test_moving_the_schedule_replaces_unbooked_sessions(factory, now):
    admin, template, created = _make(factory, now)
    booked = created[0]
    book_session(factory.user(), booked.id, 0, "stripe", now)
    _template, result = templates.update_template(admin, template.id, {"rrule": "FREQ=WEEKLY;BYDAY=WE"}, now)
    assert [item["id"] for item in result["left_alone"]] == [booked.id]
    assert "no longer on the schedule" in result["left_alone"][0]["reason"]
    assert len(result["created"]) == 4 and len(result["removed"]) == 7
    days = {s.strftime("%a") for s in _starts(template.id)}
    assert days == {"Wed", "Tue"}  # the booked Tuesday stays until staff cancel it


def test_skipping_a_holiday(factory, now):
    admin, template, created = _make(factory, now)
    holiday = to_local(created[2].starts_at).date()
    result = templates.skip_date(admin, template.id, holiday.isoformat(), now)
    assert result["removed"] == [created[2].id]
    assert holiday not in {s.date() for s in _starts(template.id)}
    assert templates.generate_sessions(now) == []  # not made again
    assert holiday.isoformat() in templates.skipped(SessionTemplate.get_by_id(template.id))
    templates.unskip_date(admin, template.id, holiday.isoformat(), now)
    assert holiday in {s.date() for s in _starts(template.id)}


def test_deleting_a_template_keeps_only_booked_sessions(factory, now):
    admin, template, created = _make(factory, now)
    book_session(factory.user(), created[0].id, 0, "stripe", now)
    result = templates.delete_template(admin, template.id, now)
    assert [item["id"] for item in result["left_alone"]] == [created[0].id]
    assert ClubSession.select().where(ClubSession.template_id == template.id).count() == 1
    assert templates.generate_sessions(now) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"rrule": "FREQ=HOURLY"}, "rrule"),
        ({"start_time": "25:00"}, "start_time"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"weeks_ahead": 27}, "weeks_ahead"),
        ({"early_access_hours": 10, "booking_opens_hours_before": 24}, "early_access_hours"),
        ({"title": ""}, "title"),
        ({"max_slots": "many"}, "max_slots"),
    ],
)
def test_bad_templates_are_named(factory, now, changes, field):
    admin = factory.user(role="admin")
    with pytest.raises(ValidationError) as caught:
        templates.create_template(admin, {**BASE, **changes}, now)
    assert caught.value.field == field


def test_only_admins_manage_templates(factory, now):
    with pytest.raises(PermissionDenied):
        templates.create_template(factory.user(role="organizer"), BASE, now)


def test_the_api(app, client, factory, now):
    admin = factory.user(role="admin")
    login(client, admin)
    headers = {"X-CSRFToken": csrf_token(client)}
    response = client.post("/api/session-templates", json=BASE, headers=headers)
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert body["rrule"] == BASE["rrule"] and len(body["sessions_created"]) == 8
    template_id = body["id"]
    assert client.get("/api/session-templates").get_json()["total"] == 1
    assert client.get(f"/api/session-templates/{template_id}").get_json()["start_time"] == "18:30"
    response = client.put(f"/api/session-templates/{template_id}", json={"price": 90_000}, headers=headers)
    assert response.status_code == 200 and len(response.get_json()["sessions"]["updated"]) == 8
    response = client.put(f"/api/session-templates/{template_id}", json={"rrule": "nope"}, headers=headers)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "rrule"
    response = client.post(
        f"/api/session-templates/{template_id}/skip", json={"date": "2026-11-26"}, headers=headers
    )
    assert response.status_code == 200 and response.get_json()["skipped_dates"] == ["2026-11-26"]
    api_session = client.get(f"/api/sessions/{body['sessions_created'][0]}").get_json()
    assert api_session["template_id"] == template_id
    response = client.delete(f"/api/session-templates/{template_id}", headers=headers)
    assert response.status_code == 200 and len(response.get_json()["sessions"]["removed"]) == 7
    assert client.get(f"/api/session-templates/{template_id}").status_code == 404
    assert client.get(f"/api/sessions/{body['sessions_created'][0]}").status_code == 404


def test_the_cli_generates_idempotently(app, factory, now):
    from loafy.cli import sessions_generate

    admin = factory.user(role="admin")
    with db.atomic():
        SessionTemplate.create(**BASE, starts_on=date(2026, 11, 24), created_by=admin.id)
    runner = CliRunner()
    with app.app_context():
        first = runner.invoke(sessions_generate, ["--now", now.isoformat()])
        second = runner.invoke(sessions_generate, ["--now", now.isoformat()])
    assert first.exit_code == 0, first.output
    assert first.output.strip().endswith("8 session(s) created")
    assert second.output.strip() == "0 session(s) created"


def test_the_staff_area_creates_edits_and_skips(client, factory, now):
    from tests.helpers import english

    admin = factory.user(role="admin")
    english(login(client, admin))
    form = {k: str(v) for k, v in BASE.items()} | {"csrf_token": csrf_token(client), "active": "y"}
    response = client.post("/admin/templates/", data=form)
    assert response.status_code == 302
    template = SessionTemplate.get()
    assert ClubSession.select().where(ClubSession.template_id == template.id).count() == 8
    listing = client.get("/admin/templates/").get_data(as_text=True)
    assert BASE["rrule"] in listing
    booked = (
        ClubSession.select()
        .where(ClubSession.template_id == template.id)
        .order_by(ClubSession.starts_at)
        .get()
    )
    book_session(factory.user(), booked.id, 0, "stripe", now)
    form["price"] = "90000"
    response = client.post(f"/admin/templates/{template.id}", data=form, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "7 updated" in page and f"#{booked.id}" in page and "Left alone" in page
    response = client.post(
        f"/admin/templates/{template.id}/skip",
        data={"csrf_token": form["csrf_token"], "date": "2026-11-26"},
        follow_redirects=True,
    )
    assert "1 removed" in response.get_data(as_text=True)
    bad = dict(form, rrule="FREQ=NEVER")
    page = client.post(f"/admin/templates/{template.id}", data=bad).get_data(as_text=True)
    assert "not a valid RFC 5545" in page


def test_a_zone_with_daylight_saving_keeps_the_local_time(factory, now, monkeypatch):
    """Vietnam has no daylight saving; the rule is computed in the zone anyway, so a club in Berlin
    plays at 10:00 on both sides of the change (28 March 2027: 09:00 UTC before, 08:00 after)."""
    from zoneinfo import ZoneInfo

    from loafy import clock

    monkeypatch.setitem(clock._state, "tz", ZoneInfo("Europe/Berlin"))
    _admin, template, _created = _make(
        factory, now, rrule="FREQ=WEEKLY;BYDAY=SU", start_time="10:00", weeks_ahead=26
    )
    starts = [
        s.starts_at
        for s in ClubSession.select()
        .where(ClubSession.template_id == template.id)
        .order_by(ClubSession.starts_at)
    ]
    assert {(to_local(s).hour, to_local(s).minute) for s in starts} == {(10, 0)}
    assert datetime(2027, 3, 21, 9, 0) in starts and datetime(2027, 3, 28, 8, 0) in starts
