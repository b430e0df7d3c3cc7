"""Redis down: booking and paying keep working, /healthz says "degraded", and when Redis returns
the clock's jobs catch up from the database (unsent e-mails go out once, overdue bookings expire).

Redis here is a private redis-server on its own port, killed with SIGKILL; the shared server on
6379 is never touched. Jobs are not inline: everything goes through Redis or not at all.
"""

import logging
from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker

from loafy import clock, queue
from loafy.checks import find_violations
from loafy.models import Booking, Notification
from tests.fault_fixtures import RedisServer
from tests.helpers import csrf_token, login, reload
from tests.stripe_fixtures import (  # noqa: F401 - fixtures
    localstripe_url,
    served,
    stripe_live,
    stripe_settings,
    wait_for,
)

PRICE = 150_000


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


@pytest.fixture
def app_config(app_config, localstripe_url, redis_server):  # noqa: F811
    return {
        **app_config,
        **stripe_settings(localstripe_url),
        "REDIS_URL": redis_server.url,
        "JOBS_INLINE": "0",
    }


def run_clock_jobs(redis_conn):
    """What `rq cron jobs.cron` enqueues every minute, then one burst of a real RQ worker."""
    default, mail = Queue("default", connection=redis_conn), Queue("mail", connection=redis_conn)
    expiry = default.enqueue("jobs.tasks.expire_unpaid")
    flush = mail.enqueue("jobs.tasks.flush_notifications")
    SimpleWorker([default, mail], connection=redis_conn).work(burst=True)
    return expiry.return_value(), flush.return_value()


def book(client, session_id, guests=0):
    return client.post(
        "/api/bookings",
        json={"session_id": session_id, "guest_count": guests, "payment_method": "stripe"},
        headers={"X-CSRFToken": csrf_token(client)},
    )


def test_redis_down_booking_and_paying_work_and_the_jobs_catch_up(
    app, live, redis_server, factory, now, sent, outbox, caplog
):
    club_session = factory.club_session(price=PRICE, max_slots=5)
    payer, dawdler = factory.user(email="payer@example.com"), factory.user(email="dawdler@example.com")
    redis_server.kill()

    with caplog.at_level(logging.WARNING, logger="loafy.queue"):
        # Book through the API.
        payer_client = login(app.test_client(), payer)
        response = book(payer_client, club_session.id, guests=1)
        assert response.status_code == 201, response.data
        paid = Booking.get_by_id(response.get_json()["id"])
        dawdler_client = login(app.test_client(), dawdler)
        response = book(dawdler_client, club_session.id)
        assert response.status_code == 201, response.data
        unpaid = Booking.get_by_id(response.get_json()["id"])

        # Pay: the intent from the API, the card step at Stripe, the signed webhook over HTTP.
        response = payer_client.post(
            "/api/payments/stripe/intent",
            json={"booking_id": paid.id},
            headers={"X-CSRFToken": csrf_token(payer_client)},
        )
        assert response.status_code == 200, response.data
        live.pay(response.get_json()["payment_intent_id"])
        wait_for(lambda: reload(paid).status == "confirmed", message="the succeeded webhook")

    assert "could not enqueue" in caplog.text  # each lost enqueue is logged, never raised
    assert reload(paid).payment_status == "paid"
    assert reload(club_session).available_slots == 5 - 2 - 1

    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json() == {"status": "degraded", "database": "ok", "redis": "down"}

    # Nothing was sent: every e-mail waits in the outbox table.
    assert sent == [] and list(outbox.glob("*.eml")) == []
    waiting = {(n.booking_id, n.kind) for n in Notification.select().where(Notification.sent_at.is_null())}
    assert waiting == {
        (paid.id, "booking_received"),
        (paid.id, "payment_reminder"),
        (paid.id, "booking_confirmed"),
        (unpaid.id, "booking_received"),
        (unpaid.id, "payment_reminder"),
    }

    # Redis comes back (empty: it kept nothing), later than the unpaid booking's deadline.
    later = now + timedelta(minutes=31)
    clock.freeze(later)
    redis_server.start()
    assert queue.redis_ok()
    assert app.test_client().get("/healthz").get_json()["status"] == "ok"

    redis_conn = queue.redis_connection()
    released, _flushed = run_clock_jobs(redis_conn)
    assert released == [unpaid.code]
    assert reload(unpaid).status == "expired"
    assert reload(club_session).available_slots == 5 - 2
    expected = {
        f"<loafy-booking_confirmed-{paid.id}@loafy.local>",
        f"<loafy-booking_expired-{unpaid.id}@loafy.local>",
    }
    # Each once; the "please pay" mails (received, reminder) are moot by now: paid, or expired.
    assert sorted(sent) == sorted(expected)
    assert Notification.select().where(Notification.sent_at.is_null()).count() == 0

    # The next minute's run finds nothing to do and sends nothing again.
    clock.freeze(later + timedelta(minutes=1))
    released, flushed = run_clock_jobs(redis_conn)
    assert released == [] and flushed == 0
    assert sorted(sent) == sorted(expected)
    assert find_violations() == []
