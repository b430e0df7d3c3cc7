"""The `loafy` command line (also `flask --app loafy.app ...`). Every command reads the app's config."""

import functools
import sys
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from peewee import OperationalError

from loafy.db import check_connection, connection
from loafy.errors import ConfigError, LoafyError
from loafy.models import ROLES, utcnow


def _fail(message):
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def app_command(func):
    """Run inside the app context with a database connection; errors become one line, exit 1."""

    @with_appcontext
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            check_connection()  # an unreachable database is one line naming DATABASE_URL
            with connection():
                return func(*args, **kwargs)
        except (ConfigError, LoafyError) as exc:
            _fail(str(exc))
        except OperationalError as exc:
            _fail(f"database error: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}")

    return wrapper


def parse_now(value):
    """--now as ISO-8601 (an offset is converted to UTC; none means UTC)."""
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use ISO-8601, e.g. 2026-11-24T18:30:00+07:00", param_hint="--now")
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


@click.group("db")
def db_group():
    """Database schema."""


@db_group.command("upgrade")
@app_command
def db_upgrade():
    """Create or upgrade the schema (idempotent)."""
    from loafy.migrations import upgrade

    applied = upgrade()
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@click.command("seed-demo")
@app_command
def seed_demo():
    """Add demo accounts and a week of sessions when there are no sessions yet."""
    from loafy.demo import seed_demo as seed

    result = seed(utcnow(), current_app.config["CLUB_TIMEZONE"])
    if result is None:
        click.echo("sessions exist already; demo data not added")
    else:
        click.echo(f"demo data added: {len(result['accounts'])} accounts, {result['sessions']} sessions")
        if result.get("bank_booking"):
            click.echo(
                f"player@loafy.local's booking {result['bank_booking']} waits for a bank transfer: press "
                "'simulate transfer' on its pay page, or run loafy bank simulate CODE AMOUNT"
            )


@click.group("user")
def user_group():
    """Users and roles."""


@user_group.command("create")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(ROLES), default="player", show_default=True)
@app_command
def user_create(email, name, role):
    from loafy.people.accounts import create_user

    user = create_user(email, name, role=role)
    click.echo(f"created user {user.id} {user.email} ({user.role_id})")


@user_group.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@app_command
def user_set_role(email, role):
    from loafy.people.accounts import get_user_by_email, set_role

    user = set_role(None, get_user_by_email(email), role)
    click.echo(f"{user.email} is now {user.role_id}")


@click.group("token")
def token_group():
    """Personal API tokens."""


@token_group.command("create")
@click.argument("email")
@click.option("--name", default="CLI token", show_default=True)
@app_command
def token_create(email, name):
    """Create a token for EMAIL; the token alone is printed on the last line."""
    from loafy.people.accounts import get_user_by_email
    from loafy.people.tokens import create_token

    user = get_user_by_email(email)
    _token, raw = create_token(user, name)
    click.echo(f"token for {user.email} (shown once):")
    click.echo(raw)


@click.command("check")
@app_command
def check():
    """Verify the invariants; non-zero exit listing every violation."""
    from loafy.checks import find_violations

    violations = find_violations()
    for line in violations:
        click.echo(f"VIOLATION {line}")
    if violations:
        click.echo(f"{len(violations)} violation(s)", err=True)
        sys.exit(2)
    click.echo("ok: every invariant holds")


@click.group("jobs")
def jobs_group():
    """Run a background job once, by hand."""


@jobs_group.command("expire-unpaid")
@click.option("--now", "now_text", default=None, help="ISO-8601 time to act as now (default: now).")
@app_command
def jobs_expire_unpaid(now_text):
    """Release unpaid bookings past their deadline; prints each code released."""
    from loafy.booking.bookings import expire_unpaid

    now = parse_now(now_text)
    codes = expire_unpaid(now)
    for code in codes:
        click.echo(f"released {code}")
    click.echo(f"{len(codes)} booking(s) released at {now.isoformat()}Z")


@click.group("payments")
def payments_group():
    """Payments: card (Stripe) and bank transfers."""


@payments_group.command("reconcile")
@click.option("--since", "since_text", default=None, help="Only intents from this day on (YYYY-MM-DD, UTC).")
@app_command
def payments_reconcile(since_text):
    """Compare the ledger with Stripe's PaymentIntents; prints each difference, exit 1 if any."""
    from loafy.money import stripe_client
    from loafy.money.bank import flagged_lines
    from loafy.money.reconcile import parse_day, reconcile

    differences = []
    if stripe_client.has_secret_key():
        differences = reconcile(parse_day(since_text) if since_text else None)
    else:
        click.echo("card payments are not set up: nothing to compare with Stripe")
    for line in differences:
        click.echo(f"DIFFERENCE {line}")
    flagged = flagged_lines()  # bank transfers waiting for staff (unmatched, short, over, ...)
    for line in flagged:
        click.echo(f"FLAGGED {line}")
    if differences or flagged:
        click.echo(f"{len(differences)} difference(s), {len(flagged)} bank transfer(s) to handle", err=True)
        sys.exit(1)
    click.echo("ok: the ledger matches Stripe and no bank transfer waits for staff")


