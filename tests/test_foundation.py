"""The foundation: configuration, schema constraints, migrations, the CLI, health and access."""

import subprocess
import sys
from datetime import timedelta

import pytest
from peewee import IntegrityError

from loafy.config import load_config
from loafy.db import db, make_database
from loafy.errors import ConfigError
from loafy.migrations import current_version, upgrade
from loafy.models import Booking, ClubSession, LedgerEntry, User
from tests.helpers import login, reload

PRODUCTION_ENV = {
    "LOAFY_ENV": "production",
    "SECRET_KEY": "s",
    "DATABASE_URL": "sqlite:////tmp/x.db",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"]
)
def test_production_refuses_to_start_without_a_secret(missing, tmp_path):
    environ = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_config(environ=environ, instance_path=tmp_path)


def test_production_config_with_every_secret_loads(tmp_path):
    config = load_config(environ=PRODUCTION_ENV, instance_path=tmp_path)
    assert config["SECRET_KEY"] == "s"
    assert config["LOAFY_ENV"] == "production"


def test_generic_oidc_providers_are_collected_by_name(tmp_path):
    environ = {
        "LOAFY_ENV": "development",
        "OIDC_CLUBSSO_ISSUER": "https://sso.example.com",
        "OIDC_CLUBSSO_CLIENT_ID": "abc",
        "OIDC_CLUBSSO_CLIENT_SECRET": "xyz",
    }
    providers = load_config(environ=environ, instance_path=tmp_path)["OIDC_PROVIDERS"]
    assert providers == {
        "clubsso": {
            "issuer": "https://sso.example.com",
            "client_id": "abc",
            "client_secret": "xyz",
            "label": "Clubsso",
        }
    }


def test_half_configured_oidc_provider_names_the_missing_variable(tmp_path):
    environ = {"LOAFY_ENV": "development", "OIDC_X_CLIENT_ID": "abc"}
    with pytest.raises(ConfigError, match="OIDC_X_ISSUER"):
        load_config(environ=environ, instance_path=tmp_path)


@pytest.mark.parametrize(
    "url", ["mysql://x/y", "not a url", "postgresql://host", "sqlite://", "postgresql://h:port/db"]
)
def test_malformed_database_url_is_one_clear_error(url):
    with pytest.raises(ConfigError, match="DATABASE_URL is malformed"):
        make_database(url)


