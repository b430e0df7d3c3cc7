"""Migration 55 on a database from before passes: membership dates become granted passes, nothing
is lost, and bookings may then be paid with a pack ("pass")."""

from datetime import timedelta

from loafy.db import db, is_postgres, raw_sql
from loafy.migrations import SchemaVersion, upgrade
from loafy.models import Pass, User
from loafy.passes import passes
from loafy.passes.migrate import widen_payment_method_check


def _back_to_before_passes():
    """Undo migration 55 on the test database: the schema as it was before passes."""
    db.execute_sql("DROP INDEX IF EXISTS bookings_pass_id")
    db.execute_sql("DROP INDEX IF EXISTS payment_ledger_pass_id")
    db.execute_sql("ALTER TABLE bookings DROP COLUMN pass_id")
    db.execute_sql("ALTER TABLE payment_ledger DROP COLUMN pass_id")
    db.execute_sql('DROP TABLE "passes"')
    db.execute_sql('DROP TABLE "pass_products"')
    db.execute_sql("ALTER TABLE users ADD COLUMN membership_until TIMESTAMP NULL")
    widen_payment_method_check(("stripe", "bank_transfer", "cash"))
    SchemaVersion.delete().where(SchemaVersion.version == 55).execute()


def test_membership_dates_become_granted_passes(app, factory, now):
    with app.app_context():
        member = factory.user(name="Member till June")
        lapsed = factory.user(name="Lapsed")
        plain = factory.user(name="Never a member")
        with db.atomic():
            _back_to_before_passes()
        until = now + timedelta(days=200)
        db.execute_sql(raw_sql("UPDATE users SET membership_until = ? WHERE id = ?"), (until, member.id))
        db.execute_sql(
            raw_sql("UPDATE users SET membership_until = ? WHERE id = ?"),
            (now - timedelta(days=3), lapsed.id),
        )
        if not is_postgres():  # the old CHECK is back: a pack-paid booking would be refused
            sql = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'bookings'").fetchone()[0]
            assert "'pass'" not in sql

        assert upgrade() == [
            "55 passes: memberships and session packs; membership dates become granted passes"
        ]
        assert upgrade() == []  # idempotent

        assert "membership_until" not in {c.name for c in db.get_columns("users")}
        assert passes.membership(member.id, now) == {"active": True, "ends_at": until}
        [carried] = Pass.select().where(Pass.user == member.id)
        assert (carried.payment_method, carried.kind, carried.status, carried.ends_at) == (
            "grant",
            "period",
            "paid",
            until,
        )
        assert passes.membership(lapsed.id, now)["active"] is False
        assert Pass.select().where(Pass.user == lapsed.id).count() == 1  # kept, as history
        assert Pass.select().where(Pass.user == plain.id).count() == 0
        assert User.get_by_id(member.id).is_member(now)

        # The widened CHECK takes a booking paid with a pack.
        pack = factory.paid_pass(plain, "pack", credits=2)
        from loafy.booking.bookings import book_session

        booking = book_session(plain, factory.club_session(), 0, "pass", now)
        assert booking.club_pass_id == pack.id