@click.group("bank")
def bank_group():
    """Bank transfers (SePay, Casso)."""


@bank_group.command("simulate")
@click.argument("code")
@click.argument("amount", type=click.IntRange(1, 10**12))
@click.option("--provider", type=click.Choice(["sepay", "casso"]), default="sepay", show_default=True)
@click.option("--url", default=None, help="The running app (default: the `loafy dev` run, else BASE_URL).")
@app_command
def bank_simulate(code, amount, provider, url):
    """Post a correctly signed transfer of AMOUNT VND with CODE in its memo to the running app
    (development only), as the bank feed would."""
    import requests

    from loafy.money.bank_feeds import simulated_delivery
    from loafy.settings import get_settings

    config = current_app.config
    if config["LOAFY_ENV"] != "development":
        _fail("loafy bank simulate is for development (LOAFY_ENV=development, as under loafy dev)")
    base = (url or _dev_run_url(config) or config["BASE_URL"]).rstrip("/")
    path, headers, body = simulated_delivery(
        provider,
        f"MBVCB.{amount % 10000} {code} chuyen khoan",
        amount,
        get_settings()["bank_account_number"],
        utcnow(),
        api_key=config.get("SEPAY_API_KEY"),
        secret=config.get("CASSO_WEBHOOK_SECRET"),
    )
    try:
        response = requests.post(base + path, data=body, headers=headers, timeout=30)
    except requests.RequestException as exc:
        _fail(f"could not reach {base}: {exc}")
    click.echo(f"{provider} → {base}{path}: {response.status_code} {response.text.strip()[:200]}")
    if response.status_code != 200:
        sys.exit(1)


def _dev_run_url(config):
    """The address a running `loafy dev` recorded for this instance folder ("pid N at URL")."""
    import fcntl
    from pathlib import Path

    path = Path(config.get("INSTANCE_PATH") or "instance") / "dev.lock"
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: the run is alive, and its address is current
                text = handle.read().strip()
                return text.rpartition(" at ")[2] if " at " in text else None
            fcntl.flock(handle, fcntl.LOCK_UN)  # nobody runs: what it says is stale
    except OSError:
        pass
    return None


@click.group("sessions")
def sessions_group():
    """Recurring sessions (session templates)."""


@sessions_group.command("generate")
@click.option("--now", "now_text", default=None, help="ISO-8601 time to act as now (default: now).")
@click.option("--template", "template_id", type=int, default=None, help="Only this template's sessions.")
@app_command
def sessions_generate(now_text, template_id):
    """Create the coming weeks' sessions of every active template (idempotent); prints each new one."""
    from loafy.calendar.templates import generate_sessions
    from loafy.clock import format_local

    now = parse_now(now_text)
    created = generate_sessions(now, template_id=template_id)
    for club_session in created:
        click.echo(f"created {club_session.id} {format_local(club_session.starts_at)} {club_session.title}")
    click.echo(f"{len(created)} session(s) created")


@jobs_group.command("mark-attendance")
@click.option("--now", "now_text", default=None, help="ISO-8601 time to act as now (default: now).")
@app_command
def jobs_mark_attendance(now_text):
    """Mark attended and no-shows of sessions ended past the grace period; prints how many."""
    from loafy.calendar.attendance import mark_attendance

    counts = mark_attendance(parse_now(now_text))
    click.echo(f"{counts['attended']} attended, {counts['no_show']} no-show(s)")


@click.command("dev")
@click.option("--port", default=5000, show_default=True)
@click.option("--no-demo", is_flag=True, help="Do not add demo data to an empty database.")
def dev(port, no_demo):
    """Run web + worker + scheduler + local sign-in and Stripe, on embedded defaults."""
    from loafy.dev.devserver import run_dev

    sys.exit(run_dev(port=port, demo=not no_demo))


COMMANDS = (db_group, seed_demo, user_group, token_group, check, jobs_group, payments_group, bank_group, dev)
COMMANDS += (sessions_group,)  # calendar


def register(app):
    """Add the commands to `flask --app loafy.app`; later issues append to COMMANDS."""
    for command in COMMANDS:
        app.cli.add_command(command)


def _make_app():
    from loafy.app import create_app

    return create_app()


class LoafyGroup(FlaskGroup):
    """Every command is registered here, so listing them builds no app: `loafy --help` works with
    no environment at all (Flask's group would build the app and print its ConfigError's traceback)."""

    def list_commands(self, ctx):
        return sorted(self.commands)

    def get_command(self, ctx, name):
        return self.commands.get(name)  # an unknown command is "No such command", not a config error


cli = LoafyGroup(
    name="loafy",
    create_app=_make_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,  # .env is read by load_config, and only in development
    help="Loafy: club sessions, bookings and payments.",
)
for _command in COMMANDS:
    cli.add_command(_command)


def main():
    try:
        cli.main(prog_name="loafy")
    except ConfigError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
