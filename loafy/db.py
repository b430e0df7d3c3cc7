"""The database handle, configured at run time from DATABASE_URL (SQLite or PostgreSQL)."""

import logging
import re
import select
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2
from peewee import DatabaseProxy, OperationalError, SqliteDatabase
from playhouse.pool import PooledPostgresqlDatabase

from loafy.errors import ConfigError

log = logging.getLogger(__name__)

db = DatabaseProxy()

# Writers wait this long for SQLite's lock instead of failing with "database is locked".
SQLITE_BUSY_SECONDS = 30


def make_database(url, pool_size=20, pool_timeout=10):
    """Build a peewee database from a URL; a malformed URL is a one-line ConfigError."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        raise ConfigError("DATABASE_URL is malformed: expected sqlite:///PATH or postgresql://...")
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        return _make_sqlite(parts, url)
    if scheme in ("postgres", "postgresql"):
        return _make_postgres(parts, pool_size, pool_timeout)
    raise ConfigError(
        "DATABASE_URL is malformed: expected sqlite:///PATH or postgresql://USER@HOST/NAME "
        f"(got scheme {parts.scheme or 'none'!r})"
    )


def _make_sqlite(parts, url):
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
    path = unquote(url.split("://", 1)[1].split("?", 1)[0])
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ConfigError("DATABASE_URL is malformed: sqlite:/// needs a file path")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Every write transaction takes the write lock at BEGIN (IMMEDIATE): with WAL and a busy
    # timeout, concurrent writers queue instead of failing half-way with "database is locked".
    return SqliteDatabase(
        path,
        timeout=SQLITE_BUSY_SECONDS,
        lock_type="IMMEDIATE",
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": SQLITE_BUSY_SECONDS * 1000,
            "synchronous": "normal",
        },
    )


class ClubPostgresqlDatabase(PooledPostgresqlDatabase):
    """peewee's pool, without its `SELECT 1` round trip on every checkout of a healthy connection.

    peewee pings every connection it hands out. This pool skips the ping for a connection checked
    in less than PING_AFTER_IDLE_SECONDS ago with nothing waiting on its socket: a server that
    closes its connections (a restart, a terminated backend) leaves each socket readable, so those
    are still pinged and replaced before a request gets them.
    """

    PING_AFTER_IDLE_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._checked_in_at = {}

    def _can_reuse(self, conn):
        reusable = super()._can_reuse(conn)
        if reusable:
            self._checked_in_at[self.conn_key(conn)] = time.monotonic()
        return reusable

    def _is_closed(self, conn):
        checked_in_at = self._checked_in_at.pop(self.conn_key(conn), float("-inf"))
        if conn.closed:
            return True
        recent = time.monotonic() - checked_in_at < self.PING_AFTER_IDLE_SECONDS
        if recent and not _has_input(conn):
            return False
        return super()._is_closed(conn)


def _has_input(conn):
    """Whether the server sent anything to this idle connection (only a closing server does)."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg2.Error):
        return True


def _make_postgres(parts, pool_size, pool_timeout):
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError("DATABASE_URL is malformed: postgresql://... needs a database name")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("DATABASE_URL is malformed: the port is not a number")
    # On checkout the pool runs `SELECT 1` on a connection idle for a second or more, or whose socket
    # the server wrote to, and drops it if that fails: connections killed by a PostgreSQL restart are
    # replaced, never handed to a request (ClubPostgresqlDatabase; peewee 4.5, pinned;
    # tests/test_faults_postgres.py restarts the server under gunicorn).
    return ClubPostgresqlDatabase(
        name,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        host=parts.hostname or None,
        port=port,
        max_connections=pool_size,
        stale_timeout=300,
        timeout=pool_timeout,  # wait for a free connection instead of failing at once
        connect_timeout=5,
    )


def raw_sql(text):
    """Hand-written SQL kept in the portable `?` style, in the driver's placeholder style (psycopg2's
    `%s`). For the few hot statements where peewee's query building costs more than the database."""
    return text if db.param == "?" else text.replace("?", db.param)


_prepared = weakref.WeakKeyDictionary()  # connection -> names PREPAREd on it; gone with it


def prepared_sql(name, text):
    """SQL that runs `text` (portable `?` style) as a statement PostgreSQL prepares once per
    connection, so it is planned once instead of on every call (planning the booking statement
    cost more than running it); elsewhere, `text` in the driver's style (raw_sql). Prepared
    statements are per session and survive a rolled-back transaction; a new connection (after a
    restart, say) prepares again."""
    if not is_postgres():
        return raw_sql(text)
    conn = db.connection()
    names = _prepared.setdefault(conn, set())
    if name not in names:
        numbered = iter(range(1, text.count("?") + 1))
        db.execute_sql(f"PREPARE {name} AS " + re.sub(r"\?", lambda _: f"${next(numbered)}", text))
        names.add(name)
    return f"EXECUTE {name} ({', '.join(['%s'] * text.count('?'))})" if "?" in text else f"EXECUTE {name}"


_row_plans = {}  # (model, column names) -> [(attribute, python_value or None)]


def fetch_one(model, sql, params=()):
    """The first row of hand-written SQL (driver style) as a `model` instance, or None. Columns
    that are no field of the model become plain attributes. The same as next(iter(model.raw(...)))
    without peewee rebuilding the statement and resolving its columns on every call (a tenth of a
    booking's time)."""
    cursor = db.execute_sql(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    columns = tuple(column[0] for column in cursor.description)
    plan = _row_plans.get((model, columns))
    if plan is None:
        fields = {field.column_name: field for field in model._meta.sorted_fields}
        plan = [(fields[c].name, fields[c].python_value) if c in fields else (c, None) for c in columns]
        _row_plans[(model, columns)] = plan
    instance = model(__no_default__=True)
    data = instance.__data__
    for (name, convert), value in zip(plan, row, strict=True):
        if convert is None:
            setattr(instance, name, value)
        else:
            data[name] = convert(value) if value is not None else None
    return instance


def is_postgres():
    return isinstance(db.obj, PooledPostgresqlDatabase)


@contextmanager
def connection():
    """A connection for work outside a request (CLI, jobs, threads); reuses an open one."""
    if db.is_closed():
        with db.connection_context():
            yield
    else:
        yield


def check_connection():
    """Open and close a connection; raise a one-line ConfigError when the database is unreachable."""
    try:
        with connection():
            db.execute_sql("SELECT 1")
    except OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Cannot reach the database at DATABASE_URL: {first_line}")
