"""The booking hot path (bench/rush.py): its fast write, the sold-out hint, the coalesced mail kick,
and the pool's ping only after idleness. Each rule is checked against the exact path's answer."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from rq import Queue

from loafy import notifications
from loafy import settings as club_settings
from loafy.booking import sold_out
from loafy.booking.bookings import (
    CODE_ALPHABET,
    CODE_LENGTH,
    AlreadyBooked,
    SessionFull,
    book_session,
    cancel_booking,
    expire_unpaid,
    new_code,
)
from loafy.booking.club_sessions import update_session
from loafy.checks import find_violations
from loafy.db import db, is_postgres
from loafy.models import Booking, Notification, Setting
from loafy.people import tokens
from tests.helpers import reload


def bearer(user):
    return {"Authorization": f"Bearer {tokens.create_token(user)[1]}"}


def book(client, headers, session_id, guests=0, method="stripe"):
    return client.post(
        "/api/bookings",
        json={"session_id": session_id, "guest_count": guests, "payment_method": method},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("price", "method", "status", "payment_status", "kinds"),
    [
        (150_000, "stripe", "pending_payment", "unpaid", {"booking_received", "payment_reminder"}),
        (150_000, "cash", "confirmed", "unpaid", {"booking_confirmed"}),
        (0, "stripe", "confirmed", "paid", {"booking_confirmed"}),
    ],
)
def test_the_fast_write_stores_what_the_exact_path_would(
    factory, now, price, method, status, payment_status, kinds
):
    club_session = factory.club_session(price=price, max_slots=10, allow_pay_at_door=True)
    booking = book_session(factory.user(), club_session, 2, method, now)
    stored = reload(booking)
    for field in ("code", "status", "payment_status", "payment_deadline", "confirmed_at", "amount", "slots"):
        assert getattr(stored, field) == getattr(booking, field), field
    assert (stored.status, stored.payment_status, stored.amount) == (status, payment_status, 3 * price)
    assert stored.payment_deadline == (now + timedelta(minutes=30) if status == "pending_payment" else None)
    assert booking.club_session.available_slots == reload(club_session).available_slots == 7
    assert {n.kind for n in Notification.select().where(Notification.booking == booking.id)} == kinds
    assert find_violations() == []


def test_a_double_booking_falls_back_to_the_exact_answer(factory, now):
    player, club_session = factory.user(), factory.club_session(max_slots=5)
    book_session(player, club_session, 0, "stripe", now)
    with pytest.raises(AlreadyBooked):
        book_session(player, club_session, 0, "stripe", now)
    assert reload(club_session).available_slots == 4  # the fast write left nothing behind
    assert Booking.select().count() == 1


def test_after_a_sell_out_the_crowd_is_told_full_before_any_token_lookup(client, factory, now):
    club_session = factory.club_session(max_slots=1)
    assert book(client, bearer(factory.user()), club_session.id).status_code == 201
    first_refusal = book(client, bearer(factory.user()), club_session.id)
    assert first_refusal.get_json()["error"]["code"] == "full"
    assert sold_out.is_sold_out(club_session.id)
    # The hint answers even a request that carries no valid token: "full" is public and changes nothing.
    crowd = book(client, {"Authorization": "Bearer lfy_not-a-token"}, club_session.id)
    assert (crowd.status_code, crowd.get_json()["error"]["code"]) == (409, "full")
    # Without the hint the same request is a 401, as for any session.
    sold_out.forget([club_session.id])
    assert book(client, {"Authorization": "Bearer lfy_not-a-token"}, club_session.id).status_code == 401


def test_a_slot_this_process_frees_is_offered_again_at_once(client, factory, now):
    club_session = factory.club_session(max_slots=1)
    holder = factory.user()
    booked = book(client, bearer(holder), club_session.id).get_json()
    assert book(client, bearer(factory.user()), club_session.id).status_code == 409
    cancel_booking(holder, booked["id"], now)
    assert book(client, bearer(factory.user()), club_session.id).status_code == 201

    assert book(client, bearer(factory.user()), club_session.id).status_code == 409
    update_session(factory.user(role="admin"), club_session.id, {"max_slots": 3}, now)
    assert book(client, bearer(factory.user()), club_session.id).status_code == 201


def test_the_hint_ends_at_the_next_payment_deadline(client, factory, now, monkeypatch):
    club_session = factory.club_session(max_slots=1)
    book(client, bearer(factory.user()), club_session.id)
    assert book(client, bearer(factory.user()), club_session.id).status_code == 409
    assert sold_out.is_sold_out(club_session.id)
    # The hold lapses (the expiry job may not have run yet): the session is no longer known full.
    monkeypatch.setattr(sold_out, "utcnow", lambda: now + timedelta(minutes=30))
    assert not sold_out.is_sold_out(club_session.id)


def test_the_hint_lasts_one_second(factory, now, monkeypatch):
    clock = {"t": 100.0}
    monkeypatch.setattr(sold_out, "time", SimpleNamespace(monotonic=lambda: clock["t"]))
    sold_out.remember(7, None)
    clock["t"] += sold_out.HINT_SECONDS - 0.01
    assert sold_out.is_sold_out(7)
    clock["t"] += 0.02
    assert not sold_out.is_sold_out(7)


def test_expiry_in_this_process_forgets_the_hint(client, factory, now):
    club_session = factory.club_session(max_slots=1)
    book(client, bearer(factory.user()), club_session.id)
    assert book(client, bearer(factory.user()), club_session.id).status_code == 409
    expire_unpaid(now + timedelta(minutes=31))
    assert not sold_out.is_sold_out(club_session.id)


class TestCoalescedMailKick:
    @pytest.fixture
    def app_config(self, app_config, redis_url):
        return dict(app_config, REDIS_URL=redis_url, JOBS_INLINE="0")

    def test_a_rush_of_bookings_schedules_one_flush_until_it_starts(self, app, factory, now, redis_conn):
        redis_conn.delete(notifications.FLUSH_PENDING_KEY)
        mail = Queue("mail", connection=redis_conn)
        mail.empty()
        scheduled = mail.scheduled_job_registry
        for job_id in scheduled.get_job_ids():
            scheduled.remove(job_id, delete_job=True)
        club_session = factory.club_session(max_slots=10)
        for _ in range(3):
            book_session(factory.user(email=None), club_session, 0, "stripe", now)
        assert (mail.count, scheduled.count) == (0, 1)  # three bookings, one flush, a moment later
        job = mail.fetch_job(scheduled.get_job_ids()[0])
        assert job.func_name == notifications.FLUSH_JOB
        due = scheduled.get_scheduled_time(job)
        assert 0 < (due - datetime.now(UTC)).total_seconds() <= 2
        job.perform()  # the flush starts: a booking from now on schedules the next one
        book_session(factory.user(email=None), club_session, 0, "stripe", now)
        assert scheduled.count == 2


def test_a_connection_checked_in_a_moment_ago_is_not_pinged(app, monkeypatch):
    if not is_postgres():
        pytest.skip("the PostgreSQL pool")
    pool = db.obj
    pings = []
    original = type(pool).__mro__[1]._is_closed
    monkeypatch.setattr(
        type(pool).__mro__[1], "_is_closed", lambda self, conn: pings.append(1) or original(self, conn)
    )
    db.close()
    with db.connection_context():
        db.execute_sql("SELECT 1")
    with db.connection_context():  # checked in just now: handed out without a round trip
        db.execute_sql("SELECT 1")
    assert pings == []
    monkeypatch.setattr(type(pool), "PING_AFTER_IDLE_SECONDS", 0.0)
    with db.connection_context():  # idle past the threshold: pinged first
        db.execute_sql("SELECT 1")
    assert pings == [1]


def test_prepared_statements_survive_a_migration_that_adds_a_column(factory, now):
    if not is_postgres():
        pytest.skip("prepared statements are PostgreSQL's")
    club_session = factory.club_session(max_slots=1)
    book_session(factory.user(), club_session, 0, "stripe", now)  # prepared on this connection
    with pytest.raises(SessionFull):
        book_session(factory.user(), club_session, 0, "stripe", now)  # the refusal read, prepared
    db.execute_sql("ALTER TABLE club_sessions ADD COLUMN added_later TEXT")
    db.execute_sql("ALTER TABLE users ADD COLUMN added_later TEXT")
    try:
        update_session(factory.user(role="admin"), club_session.id, {"max_slots": 3}, now)
        assert book_session(factory.user(), club_session, 0, "stripe", now).status == "pending_payment"
        with pytest.raises(SessionFull):
            book_session(factory.user(), club_session, 1, "stripe", now)
        player = factory.user()
        assert tokens.user_for_token(tokens.create_token(player)[1], now).id == player.id
    finally:
        db.execute_sql("ALTER TABLE club_sessions DROP COLUMN added_later")
        db.execute_sql("ALTER TABLE users DROP COLUMN added_later")


def test_senders_racing_over_a_batch_send_each_mail_once(app, factory, now, sent, outbox):
    club_session = factory.club_session(max_slots=30)
    for i in range(12):  # inline jobs are on: clear what they sent, then make everything due again
        book_session(factory.user(email=f"p{i}@example.com"), club_session, 0, "stripe", now)
    sent.clear()
    Notification.update(sent_at=None, claimed_at=None, attempts=0).execute()
    later = now + timedelta(minutes=25)  # received and reminder mails are both due: 24 in all
    counts = []

    def sender():
        with app.app_context(), db.connection_context():
            counts.append(notifications.send_due(later, limit=10))
            counts.append(notifications.send_due(later, limit=10))
            counts.append(notifications.send_due(later, limit=10))

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 24
    assert len(sent) == len(set(sent)) == 24
    assert Notification.select().where(Notification.sent_at.is_null()).count() == 0


def test_a_connection_the_server_closed_a_moment_ago_is_replaced_not_handed_out(app, database_url):
    if not is_postgres():
        pytest.skip("the PostgreSQL pool")
    import psycopg2

    db.close()
    with db.connection_context():
        pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    time.sleep(0.1)  # the server's goodbye reaches the idle socket
    with db.connection_context():  # checked in a moment ago, but the server closed it: replaced
        assert db.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid


def test_booking_codes_use_every_letter_evenly():
    codes = [new_code() for _ in range(20_000)]
    assert all(len(code) == 3 + CODE_LENGTH and code.startswith("LB-") for code in codes)
    counts = Counter(letter for code in codes for letter in code[3:])
    assert set(counts) == set(CODE_ALPHABET)
    mean = len(codes) * CODE_LENGTH / len(CODE_ALPHABET)
    assert all(abs(count - mean) < 0.15 * mean for count in counts.values()), counts


def test_bookings_see_a_settings_change_here_at_once_and_elsewhere_within_a_second(factory, now, monkeypatch):
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(club_settings.time, "monotonic", lambda: clock.now)
    club_settings.forget_recent_settings()
    book_session(factory.user(), factory.club_session(), 0, "stripe", now)  # reads the settings
    club_settings.update_settings({"payment_deadline_minutes": 45})  # this process: seen at once
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    assert booking.payment_deadline == now + timedelta(minutes=45)

    # Another process's change (straight in the table): this process's copy is up to a second old.
    Setting.update(value=json.dumps(20)).where(Setting.key == "payment_deadline_minutes").execute()
    clock.now += 0.5
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    assert booking.payment_deadline == now + timedelta(minutes=45)
    clock.now += 0.5
    booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    assert booking.payment_deadline == now + timedelta(minutes=20)
