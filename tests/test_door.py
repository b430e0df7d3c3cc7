"""The door: ticket secrets and URLs, every check-in answer through the API, nonces, cash at the
door, parties arriving apart, undo, access, the ticket page, the scanner page and the e-mail's QR.
Runs on SQLite and PostgreSQL like the rest."""

import email
import json
import re
import threading
from datetime import timedelta

import pytest

from loafy.booking import staff
from loafy.booking.bookings import book_session, cancel_booking
from loafy.db import db, is_postgres
from loafy.door import checkin, tickets
from loafy.door.roster import door_sessions as roster_sessions
from loafy.errors import LoafyError
from loafy.migrations import SchemaVersion, upgrade
from loafy.models import AuditLog, Booking, Checkin, LedgerEntry, Notification
from loafy.notifications import send_due
from tests.helpers import csrf_token, english, login, reload

SECRET = re.compile(r"^[a-z2-7]{32}$")


@pytest.fixture
def organizer(factory):
    return factory.user(role="organizer", name="Nguyễn Văn Bình")


@pytest.fixture
def tonight(factory, organizer, now):
    """A session starting within the check-in window (it opens 2 hours before the start)."""
    return factory.club_session(
        title="Tonight",
        created_by=organizer,
        starts_at=now + timedelta(hours=1),
        price=100_000,
        max_slots=20,
        allow_pay_at_door=True,
    )


def confirmed(factory, club_session, now, guests=0, name=None, method="cash"):
    """A booking that is confirmed; cash at the door stays unpaid, the others are paid."""
    player = factory.user(name=name)
    booking = book_session(player, club_session, guests, method, now)
    if method != "cash":
        Booking.update(
            status="confirmed", payment_status="paid", confirmed_at=now, payment_deadline=None
        ).where(Booking.id == booking.id).execute()
    return reload(booking)


def paid(factory, club_session, now, guests=0, name=None):
    return confirmed(factory, club_session, now, guests=guests, name=name, method="bank_transfer")


def scan(client, code, **fields):
    body = {"code": code, **fields}
    return client.post("/api/checkin", json=body, headers={"X-CSRFToken": csrf_token(client)})


def door_client(app, user):
    return english(login(app.test_client(), user))


# --- tickets -----------------------------------------------------------------------------------


def test_every_booking_is_born_with_an_opaque_unique_secret(factory, tonight, now):
    bookings = [book_session(factory.user(), tonight, 0, method, now) for method in ("cash", "bank_transfer")]
    bookings.append(paid(factory, tonight, now))
    secrets_ = [reload(b).ticket_secret for b in bookings]
    assert all(SECRET.match(s) for s in secrets_)  # 160 random bits, never the booking code
    assert len(set(secrets_)) == len(secrets_)
    assert all(b.code.lower() not in s for b, s in zip(bookings, secrets_, strict=True))


def test_ticket_url_is_in_the_booking_json_for_the_owner_and_staff_only(
    app, factory, tonight, organizer, now
):
    booking = paid(factory, tonight, now)
    owner = door_client(app, booking.user)
    body = owner.get(f"/api/bookings/{booking.id}").get_json()
    assert body["ticket_url"] == f"http://localhost/t/{booking.ticket_secret}"
    assert owner.get("/api/bookings").get_json()["items"][0]["ticket_url"] == body["ticket_url"]
    assert door_client(app, organizer).get(f"/api/bookings/{booking.id}").get_json()["ticket_url"]
    stranger = door_client(app, factory.user())
    assert stranger.get(f"/api/bookings/{booking.id}").status_code == 404


