"""Row locks, in one place, in one order: sessions first (several in ascending id order), then the
bookings read under them; a user's row on its own.

On PostgreSQL a lock is `SELECT ... FOR UPDATE`; on SQLite the outermost `BEGIN IMMEDIATE` already
serializes every writer, so the same call only re-reads. Either way a lock means something only
inside a transaction (outside one it would be released at once): every function here refuses to
run without one.
"""

from loafy.db import db, is_postgres
from loafy.errors import NotFound
from loafy.models import Booking, ClubSession, User


class NotInTransaction(RuntimeError):
    """A programming error: a row lock asked for with no transaction open to hold it."""


def _require_transaction(what):
    if not db.in_transaction():
        raise NotInTransaction(f"lock {what}: open a transaction first (with db.atomic())")


def _locked(query):
    return query.for_update() if is_postgres() else query


def lock_session(session_id):
    """The session re-read under its row lock. Any change to a session's slots or its bookings'
    states takes this first (payments too)."""
    _require_transaction("session")
    club_session = _locked(ClubSession.select().where(ClubSession.id == session_id)).first()
    if club_session is None:
        raise NotFound("That session does not exist.")
    return club_session


def lock_sessions(session_ids):
    """Several sessions' rows, in ascending id order, so two sweeps never deadlock."""
    _require_transaction("sessions")
    ids = sorted(set(session_ids))
    if is_postgres() and ids:
        list(
            ClubSession.select(ClubSession.id)
            .where(ClubSession.id.in_(ids))
            .order_by(ClubSession.id)
            .for_update()
        )


def lock_booking(booking):
    """The booking re-read under its session's lock: a payment or a cancellation committed since
    the caller's first read is seen before anything is decided."""
    lock_session(booking.club_session_id)
    return Booking.get_by_id(booking.id)


def lock_user(user_id):
    """The user's row under its lock (e.g. two unlinks racing cannot both see "two left")."""
    _require_transaction("user")
    user = _locked(User.select().where(User.id == user_id)).first()
    if user is None:
        raise NotFound("That player does not exist.")
    return user


def lock_row(model, row_id):
    """Any other row under its lock (a bank transaction being matched, say); None when missing."""
    _require_transaction(model.__name__)
    return _locked(model.select().where(model.id == row_id)).first()