def run_cli(*args, env_extra=None, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "LOAFY_ENV": "development",
        "INSTANCE_PATH": str(tmp_path),
        "HOME": str(tmp_path),
    }
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "loafy.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "env_extra, expected",
    [
        ({"DATABASE_URL": "mysql://nope/x"}, "DATABASE_URL is malformed"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, "Cannot reach the database"),
        ({"LOAFY_ENV": "production"}, "SECRET_KEY is not set"),
    ],
)
def test_bad_configuration_gives_one_line_not_a_traceback(env_extra, expected, tmp_path):
    result = run_cli("db", "upgrade", env_extra=env_extra, tmp_path=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_upgrade_is_idempotent(app):
    version = current_version()
    assert version >= 1
    assert upgrade() == []
    assert current_version() == version


def test_database_refuses_available_slots_out_of_bounds(factory):
    club_session = factory.club_session(max_slots=5)
    for bad in (-1, 6):
        with pytest.raises(IntegrityError), db.atomic():
            ClubSession.update(available_slots=bad).where(ClubSession.id == club_session.id).execute()
    assert reload(club_session).available_slots == 5


def _booking(factory, club_session, user, **fields):
    values = {
        "code": fields.pop("code", f"LB-{user.id:05d}"),
        "user": user,
        "club_session": club_session,
        "guest_count": 0,
        "slots": 1,
        "unit_price": club_session.price,
        "amount": club_session.price,
        "payment_method": "stripe",
        "payment_deadline": factory.now + timedelta(minutes=30),
    }
    values.update(fields)
    with db.atomic():
        return Booking.create(**values)


@pytest.mark.parametrize(
    "fields",
    [
        {"guest_count": 4, "slots": 5, "amount": 500_000},
        {"guest_count": -1, "slots": 0, "amount": 0},
        {"slots": 2},  # slots must be 1 + guest_count
        {"amount": 1},  # amount must be slots × unit price
        {"payment_method": "bitcoin"},
        {"status": "lost"},
        {"payment_status": "maybe"},
    ],
)
def test_database_refuses_inconsistent_bookings(factory, fields):
    club_session = factory.club_session()
    user = factory.user()
    with pytest.raises(IntegrityError):
        _booking(factory, club_session, user, **fields)
    assert Booking.select().count() == 0


def test_one_active_booking_per_player_and_session(factory):
    club_session = factory.club_session()
    user = factory.user()
    first = _booking(factory, club_session, user, code="LB-AAAAA")
    with pytest.raises(IntegrityError):
        _booking(factory, club_session, user, code="LB-BBBBB")
    Booking.update(status="cancelled").where(Booking.id == first.id).execute()
    # Once the first is no longer active, the player may book again.
    _booking(factory, club_session, user, code="LB-CCCCC")
    assert Booking.select().count() == 2


def test_booking_codes_are_unique(factory):
    club_session = factory.club_session()
    _booking(factory, club_session, factory.user(), code="LB-SAME1")
    with pytest.raises(IntegrityError):
        _booking(factory, club_session, factory.user(), code="LB-SAME1")


def test_ledger_records_a_provider_id_once(factory):
    fields = {"kind": "payment", "provider": "stripe", "provider_id": "pi_123", "amount": 100_000}
    with db.atomic():
        LedgerEntry.create(**fields)
    with pytest.raises(IntegrityError), db.atomic():
        LedgerEntry.create(**fields)


def test_check_passes_on_demo_data_and_fails_after_corruption(app, now):
    from loafy.demo import seed_demo

    runner = app.test_cli_runner()
    seed_demo(now)
    result = runner.invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output

    club_session = ClubSession.select().first()
    ClubSession.update(available_slots=ClubSession.available_slots - 1).where(
        ClubSession.id == club_session.id
    ).execute()
    result = runner.invoke(args=["check"])
    assert result.exit_code != 0
    assert f"session {club_session.id}" in result.output
    assert f"expected {club_session.max_slots}" in result.output


def test_seed_demo_adds_a_week_once(app, now):
    runner = app.test_cli_runner()
    assert "demo data added" in runner.invoke(args=["seed-demo"]).output
    count = ClubSession.select().count()
    assert count >= 7
    starts = [s.starts_at for s in ClubSession.select()]
    assert min(starts) > now and max(starts) < now + timedelta(days=8)
    assert "not added" in runner.invoke(args=["seed-demo"]).output
    assert ClubSession.select().count() == count


def test_seed_demo_gives_an_existing_demo_account_its_demo_role(app, factory):
    """Signed in with Dev sign-in as "organizer" before the demo existed: a player by then."""
    early = factory.user(email="organizer@loafy.local", role="player")
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0 and "demo data added" in result.output, result.output
    assert User.get_by_id(early.id).role_id == "organizer"


def test_user_commands_and_token(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["user", "create", "Lan@Example.com", "--name", "Lan", "--role", "organizer"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["user", "create", "lan@example.com", "--name", "Lan again"])
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(args=["user", "set-role", "lan@example.com", "admin"])
    assert result.exit_code == 0 and "now admin" in result.output
    result = runner.invoke(args=["token", "create", "lan@example.com"])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("lfy_")
    client = app.test_client()
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.get_json()["user"]["email"] == "lan@example.com"
    assert me.get_json()["user"]["role"] == "admin"


def test_last_admin_cannot_be_demoted(app, factory):
    factory.user(role="admin", email="boss@example.com")
    result = app.test_cli_runner().invoke(args=["user", "set-role", "boss@example.com", "player"])
    assert result.exit_code == 1
    assert "last admin" in result.output


def test_home_lists_published_upcoming_sessions_only(client, factory, now):
    factory.club_session(title="Open badminton")
    factory.club_session(title="Secret draft", status="draft")
    factory.club_session(title="Yesterday", starts_at=now - timedelta(days=1))
    page = client.get("/").get_data(as_text=True)
    assert "Open badminton" in page
    assert "100.000 ₫" in page
    assert "Secret draft" not in page
    assert "Yesterday" not in page


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


@pytest.mark.parametrize("role, expected", [(None, 302), ("player", 403), ("organizer", 200), ("admin", 200)])
def test_admin_is_for_staff_only(client, factory, role, expected):
    if role:
        login(client, factory.user(role=role))
    response = client.get("/admin/")
    assert response.status_code == expected
    if role is None:
        assert "/auth/login" in response.headers["Location"]


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert "could not find" in response.get_data(as_text=True)
    api = client.get("/api/nothing")
    assert api.status_code == 404
    assert api.get_json()["error"]["code"] == "not_found"