def test_the_migration_gives_existing_bookings_a_secret_and_keeps_check_ins(app, factory, tonight, now):
    old = paid(factory, tonight, now)
    arrived = paid(factory, tonight, now, guests=2)
    with db.atomic():
        # The schema before migration 70: no secret column, no people count, no scan log.
        db.execute_sql("DROP INDEX IF EXISTS bookings_ticket_secret")
        if is_postgres():
            db.execute_sql("ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_checked_in_people_range")
        db.execute_sql("ALTER TABLE bookings DROP COLUMN ticket_secret")
        db.execute_sql("ALTER TABLE bookings DROP COLUMN checked_in_people")
        db.execute_sql('DROP TABLE "checkins"')
        db.execute_sql(
            "UPDATE bookings SET checked_in_at = ? WHERE id = ?".replace("?", db.param), (now, arrived.id)
        )
        SchemaVersion.delete().where(SchemaVersion.version == 70).execute()
    db.close()  # no prepared statement from the old schema survives
    db.connect()
    assert any("70 door tickets" in name for name in upgrade())
    assert upgrade() == []  # idempotent
    old, arrived = reload(old), reload(arrived)
    assert SECRET.match(old.ticket_secret) and SECRET.match(arrived.ticket_secret)
    assert old.ticket_secret != arrived.ticket_secret
    assert (old.checked_in_people, arrived.checked_in_people) == (0, 3)
    with pytest.raises(Exception), db.atomic():  # the database still refuses more people than slots
        Booking.update(checked_in_people=4).where(Booking.id == arrived.id).execute()
    assert Checkin.select().count() == 0


