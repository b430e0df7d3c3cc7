"""Jobs against the real Redis server: enqueue after commit, workers, the clock, Redis down."""

import logging
from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from loafy.booking.bookings import book_session
from loafy.checks import find_violations
from loafy.db import db
from loafy.models import Booking, Notification
from tests.helpers import reload


@pytest.fixture
def app_config(app_config, redis_url):
    return dict(app_config, REDIS_URL=redis_url, JOBS_INLINE="0")


def run_worker(redis_conn, *names):
    queues = [Queue(name, connection=redis_conn) for name in names]
    SimpleWorker(queues, connection=redis_conn).work(burst=True)


def release_scheduled(queue):
    """What the worker's scheduler does once the scheduled jobs are due."""
    registry = queue.scheduled_job_registry
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        registry.remove(job)
        queue.enqueue_job(job)


def test_notifications_are_enqueued_after_commit_and_sent_by_a_worker(app, factory, now, redis_conn, outbox):
    booking = book_session(factory.user(email="an@example.com"), factory.club_session(), 1, "stripe", now)
    mail_queue = Queue("mail", connection=redis_conn)
    assert mail_queue.scheduled_job_registry.count == 1  # a flush, two seconds after the booking
    release_scheduled(mail_queue)
    reminder = Notification.get(
        (Notification.booking == booking.id) & (Notification.kind == "payment_reminder")
    )
    assert reminder.sent_at is None
    run_worker(redis_conn, "mail")
    received = Notification.get(
        (Notification.booking == booking.id) & (Notification.kind == "booking_received")
    )
    assert received.sent_at is not None and received.to_email == "an@example.com"
    assert len(list(outbox.glob("*.eml"))) == 1


def test_nothing_is_enqueued_when_the_transaction_rolls_back(app, factory, now, redis_conn):
    club_session = factory.club_session()
    with pytest.raises(RuntimeError), db.atomic():
        book_session(factory.user(), club_session, 0, "stripe", now)
        raise RuntimeError("something after the booking failed")
    assert Booking.select().count() == 0
    assert Queue("mail", connection=redis_conn).count == 0
    assert Queue("mail", connection=redis_conn).scheduled_job_registry.count == 0
    assert reload(club_session).available_slots == club_session.max_slots


def test_expiry_job_runs_on_a_worker_and_twice_is_harmless(app, factory, now, redis_conn):
    from loafy import clock

    club_session = factory.club_session(max_slots=6)
    overdue = book_session(factory.user(), club_session, 2, "stripe", now)
    clock.freeze(now + timedelta(hours=1))  # the worker reads the clock, like in production
    queue = Queue("default", connection=redis_conn)
    first = queue.enqueue("jobs.tasks.expire_unpaid")
    second = queue.enqueue("jobs.tasks.expire_unpaid")  # e.g. two clocks running by mistake
    run_worker(redis_conn, "default")
    assert first.return_value() == [overdue.code]
    assert second.return_value() == []
    assert reload(overdue).status == "expired"
    assert reload(club_session).available_slots == 6
    assert find_violations() == []


def test_the_clock_registers_expiry_and_mail_sweeps_every_minute(redis_conn):
    scheduler = CronScheduler(connection=redis_conn)
    scheduler.load_config_from_file("jobs.cron")
    jobs = {(job.func_name, job.queue_name, job.cron) for job in scheduler.get_jobs()}
    assert ("jobs.tasks.expire_unpaid", "default", "* * * * *") in jobs
    assert ("jobs.tasks.flush_notifications", "mail", "* * * * *") in jobs


@pytest.fixture
def redis_down_config(app_config):
    from tests.oidc_fixtures import closed_port

    return dict(app_config, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")


def test_booking_works_with_redis_down_and_the_sweep_catches_up(
    redis_down_config, factory_for, now, outbox, caplog
):
    _app, factory = factory_for(redis_down_config)
    with caplog.at_level(logging.WARNING, logger="loafy.queue"):
        booking = book_session(factory.user(), factory.club_session(), 0, "stripe", now)
    assert booking.status == "pending_payment"
    assert "could not enqueue" in caplog.text
    pending = Notification.get(
        (Notification.booking == booking.id) & (Notification.kind == "booking_received")
    )
    assert pending.sent_at is None
    # Redis comes back: the every-minute sweep sends what the lost job would have sent.
    from jobs.tasks import flush_notifications

    assert flush_notifications() >= 1
    assert reload(pending).sent_at is not None
    assert len(list(outbox.glob("*.eml"))) == 1


@pytest.fixture
def factory_for(database_url, now, tmp_path):
    """Build an app from a given config (for tests that need one different from `app`)."""
    from jobs import runtime
    from loafy import clock
    from loafy.app import create_app
    from tests.conftest import Factory, _close_pool, reset_database

    def build(config):
        app = create_app(config)
        runtime.use_app(app)
        clock.freeze(now)
        with app.app_context():
            db.connect(reuse_if_open=True)
            reset_database()
        return app, Factory(now)

    yield build
    _close_pool()
    clock.freeze(None)
    runtime.use_app(None)
