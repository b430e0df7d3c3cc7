"""The waitlist's backstop on a real RQ worker and Redis: the clock registers it every minute, and a
fit left waiting (a crash between a freeing commit and its offer) is offered, once, by the job."""

from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from loafy.booking import waitlist
from loafy.booking.bookings import book_session
from loafy.checks import find_violations
from loafy.models import Booking, ClubSession
from tests.helpers import reload
from tests.test_jobs import app_config  # noqa: F401 - jobs on the real Redis, not inline


def test_the_clock_registers_the_waitlist_sweep_every_minute(redis_conn):
    scheduler = CronScheduler(connection=redis_conn)
    scheduler.load_config_from_file("jobs.cron")
    jobs = {(job.func_name, job.queue_name, job.cron) for job in scheduler.get_jobs()}
    assert ("jobs.tasks.offer_waitlists", "default", "* * * * *") in jobs


def test_the_sweep_job_offers_what_a_crash_left_and_twice_is_harmless(app, factory, now, redis_conn):
    club_session = factory.club_session(max_slots=1)
    held = book_session(factory.user(), club_session, 0, "bank_transfer", now)
    entry = waitlist.join_waitlist(factory.user(), club_session.id, 1, now)
    Booking.update(status="cancelled").where(Booking.id == held.id).execute()  # the crash, simulated
    ClubSession.update(available_slots=1).where(ClubSession.id == club_session.id).execute()
    queue = Queue("default", connection=redis_conn)
    first, second = queue.enqueue("jobs.tasks.offer_waitlists"), queue.enqueue("jobs.tasks.offer_waitlists")
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    offer = Booking.get_by_id(reload(entry).booking_id)
    assert first.return_value() == [offer.code] and second.return_value() == []
    assert reload(entry).status == "offered"
    assert find_violations() == []
