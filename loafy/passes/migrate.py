"""Migration 55's steps (loafy/migrations.py): written against what the database holds."""

import logging
import math
from datetime import timedelta

from loafy.db import db, is_postgres
from loafy.models import Pass, PassProduct

log = logging.getLogger(__name__)

GRANTED_PRODUCT = "Thành viên (chuyển từ ngày cũ) / Membership (carried over)"


def widen_payment_method_check(methods):
    """bookings.payment_method may be any of `methods` (a booking paid with a pack: "pass").

    PostgreSQL: drop and re-add the column's CHECK. SQLite cannot alter a CHECK; loosening one
    changes nothing stored, so its table definition is edited in place, the procedure SQLite's
    ALTER TABLE documentation gives for that case.
    """
    listed = ", ".join(f"'{m}'" for m in methods)
    if is_postgres():
        rows = db.execute_sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'bookings'::regclass AND contype = 'c'"
            " AND pg_get_constraintdef(oid) LIKE %s",
            ("%payment_method%",),
        ).fetchall()
        for (name,) in rows:
            db.execute_sql(f'ALTER TABLE bookings DROP CONSTRAINT "{name}"')
        db.execute_sql(
            "ALTER TABLE bookings ADD CONSTRAINT bookings_payment_method_check"
            f" CHECK (payment_method IN ({listed}))"
        )
        return
    (sql,) = db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'bookings'"
    ).fetchone()
    start = sql.find("CHECK (payment_method IN (")
    if start < 0:
        raise RuntimeError("bookings.payment_method has no CHECK to widen")
    end = sql.find("))", start) + 2
    new_sql = sql[:start] + f"CHECK (payment_method IN ({listed}))" + sql[end:]
    if new_sql == sql:
        return
    (version,) = db.execute_sql("PRAGMA schema_version").fetchone()
    db.execute_sql("PRAGMA writable_schema = ON")
    try:
        db.execute_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'bookings'", (new_sql,)
        )
        db.execute_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute_sql("PRAGMA writable_schema = OFF")


def membership_dates_to_passes(now):
    """Each users.membership_until becomes a granted period pass ending then; the column is dropped
    (membership now comes from passes alone). Nothing to do on a database created without it."""
    columns = {c.name for c in db.get_columns("users")}
    if "membership_until" not in columns:
        return 0
    rows = db.execute_sql(
        "SELECT id, membership_until, created_at FROM users WHERE membership_until IS NOT NULL"
    ).fetchall()
    if rows:
        product = PassProduct.create(
            name=GRANTED_PRODUCT,
            kind="period",
            price=0,
            duration_days=365,
            early_access=True,
            active=False,
            created_at=now,
            updated_at=now,
        )
        from loafy.passes.passes import new_pass_code

        for user_id, until, created_at in rows:
            until = Pass.ends_at.python_value(until)
            created_at = Pass.created_at.python_value(created_at) or now
            starts = min(created_at, now)
            if starts >= until:
                starts = until - timedelta(days=1)
            days = max(1, math.ceil((until - starts) / timedelta(days=1)))
            Pass.create(
                code=new_pass_code(),
                user=user_id,
                product=product.id,
                kind="period",
                days=days,
                early_access=True,
                amount=0,
                payment_method="grant",
                status="paid",
                starts_at=starts,
                ends_at=until,
                paid_at=now,
                note="membership date set by an admin before passes",
                created_at=now,
                updated_at=now,
            )
    db.execute_sql("ALTER TABLE users DROP COLUMN membership_until")
    log.info("membership dates carried over into %d granted pass(es)", len(rows))
    return len(rows)
