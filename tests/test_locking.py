"""loafy/locking.py: the one place that takes row locks. Each lock refuses to run outside a
transaction (outside one it would hold nothing); on PostgreSQL it is a real FOR UPDATE."""

import threading

import pytest
from peewee import OperationalError

from loafy import locking
from loafy.booking.bookings import book_session
from loafy.db import db, is_postgres
from loafy.errors import NotFound
from loafy.models import ClubSession


@pytest.fixture
def club_session(factory):
    return factory.club_session()


def test_every_lock_refuses_outside_a_transaction(factory, club_session, now):
    booking = book_session(factory.user(), club_session, 0, "bank_transfer", now)
    calls = [
        lambda: locking.lock_session(club_session.id),
        lambda: locking.lock_sessions([club_session.id]),
        lambda: locking.lock_booking(booking),
        lambda: locking.lock_user(booking.user_id),
    ]
    for call in calls:
        with pytest.raises(locking.NotInTransaction):
            call()
    with db.atomic():
        assert locking.lock_session(club_session.id).id == club_session.id
        locking.lock_sessions([club_session.id, club_session.id])
        assert locking.lock_booking(booking).id == booking.id
        assert locking.lock_user(booking.user_id).id == booking.user_id


def test_a_missing_row_is_not_found(app):
    with db.atomic():
        with pytest.raises(NotFound):
            locking.lock_session(10**6)
        with pytest.raises(NotFound):
            locking.lock_user(10**6)


def test_on_postgresql_the_lock_is_held_until_commit(app, club_session):
    if not is_postgres():
        pytest.skip("SQLite's BEGIN IMMEDIATE serializes writers without row locks")
    held, release, seen = threading.Event(), threading.Event(), []

    def holder():
        with app.app_context(), db.connection_context(), db.atomic():
            locking.lock_session(club_session.id)
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    try:
        with db.atomic():
            ClubSession.select().where(ClubSession.id == club_session.id).for_update(nowait=True).first()
    except OperationalError as exc:
        seen.append(exc)
    finally:
        release.set()
        thread.join(10)
    assert seen and "lock" in str(seen[0]).lower()
    with db.atomic():  # released at commit
        assert locking.lock_session(club_session.id).id == club_session.id