def test_regenerating_a_ticket_retires_the_old_one(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now)
    old = booking.ticket_secret
    client = door_client(app, organizer)
    response = client.post(f"/api/bookings/{booking.id}/ticket", headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 200
    new = reload(booking).ticket_secret
    assert new != old and response.get_json()["ticket_url"].endswith(new)
    assert client.get(f"/t/{old}").status_code == 404
    assert scan(client, f"http://localhost/t/{old}").status_code == 404
    assert scan(client, f"http://localhost/t/{new}").get_json()["status"] == "ok"
    row = AuditLog.get(AuditLog.action == "booking.ticket_regenerate")
    assert row.actor_id == organizer.id and old not in row.details and new not in row.details
    other = factory.user(role="organizer")
    with pytest.raises(LoafyError):
        tickets.regenerate_ticket(other, booking.id, now)


# --- every answer -------------------------------------------------------------------------------


def test_ok_then_already_says_when_and_by_whom(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, name="Lan")
    client = door_client(app, organizer)
    first = scan(client, tickets.ticket_url(booking), session_id=tonight.id, nonce="n-1")
    assert first.status_code == 200
    body = first.get_json()
    assert body["status"] == "ok" and body["booking"]["id"] == booking.id
    assert body["checked_in_by"] == {"id": organizer.id, "name": organizer.name}
    assert body["checked_in_at"] == "2026-11-24T03:00:00+00:00"
    assert (body["people_in"], body["people_total"]) == (1, 1)
    assert body["session_people"] == {"people_in": 1, "people_total": 1}
    assert reload(booking).checked_in_at == now

    later = now + timedelta(minutes=5)
    again = checkin.check_in(organizer, booking.ticket_secret, later, nonce="n-2")
    assert again["status"] == "already"
    assert again["checked_in_at"] == "2026-11-24T03:00:00+00:00"
    assert again["checked_in_by"]["name"] == organizer.name
    assert reload(booking).checked_in_people == 1
    assert AuditLog.select().where(AuditLog.action == "booking.check_in").count() == 1


def test_unpaid_says_the_amount_due_and_collect_cash_pays_and_checks_in(
    app, factory, tonight, organizer, now
):
    booking = confirmed(factory, tonight, now, guests=1)  # cash at the door: confirmed, unpaid
    client = door_client(app, organizer)
    body = scan(client, booking.code, nonce="u-1").get_json()
    assert (body["status"], body["amount_due"]) == ("unpaid", 200_000)
    assert reload(booking).checked_in_people == 0 and LedgerEntry.select().count() == 0

    body = scan(client, booking.code, nonce="u-2", collect="cash").get_json()
    assert body["status"] == "ok" and body["collected"] == 200_000 and body["people_in"] == 2
    after = reload(booking)
    assert (after.payment_status, after.checked_in_people) == ("paid", 2)
    entry = LedgerEntry.get(LedgerEntry.booking == booking.id)
    assert (entry.kind, entry.provider, entry.amount, entry.recorded_by_id) == (
        "payment",
        "cash",
        200_000,
        organizer.id,
    )
    actions = [r.action for r in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["booking.mark_paid", "booking.check_in"]


def test_a_pending_online_booking_can_pay_cash_at_the_door(app, factory, tonight, organizer, now):
    booking = book_session(factory.user(), tonight, 0, "bank_transfer", now)
    answer = checkin.check_in(organizer, booking.code, now, nonce="p-1")
    assert answer["status"] == "unpaid"
    answer = checkin.check_in(organizer, booking.code, now, nonce="p-2", collect="cash")
    assert answer["status"] == "ok"
    assert (reload(booking).status, reload(booking).payment_status) == ("confirmed", "paid")


def test_wrong_session_names_the_right_one(app, factory, tonight, organizer, now):
    other = factory.club_session(title="Tomorrow", created_by=organizer, starts_at=now + timedelta(days=1))
    booking = paid(factory, other, now)
    body = scan(door_client(app, organizer), booking.code, session_id=tonight.id).get_json()
    assert body["status"] == "wrong_session"
    assert body["session"]["id"] == other.id and body["session"]["title"] == "Tomorrow"
    assert reload(booking).checked_in_people == 0


def test_cancelled_and_expired_bookings_are_refused(app, factory, tonight, organizer, now):
    gone = paid(factory, tonight, now)
    cancel_booking(gone.user, gone.id, now - timedelta(days=3))  # before the cutoff
    lapsed = book_session(factory.user(), tonight, 0, "bank_transfer", now - timedelta(hours=1))
    client = door_client(app, organizer)
    for booking in (gone, lapsed):
        body = scan(client, booking.code).get_json()
        assert body["status"] == "cancelled", body
        assert reload(booking).checked_in_people == 0


def test_an_unknown_code_is_404_invalid(app, organizer, tonight):
    client = door_client(app, organizer)
    for code in ("LB-ZZZZZ", "a" * 32, "http://localhost/t/nothing", "hello"):
        response = scan(client, code, session_id=tonight.id)
        assert response.status_code == 404
        body = response.get_json()
        assert body["status"] == "invalid" and body["error"]["code"] == "invalid"
    assert Checkin.select().where(Checkin.status == "invalid").count() == 4


def test_check_in_opens_hours_before_and_closes_at_the_end(app, factory, organizer, now):
    later = factory.club_session(created_by=organizer, starts_at=now + timedelta(hours=5), price=0)
    booking = book_session(factory.user(), later, 0, "cash", now)
    early = checkin.check_in(organizer, booking.code, now)
    assert early["status"] == "wrong_time" and early["reason"] == "not_open_yet"
    assert "opens at" in early["message"]
    assert checkin.check_in(organizer, booking.code, now + timedelta(hours=3, minutes=1))["status"] == "ok"
    ended = factory.club_session(created_by=organizer, starts_at=now - timedelta(hours=3), price=0)
    past = Booking.create(
        code="LB-PAST2",
        user=factory.user(),
        club_session=ended,
        slots=1,
        unit_price=0,
        amount=0,
        payment_method="cash",
        status="confirmed",
        payment_status="paid",
    )
    answer = checkin.check_in(organizer, past.code, now)
    assert (answer["status"], answer["reason"]) == ("wrong_time", "ended")


def test_codes_are_accepted_as_url_secret_or_booking_code_in_any_case(app, factory, tonight, organizer, now):
    bookings = [paid(factory, tonight, now) for _ in range(4)]
    codes = [
        f"https://club.example/t/{bookings[0].ticket_secret}?utm=x",
        bookings[1].ticket_secret.upper(),
        bookings[2].code.lower().replace("-", ""),
        f"  {bookings[3].code}\n",
    ]
    for booking, code in zip(bookings, codes, strict=True):
        answer = checkin.check_in(organizer, code, now)
        assert (answer["status"], answer["booking_id"]) == ("ok", booking.id), code


# --- parties, nonces, undo -----------------------------------------------------------------------


def test_a_party_may_arrive_apart(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=2)
    first = checkin.check_in(organizer, booking.code, now, people=1)
    assert (first["status"], first["people"], first["people_in"], first["people_total"]) == ("ok", 1, 1, 3)
    with pytest.raises(LoafyError) as refused:
        checkin.check_in(organizer, booking.code, now, people=3)
    assert refused.value.code == "invalid" and refused.value.field == "people"
    rest = checkin.check_in(organizer, booking.code, now + timedelta(minutes=20))
    assert (rest["status"], rest["people"], rest["people_in"]) == ("ok", 2, 3)
    assert reload(booking).checked_in_at == now  # the first arrival
    assert checkin.check_in(organizer, booking.code, now)["status"] == "already"
    assert checkin.session_people(tonight.id, now) == (3, 3)


def test_the_same_nonce_gets_the_same_answer_and_checks_in_once(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=1)
    client = door_client(app, organizer)
    answers = [scan(client, booking.code, nonce="retry-me").get_json() for _ in range(3)]
    assert [a["status"] for a in answers] == ["ok", "ok", "ok"]
    assert {a["checked_in_at"] for a in answers} == {answers[0]["checked_in_at"]}
    assert reload(booking).checked_in_people == 2
    assert Checkin.select().count() == 1
    # A nonce belongs to one scan: another code under it is refused, not answered.
    other = paid(factory, tonight, now)
    response = scan(client, other.code, nonce="retry-me")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "nonce_reused"
    assert reload(other).checked_in_people == 0


def _race(app, jobs):
    barrier = threading.Barrier(len(jobs), timeout=60)
    results = [None] * len(jobs)

    def run(index, job):
        barrier.wait()
        try:
            with app.app_context(), db.connection_context():
                results[index] = job()
        except Exception as exc:  # reported by the test
            results[index] = repr(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_five_parallel_sends_of_one_nonce_check_in_once(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=2)
    results = _race(
        app, [lambda: checkin.check_in(organizer, booking.code, now, nonce="same") for _ in range(5)]
    )
    assert [r["status"] for r in results] == ["ok"] * 5, results
    assert len({r["checked_in_at"] for r in results}) == 1
    assert reload(booking).checked_in_people == 3
    assert Checkin.select().count() == 1
    assert AuditLog.select().where(AuditLog.action == "booking.check_in").count() == 1


def test_parallel_scans_of_one_ticket_check_in_once(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=1)
    results = _race(
        app,
        [
            lambda i=i: checkin.check_in(organizer, booking.ticket_secret, now, nonce=f"s{i}")
            for i in range(8)
        ],
    )
    statuses = sorted(r["status"] if isinstance(r, dict) else r for r in results)
    assert statuses == ["already"] * 7 + ["ok"], statuses
    assert reload(booking).checked_in_people == 2
    assert Checkin.select().where(Checkin.status == "ok").count() == 1


def test_undo_within_two_minutes(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=1)
    client = door_client(app, organizer)
    scan(client, booking.code)
    response = client.delete(f"/api/checkin/{booking.id}", headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 200 and response.get_json()["status"] == "undone"
    after = reload(booking)
    assert (after.checked_in_people, after.checked_in_at) == (0, None)
    assert AuditLog.select().where(AuditLog.action == "booking.check_in_undo").count() == 1
    assert checkin.check_in(organizer, booking.code, now)["status"] == "ok"  # in again
    with pytest.raises(LoafyError) as late:
        checkin.undo_check_in(organizer, booking.id, now + timedelta(minutes=2, seconds=1))
    assert late.value.code == "too_late"
    assert reload(booking).checked_in_people == 2
    checkin.undo_check_in(organizer, booking.id, now + timedelta(minutes=1))
    with pytest.raises(LoafyError) as nothing:
        checkin.undo_check_in(organizer, booking.id, now + timedelta(minutes=1))
    assert nothing.value.code == "not_checked_in"


def test_undo_of_a_partial_arrival_keeps_the_first(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=2)
    checkin.check_in(organizer, booking.code, now, people=1)
    checkin.check_in(organizer, booking.code, now + timedelta(minutes=10), people=1)
    checkin.undo_check_in(organizer, booking.id, now + timedelta(minutes=11))
    after = reload(booking)
    assert (after.checked_in_people, after.checked_in_at) == (1, now)


# --- access ------------------------------------------------------------------------------------


def test_only_the_sessions_staff_check_in(app, factory, tonight, now):
    booking = paid(factory, tonight, now)
    anonymous = app.test_client()
    assert anonymous.post("/api/checkin", json={"code": booking.code}).status_code == 401
    player = door_client(app, booking.user)
    assert scan(player, booking.code).status_code == 403
    rival = door_client(app, factory.user(role="organizer"))
    body = scan(rival, booking.code).get_json()
    assert body["status"] == "wrong_session" and body["booking"] is None and body.get("player") is None
    assert booking.user.name not in json.dumps(body) and booking.code not in json.dumps(body)
    assert (
        rival.delete(f"/api/checkin/{booking.id}", headers={"X-CSRFToken": csrf_token(rival)}).status_code
        == 404
    )
    assert rival.get(f"/api/door/sessions/{tonight.id}").status_code == 404
    assert reload(booking).checked_in_people == 0
    admin = door_client(app, factory.user(role="admin"))
    assert scan(admin, booking.code).get_json()["status"] == "ok"


def test_the_ticket_page_shows_the_ticket_and_nothing_more(app, factory, tonight, now):
    booking = paid(factory, tonight, now, guests=2, name="Trần Thị Hoa")
    paid(factory, tonight, now, name="Someone Else")
    url = f"/t/{booking.ticket_secret}"
    for viewer in (None, factory.user(), factory.user(role="organizer")):
        client = english(app.test_client()) if viewer is None else door_client(app, viewer)
        response = client.get(url)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert "Trần Thị Hoa" in page and "Tonight" in page and "2 guests" in page and "Confirmed" in page
        assert "Someone Else" not in page and booking.user.email not in page
        assert "Door check-in" not in page and 'name="nonce"' not in page
        assert "qr-code" in page
    assert english(app.test_client()).get("/t/" + "b" * 32).status_code == 404
    assert app.test_client().post(url, data={}).status_code in (302, 400, 401)
    assert reload(booking).checked_in_people == 0


def test_staff_opening_the_ticket_check_in_from_it(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now)
    client = door_client(app, organizer)
    page = client.get(f"/t/{booking.ticket_secret}").get_data(as_text=True)
    assert "Door check-in" in page and "data-autosend" in page
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/t/{booking.ticket_secret}", data={"nonce": nonce, "csrf_token": token})
    assert response.status_code == 302 and f"nonce={nonce}" in response.headers["Location"]
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-status="ok"' in shown and "Checked in" in shown
    client.post(f"/t/{booking.ticket_secret}", data={"nonce": nonce, "csrf_token": token})  # a reload
    assert reload(booking).checked_in_people == 1 and Checkin.select().count() == 1


def test_the_ticket_page_asks_before_taking_cash(app, factory, tonight, organizer, now):
    booking = confirmed(factory, tonight, now)
    page = door_client(app, organizer).get(f"/t/{booking.ticket_secret}").get_data(as_text=True)
    assert "data-autosend" not in page and "Collect 100.000 ₫ in cash and check in" in page


# --- the door page and its data ------------------------------------------------------------------


def test_the_door_page_opens_on_the_next_session_of_today(app, factory, tonight, organizer, now):
    factory.club_session(title="Morning", created_by=organizer, starts_at=now - timedelta(hours=4))
    factory.club_session(title="Not mine", starts_at=now + timedelta(hours=2))
    paid(factory, tonight, now, guests=1)
    response = door_client(app, organizer).get("/door")
    assert response.status_code == 200
    assert "camera=(self)" in response.headers["Permissions-Policy"]
    page = response.get_data(as_text=True)
    assert re.search(rf'<option value="{tonight.id}" selected>', page)
    assert "Morning" in page and "Not mine" not in page
    assert "Checked in 0 of 2 people" in page
    assert "playsinline muted" in page and "vendor/jsqr/jsQR.js" in page
    vi = (
        login(app.test_client(), organizer)
        .get("/door", headers={"Accept-Language": "vi"})
        .get_data(as_text=True)
    )
    assert 'lang="vi"' in vi and "Đã vào 0 / 2 người" in vi
    assert door_client(app, factory.user()).get("/door").status_code == 403


def test_the_door_lists_who_is_expected_and_finds_names_without_accents(
    app, factory, tonight, organizer, now
):
    hoa = paid(factory, tonight, now, guests=1, name="Trần Thị Hoa")
    minh = paid(factory, tonight, now, name="Đặng Minh")
    checkin.check_in(organizer, minh.code, now)
    client = door_client(app, organizer)
    body = client.get(f"/api/door/sessions/{tonight.id}").get_json()
    assert (body["people_in"], body["people_total"]) == (1, 3)
    assert [e["name"] for e in body["expected"]] == ["Trần Thị Hoa"]
    found = client.get(f"/api/door/sessions/{tonight.id}", query_string={"q": "tran thi"}).get_json()
    assert [i["booking_id"] for i in found["items"]] == [hoa.id]
    found = client.get(f"/api/door/sessions/{tonight.id}", query_string={"q": "dang"}).get_json()
    assert [(i["booking_id"], i["people_in"]) for i in found["items"]] == [(minh.id, 1)]
    short = client.get(f"/api/door/sessions/{tonight.id}", query_string={"q": "tr"})
    assert short.status_code == 422


def test_the_staff_areas_check_in_button_follows_the_door_rules(app, factory, organizer, tonight, now):
    booking = paid(factory, tonight, now, guests=1)
    staff.check_in(organizer, booking.id, now)
    assert reload(booking).checked_in_people == 2
    later = factory.club_session(created_by=organizer, starts_at=now + timedelta(days=1))
    early = paid(factory, later, now)
    with pytest.raises(LoafyError) as refused:
        staff.check_in(organizer, early.id, now)
    assert refused.value.code == "wrong_time"


# --- the player's side ---------------------------------------------------------------------------


def test_the_booking_page_qr_holds_the_ticket_url_and_says_when_checked_in(
    app, factory, tonight, organizer, now
):
    booking = paid(factory, tonight, now)
    client = door_client(app, booking.user)
    page = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "qr-code" in page and f"/t/{booking.ticket_secret}" in page
    checkin.check_in(organizer, booking.code, now)
    page = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert "Checked in at 10:00" in page  # club time
    assert "Cancel booking" not in page


def test_the_confirmation_email_carries_the_ticket_qr_as_an_inline_png(app, factory, tonight, outbox, now):
    player = factory.user(email="lan@example.com")
    booking = book_session(player, tonight, 0, "bank_transfer", now)
    staff.mark_paid(factory.user(role="admin"), booking.id, "bank_transfer", now)
    send_due(now)
    assert Notification.get(Notification.kind == "booking_confirmed").sent_at is not None
    messages = [email.message_from_bytes(p.read_bytes()) for p in outbox.glob("*.eml")]
    message = next(m for m in messages if "booking_confirmed" in m["Message-ID"])
    parts = {part.get_content_type(): part for part in message.walk()}
    assert "image/png" in parts and "text/html" in parts and "text/plain" in parts
    png = parts["image/png"]
    assert png.get_payload(decode=True).startswith(b"\x89PNG")
    cid = png["Content-ID"].strip("<>")
    html = parts["text/html"].get_payload(decode=True).decode()
    assert f'src="cid:{cid}"' in html
    plain = parts["text/plain"].get_payload(decode=True).decode()
    assert f"http://localhost/t/{reload(booking).ticket_secret}" in plain


def test_a_checked_in_player_cannot_cancel(app, factory, organizer, now):
    settings_free = factory.club_session(created_by=organizer, starts_at=now + timedelta(hours=1), price=0)
    from loafy.settings import update_settings

    update_settings({"cancellation_cutoff_hours": 0}, now)
    booking = book_session(factory.user(), settings_free, 0, "cash", now)
    checkin.check_in(organizer, booking.code, now)
    with pytest.raises(LoafyError) as refused:
        cancel_booking(booking.user, booking.id, now)
    assert refused.value.code == "cancellation_closed"


# --- the staff area and the demo -----------------------------------------------------------------


def test_the_staff_area_shows_people_in_and_regenerates_tickets(app, factory, tonight, organizer, now):
    booking = paid(factory, tonight, now, guests=2)
    checkin.check_in(organizer, booking.code, now, people=2)
    client = door_client(app, organizer)
    listing = client.get("/admin/bookings/").get_data(as_text=True)
    assert "People in" in listing and "2/3" in listing
    details = client.get(f"/admin/bookings/details/?id={booking.id}").get_data(as_text=True)
    assert "New ticket" in details
    session_page = client.get(f"/admin/sessions/details/?id={tonight.id}").get_data(as_text=True)
    assert "At the door: 2 of 3 people checked in." in session_page
    old = booking.ticket_secret
    token = re.search(r'name="csrf_token" value="([^"]+)"', details).group(1)
    response = client.post("/admin/bookings/regenerate-ticket/", data={"id": booking.id, "csrf_token": token})
    assert response.status_code == 302
    assert reload(booking).ticket_secret != old
    roster = client.get(f"/admin/sessions/{tonight.id}/roster.csv").get_data(as_text=True)
    assert roster.splitlines()[0].endswith("checked_in_people") and roster.splitlines()[1].endswith(",2")


def test_the_demo_has_a_session_tonight_with_tickets_to_scan(app, now):
    from loafy.demo import seed_demo
    from loafy.people.accounts import find_user_by_email

    result = seed_demo(now)
    organizer = find_user_by_email("organizer@loafy.local")
    _sessions, chosen = roster_sessions(organizer, now)
    assert chosen.id == result["door"]
    bookings = list(Booking.select().where(Booking.club_session == chosen.id))
    assert len(bookings) == 6 and all(b.ticket_secret for b in bookings)
    assert {b.payment_status for b in bookings} == {"paid", "unpaid"}
    unpaid = next(b for b in bookings if b.payment_status == "unpaid")
    assert checkin.check_in(organizer, unpaid.code, now)["status"] == "unpaid"
    paid_one = next(b for b in bookings if b.payment_status == "paid")
    assert checkin.check_in(organizer, paid_one.ticket_secret, now)["status"] == "ok"


def test_loafy_check_verifies_tickets_and_people_in(app, factory, tonight, organizer, now):
    find_violations = checkin.door_violations  # the door's part of loafy check (asked by it)
    booking = paid(factory, tonight, now, guests=2)
    checkin.check_in(organizer, booking.code, now, people=2)
    assert find_violations() == []
    Booking.update(checked_in_people=3).where(Booking.id == booking.id).execute()
    Booking.update(ticket_secret=None).where(Booking.id == booking.id).execute()
    found = find_violations()
    assert f"booking {booking.code}: 3 people in, its check-ins say 2" in found
    assert "1 booking(s) have no ticket secret" in found


def test_loafy_check_asks_the_door(app, factory, tonight, now):
    from loafy.checks import find_violations

    booking = book_session(factory.user(), tonight, 0, "cash", now)
    Booking.update(ticket_secret=None).where(Booking.id == booking.id).execute()
    assert "1 booking(s) have no ticket secret" in find_violations(now)
