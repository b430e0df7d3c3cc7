"""Schema migrations with a version table. `loafy db upgrade` applies what is missing, idempotently.

Rules for adding a migration: append a function to MIGRATIONS; never edit one that has shipped.
Migration 1 creates the schema from the models as first released; later ones change it with
playhouse.migrate and must check what exists (a fresh database runs them all in order).
"""

import logging

from peewee import CharField, DateTimeField, IntegerField, Model

from loafy.db import db, is_postgres, raw_sql
from loafy.models import (
    ALL_MODELS,
    BOOKING_PAYMENT_METHODS,
    BOOKING_SOURCES,
    ROLES,
    BankTransaction,
    Booking,
    Checkin,
    LedgerEntry,
    Pass,
    PassProduct,
    RefundRequest,
    Role,
    WaitlistEntry,
    WebSession,
    new_ticket_secret,
    utcnow,
)

log = logging.getLogger(__name__)


class SchemaVersion(Model):
    version = IntegerField(primary_key=True)
    name = CharField(max_length=200)
    applied_at = DateTimeField(default=utcnow)

    class Meta:
        database = db
        table_name = "schema_version"


def _initial_schema():
    db.create_tables(ALL_MODELS, safe=True)
    descriptions = {
        "player": "Books sessions for themselves and guests",
        "organizer": "Creates sessions, sees their bookings, checks players in",
        "admin": "Runs everything",
    }
    for name in ROLES:
        Role.insert(name=name, description=descriptions[name]).on_conflict_ignore().execute()


def _web_sessions():
    db.create_tables([WebSession], safe=True)


def _passes():
    """Pass products and passes; bookings and ledger rows may point at a pass; a booking may be paid
    with a pack ("pass"); the admin-set membership dates become granted passes (nothing is lost)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from loafy.db import is_postgres
    from loafy.passes.migrate import membership_dates_to_passes, widen_payment_method_check

    db.create_tables([PassProduct, Pass], safe=True)
    migrator = PostgresqlMigrator(db) if is_postgres() else SqliteMigrator(db)
    for model in (Booking, LedgerEntry):
        table = model._meta.table_name
        if "pass_id" not in {c.name for c in db.get_columns(table)}:
            migrate(migrator.add_column(table, "pass_id", model.club_pass))
        # Only the new column's index: the model's other indexes may name columns that later
        # migrations add (door's ticket_secret, 70), which an older database does not have yet.
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{table}_pass_id" ON "{table}" (pass_id)')
    widen_payment_method_check(BOOKING_PAYMENT_METHODS)
    membership_dates_to_passes(utcnow())


def _refund_requests():
    db.create_tables([RefundRequest], safe=True)


def _waitlist():
    """Booking.source (direct | waitlist) and the waitlist's table (a fresh database has both)."""
    columns = {column.name for column in db.get_columns("bookings")}
    if "source" not in columns:
        allowed = ", ".join(f"'{value}'" for value in BOOKING_SOURCES)
        db.execute_sql(
            "ALTER TABLE bookings ADD COLUMN source VARCHAR(10) NOT NULL DEFAULT 'direct'"
            f" CHECK (source IN ({allowed}))"
        )
    db.create_tables([WaitlistEntry], safe=True)


def _bank_transactions():
    db.create_tables([BankTransaction], safe=True)


def _calendar():
    """Recurring session templates, calendar tokens, strikes; sessions gain template_id and revision,
    bookings their attendance."""
    from playhouse.migrate import SchemaMigrator, migrate

    from loafy.models import Booking, CalendarToken, ClubSession, SessionTemplate, Strike

    migrator = SchemaMigrator.from_database(db.obj)
    wanted = [
        (ClubSession, "template_id", ClubSession.template_id),
        (ClubSession, "revision", ClubSession.revision),
        (Booking, "attendance", Booking.attendance),
    ]
    for model, name, field in wanted:
        table = model._meta.table_name
        if name not in {column.name for column in db.get_columns(table)}:
            migrate(migrator.add_column(table, name, field))
    db.create_tables([SessionTemplate, CalendarToken, Strike], safe=True)
    ClubSession._schema.create_indexes(safe=True)


def _columns(table):
    return {column.name for column in db.get_columns(table)}


def _door_tickets():
    """door: every booking gets a ticket secret and a count of its people checked in; the scan log."""
    columns = _columns("bookings")
    if "ticket_secret" not in columns:
        db.execute_sql("ALTER TABLE bookings ADD COLUMN ticket_secret VARCHAR(64)")
    if "checked_in_people" not in columns:
        # NOT NULL with a constant default is allowed by ALTER TABLE on both databases; the CHECK
        # compares with slots (SQLite takes it inline, PostgreSQL as a table constraint).
        if is_postgres():
            db.execute_sql("ALTER TABLE bookings ADD COLUMN checked_in_people INTEGER NOT NULL DEFAULT 0")
            db.execute_sql(
                "ALTER TABLE bookings ADD CONSTRAINT bookings_checked_in_people_range"
                " CHECK (checked_in_people BETWEEN 0 AND slots)"
            )
        else:
            db.execute_sql(
                "ALTER TABLE bookings ADD COLUMN checked_in_people INTEGER NOT NULL DEFAULT 0"
                " CHECK (checked_in_people BETWEEN 0 AND slots)"
            )
        # Checked in before parties could arrive apart: the whole party was in.
        db.execute_sql("UPDATE bookings SET checked_in_people = slots WHERE checked_in_at IS NOT NULL")
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS bookings_ticket_secret ON bookings (ticket_secret)")
    while True:  # existing bookings: a secret each, in batches
        ids = [
            row[0] for row in db.execute_sql("SELECT id FROM bookings WHERE ticket_secret IS NULL LIMIT 1000")
        ]
        if not ids:
            break
        for booking_id in ids:
            db.execute_sql(
                raw_sql("UPDATE bookings SET ticket_secret = ? WHERE id = ?"),
                (new_ticket_secret(), booking_id),
            )
    db.create_tables([Checkin], safe=True)


MIGRATIONS = [
    (1, "initial schema", _initial_schema),
    (40, "server-side web sessions (logout ends a copied cookie)", _web_sessions),
    (48, "card refund requests (recorded before Stripe is called)", _refund_requests),
    (50, "waitlist: entries, and bookings' source", _waitlist),
    (55, "passes: memberships and session packs; membership dates become granted passes", _passes),
    (60, "bank transactions from SePay and Casso, matched to bookings", _bank_transactions),
    (70, "door tickets: a secret per booking, people checked in, the scan log", _door_tickets),
    (80, "recurring session templates, calendar feeds, attendance and strikes", _calendar),
]


def current_version():
    if not db.table_exists("schema_version"):
        return 0
    return SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).scalar() or 0


def upgrade():
    """Apply every pending migration, each in its own transaction; returns the names applied."""
    applied = []
    with db.atomic():
        db.create_tables([SchemaVersion], safe=True)
    for version, name, migrate in MIGRATIONS:
        with db.atomic():
            # Re-read inside the transaction: two release processes may race; the PK settles it.
            if SchemaVersion.get_or_none(SchemaVersion.version == version):
                continue
            migrate()
            SchemaVersion.create(version=version, name=name)
        log.info("applied migration %s: %s", version, name)
        applied.append(f"{version} {name}")
    return applied
