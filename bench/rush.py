"""The rush: N players with their own tokens book one 100-slot session at the same moment.

    .venv/bin/python bench/rush.py [--players 1000] [--slots 100] [--seconds 3] [--rounds 3]
                                   [--concurrency 32]

Starts the real stack on loopback — a fresh PostgreSQL database, the local Redis (db 13),
gunicorn with the Procfile's web settings (loafy/gunicorn_conf.py) and an RQ worker — then a
separate load process (bench/load.py). Prints: booked slots, "full" answers, errors, latency
percentiles, time until sold out and `loafy check`'s verdict; then requests per second of the
booking endpoint (many sessions, no contention) and the session list, each divided by a trivial
endpoint's (`/ping`) under the same server settings, in alternating rounds; the same booking
transaction through pgbench at the same concurrency; the CPU each request costs each part of the
stack and the booking ratio's ceiling those costs allow; and the web workers' memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database, machine, percentile
from loafy.app import create_app
from loafy.booking.bookings import book_in_one_statement_sql, take_slots_params
from loafy.clock import utcnow
from loafy.db import db
from loafy.dev.devserver import free_port
from loafy.dev.processes import children
from loafy.migrations import upgrade
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, Notification, User
from loafy.notifications import NEW_BOOKING_MAIL_DELAY
from loafy.people.tokens import create_token

BIN = Path(sys.executable).parent
WORKER_COMMAND = [str(BIN / "rq"), "worker", "-w", "jobs.worker.Worker", "--with-scheduler"]  # the Procfile's
REDIS_URL = "redis://127.0.0.1:6379/13"


def server_env(url, port):
    env = dict(os.environ)
    env.update(
        {
            "LOAFY_ENV": "production",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench-secret",
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_bench",
            "BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "TRUSTED_PROXIES": "1",  # the load process sends one X-Forwarded-For per simulated phone
            "MAIL_OUTBOX": tempfile.mkdtemp(prefix="loafy-bench-outbox-"),
        }
    )
    return env


def seed(url, players, slots, spare_sessions):
    # Player ids restart at 1 in every fresh database: forget an earlier run's rate-limit counters.
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app(
        {"LOAFY_ENV": "testing", "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "JOBS_INLINE": "0"}
    )
    now = utcnow()
    with app.app_context(), db.connection_context():
        upgrade()
        with db.atomic():
            User.insert_many(
                [
                    {"email": f"p{i}@bench.local", "name": f"Player {i}", "created_at": now}
                    for i in range(players)
                ]
            ).execute()

        def session(title, capacity):
            return ClubSession.create(
                title=title,
                starts_at=now + timedelta(days=1),
                ends_at=now + timedelta(days=1, hours=2),
                max_slots=capacity,
                available_slots=capacity,
                price=100_000,
                status="published",
                booking_opens_at=now - timedelta(minutes=1),
            )

        hot = session("The rush", slots)
        spare = [session(f"Quiet session {i}", 100_000).id for i in range(spare_sessions)]
        tokens = [create_token(user, "bench")[1] for user in User.select().order_by(User.id)]
    db.close() if not db.is_closed() else None
    getattr(db.obj, "close_all", lambda: None)()
    return hot.id, spare, tokens


WARM_UP_PLAYERS = 64


def warm_up(base, url, tokens, sessions, concurrency, tmp):
    """A little ordinary traffic first, by players outside the rush, and its e-mails sent: the
    rush hits a server that has been running (database connections open, statements prepared,
    code loaded), as a club's does at opening time, not one started a second before."""
    requests = []
    for i, token in enumerate(tokens):
        requests.append({"path": "/api/sessions?per_page=20"})
        requests.append(
            {
                "method": "POST",
                "path": "/api/bookings",
                "token": token,
                "json": {
                    "session_id": sessions[i % len(sessions)],
                    "guest_count": 0,
                    "payment_method": "stripe",
                },
                "forwarded_for": f"10.7.0.{i}",
            }
        )
    run_load("steady", base, {"requests": requests, "concurrency": concurrency, "seconds": 10}, tmp)
    wait_for_mail(url)


def wait_for_mail(url, seconds=30):
    """Until the worker has sent every e-mail that is due (new bookings' go out two seconds later)."""
    app = create_app({"LOAFY_ENV": "testing", "DATABASE_URL": url, "JOBS_INLINE": "0"})
    deadline = time.monotonic() + seconds
    time.sleep(0.5)
    with app.app_context(), db.connection_context():
        while time.monotonic() < deadline:
            unsent = Notification.select().where(
                Notification.sent_at.is_null() & (Notification.send_after <= utcnow())
            )
            if not unsent.exists():
                break
            time.sleep(0.5)
    getattr(db.obj, "close_all", lambda: None)()


def wait_http(url, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def run_load(mode, base, plan, tmp):
    path = Path(tmp) / f"plan-{mode}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(plan))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), mode, base, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(out.stdout)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU of a process and of its children it has waited for, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it exited while we looked
    return sum(int(field) for field in fields[11:15]) / CLOCK_TICKS


def command_lines():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue


def cpu_by_part(web_pid, worker_pid):
    """CPU seconds so far of each part of the stack: the web workers, PostgreSQL (every process of
    the server), Redis and the RQ worker (with its work horses), and this process's waited-for
    children (the load processes)."""
    lines = dict(command_lines())
    web = children(web_pid)
    database = [pid for pid, line in lines.items() if line.startswith("postgres")]
    redis = [pid for pid, line in lines.items() if line.startswith("redis-server")]
    own = os.times()
    return {
        "web": sum(cpu_seconds(pid) for pid in web),
        "database": sum(cpu_seconds(pid) for pid in database),
        "jobs": sum(cpu_seconds(pid) for pid in [*redis, worker_pid]),
        "load": own.children_user + own.children_system,
    }


def rss_mb(master_pid):
    """Resident memory of each gunicorn worker (children of the master), in MB."""
    return list(children(master_pid).values())


SESSION_VAR, PLAYER_VAR = -1001, -1002  # stand-ins replaced by pgbench's :sid and :uid


def pgbench_script(sessions, players):
    """The app's own booking statement (loafy.booking.bookings, prepared like the app's) for pgbench: a
    card booking of one slot by a random player in a random session. It only differs in the status
    it stores ('expired', so random pairs never trip the one-active-booking index) and in its code."""
    now = utcnow()
    take = take_slots_params(SESSION_VAR, 1, PLAYER_VAR, "stripe", now)
    fields = {"code": "CODE", "user": PLAYER_VAR, "club_session": SESSION_VAR, "guest_count": 0}
    fields.update({"slots": 1, "payment_method": "stripe", "created_at": now, "updated_at": now})
    settings = {"payment_deadline_minutes": 30}
    _name, text, params, _free, _paid = book_in_one_statement_sql(take, fields, settings, now)

    def literal(value):
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if value == SESSION_VAR:
            return ":sid"
        if value == PLAYER_VAR:
            return ":uid"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, datetime):
            return f"(LOCALTIMESTAMP + interval '{(value - now).total_seconds():.0f} seconds')"
        if value == "CODE":
            return "'P' || nextval('bench_codes')"
        if value == "pending_payment":
            return "'expired'"
        return "'" + value.replace("'", "''") + "'"

    pieces = text.split("?")
    statement = pieces[0] + "".join(literal(v) + piece for v, piece in zip(params, pieces[1:], strict=True))
    return (
        f"\\set sid random(1, {sessions})\n\\set uid random(1, {players})\n"
        + " ".join(statement.split())
        + ";\n"
    )


def pgbench_tps(url, concurrency, seconds, sessions, players, tmp):
    """The same booking statement straight through pgbench (prepared): the database's own limit."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    conn.cursor().execute("CREATE SEQUENCE IF NOT EXISTS bench_codes")
    conn.close()
    script = Path(tmp) / "booking.sql"
    script.write_text(pgbench_script(sessions, players))
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(concurrency), "-j", "2"]
    out = subprocess.run(
        [*command, "-T", str(int(seconds)), "-f", str(script), url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for line in out.stdout.splitlines():
        if line.startswith("tps"):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(out.stdout)


def print_cpu_per_request(cpu_per_request):
    """Where each request's CPU went, and the highest booking ratio these costs allow: the ratio
    if a booking's web work cost no more than a whole /ping's, the rest as measured (on saturated
    cores a rate is about the inverse of the CPU a request costs the machine)."""
    parts = ("web", "database", "jobs", "load")
    print("\nCPU per request, ms (from /proc over the same runs; jobs = Redis and the RQ worker)")
    print(f"  {'endpoint':<34}" + "".join(f"{part:>10}" for part in parts) + f"{'total':>10}")
    for name, cost in cpu_per_request.items():
        total = sum(cost[part] for part in parts)
        print(f"  {name:<34}" + "".join(f"{cost[part]:>10.2f}" for part in parts) + f"{total:>10.2f}")
    ping, booking = cpu_per_request["GET /ping"], cpu_per_request["POST /api/bookings"]
    ping_total = sum(ping[part] for part in parts)
    with_jobs = sum(booking[part] for part in ("database", "jobs", "load")) + ping["web"]
    without_jobs = sum(booking[part] for part in ("database", "load")) + ping["web"]
    print(
        "  ceiling of the booking ratio if a booking's web work cost no more than a /ping's: "
        f"{ping_total / with_jobs:.2f}, or {ping_total / without_jobs:.2f} if its e-mail (jobs) were free"
    )


def main():
    parser = argparse.ArgumentParser(description="The rush and the throughput ratios, on the real stack.")
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the throughput runs")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the throughput runs")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    spare_sessions = 300
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database("postgres", tmp)
        children = []
        try:
            hot, spare, tokens = seed(url, args.players + WARM_UP_PLAYERS, args.slots, spare_sessions)
            tokens, warm_up_tokens = tokens[: args.players], tokens[args.players :]
            port = free_port()
            env = server_env(url, port)
            base = f"http://127.0.0.1:{port}"
            web = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "--config",
                    str(ROOT / "loafy" / "gunicorn_conf.py"),
                    "loafy.wsgi:app",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            children.append(web)
            worker = subprocess.Popen(
                [*WORKER_COMMAND, "--url", REDIS_URL, "default", "mail"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            children.append(worker)
            wait_http(base + "/ping")
            warm_up(base, url, warm_up_tokens, spare, args.concurrency, tmp)

            # The rush.
            plan = {
                "requests": [
                    {
                        "method": "POST",
                        "path": "/api/bookings",
                        "token": token,
                        "json": {"session_id": hot, "guest_count": 0, "payment_method": "stripe"},
                        "forwarded_for": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    }
                    for i, token in enumerate(tokens)
                ]
            }
            results = run_load("rush", base, plan, tmp)
            booked = [r for r in results if r["status"] == 201]
            full = [r for r in results if r["status"] == 409 and r["code"] == "full"]
            errors = [r for r in results if r not in booked and r not in full]
            latencies = [r["latency"] for r in results]
            sold_out_at = max((r["finished"] for r in booked), default=float("nan"))
            app = create_app({"LOAFY_ENV": "testing", "DATABASE_URL": url, "JOBS_INLINE": "0"})
            with app.app_context(), db.connection_context():
                booked_slots = (
                    Booking.select()
                    .where((Booking.club_session == hot) & Booking.status.in_(ACTIVE_BOOKING_STATUSES))
                    .count()
                )
            check = subprocess.run(
                [sys.executable, "-m", "loafy.cli", "check"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            print(f"\nThe rush: {args.players} players, one session of {args.slots} slots, all at once")
            print(f"  booked slots          {booked_slots}  (201 answers: {len(booked)})")
            print(f"  'full' answers        {len(full)}")
            print(
                f"  errors                {len(errors)}  {sorted({(e['status'], e['code']) for e in errors})[:5]}"
            )
            print(
                f"  latency ms            p50 {percentile(latencies, 0.5) * 1000:.0f}"
                f"  p95 {percentile(latencies, 0.95) * 1000:.0f}  p99 {percentile(latencies, 0.99) * 1000:.0f}"
            )
            print(f"  sold out after        {sold_out_at * 1000:.0f} ms")
            print(
                f"  loafy check           exit {check.returncode}: {check.stdout.strip().splitlines()[-1:]}"
            )

            # Throughput ratios, same server, same settings, in alternating rounds (a shared machine's
            # speed drifts within seconds: each ratio compares runs a few seconds apart, and the
            # median round is reported); and where each request's CPU goes.
            pairs = [
                {
                    "method": "POST",
                    "path": "/api/bookings",
                    "token": token,
                    "json": {"session_id": session_id, "guest_count": 0, "payment_method": "stripe"},
                    "forwarded_for": f"10.9.{i % 256}.{n % 256}",
                }
                for n, session_id in enumerate(spare)
                for i, token in enumerate(tokens)
            ]
            endpoints = {
                "GET /ping": lambda _round: [{"path": "/ping"}] * 200_000,
                "GET /api/sessions": lambda _round: [{"path": "/api/sessions?per_page=20"}] * 200_000,
                # Each round its own (player, session) pairs; a player books about twice a round,
                # under the per-player limit over all rounds.
                "POST /api/bookings": lambda round_: pairs[round_ :: args.rounds],
            }
            rates = {name: [] for name in endpoints}
            cpu = {name: {} for name in endpoints}
            counts = dict.fromkeys(endpoints, 0)
            statuses = {}
            for round_ in range(args.rounds):
                for name, requests in endpoints.items():
                    before = cpu_by_part(web.pid, worker.pid)
                    plan = {
                        "requests": requests(round_),
                        "concurrency": args.concurrency,
                        "seconds": args.seconds,
                    }
                    result = run_load("steady", base, plan, tmp)
                    if name == "POST /api/bookings":
                        # Their e-mails are part of their cost, and must not slow the next round.
                        time.sleep(NEW_BOOKING_MAIL_DELAY.total_seconds())
                        wait_for_mail(url)
                    after = cpu_by_part(web.pid, worker.pid)
                    rates[name].append(result["count"] / result["seconds"])
                    counts[name] += result["count"]
                    for part in after:
                        cpu[name][part] = cpu[name].get(part, 0.0) + after[part] - before[part]
                    if name == "POST /api/bookings":
                        for status, n in result["statuses"].items():
                            statuses[status] = statuses.get(status, 0) + n
            cpu_per_request = {  # a process that exits takes its CPU with it: never below zero
                name: {
                    part: max(0.0, seconds) * 1000 / max(1, counts[name]) for part, seconds in parts.items()
                }
                for name, parts in cpu.items()
            }
            ping_rates = rates["GET /ping"]
            ratios = {
                name: sorted(rate / ping for rate, ping in zip(rates[name], ping_rates, strict=True))
                for name in rates
            }
            booking = statistics.median(rates["POST /api/bookings"])
            tps = pgbench_tps(url, args.concurrency, args.seconds, spare_sessions + 1, args.players, tmp)
            memory = rss_mb(web.pid)
            print(
                f"\nThroughput at {args.concurrency} connections, {args.rounds} rounds of "
                f"{args.seconds:.0f} s per endpoint; median round (all rounds)"
            )
            print(f"  {'endpoint':<34}{'req/s':>8}{'ratio to /ping':>16}")
            for name in endpoints:
                each = " / ".join(f"{r:.2f}" for r in ratios[name])
                label = "POST /api/bookings (no contention)" if name == "POST /api/bookings" else name
                print(
                    f"  {label:<34}{statistics.median(rates[name]):>8.0f}"
                    f"{statistics.median(ratios[name]):>16.2f}   ({each})"
                )
            print(f"  booking answers: {statuses}")
            print(
                f"  {'pgbench, same transaction':<34}{tps:>8.0f}   app booking / pgbench = {booking / tps:.2f}"
            )
            print_cpu_per_request(cpu_per_request)
            print(f"\nweb workers' memory (RSS): {', '.join(f'{m:.0f} MB' for m in memory)}")
        finally:
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            drop_database(handle)


if __name__ == "__main__":
    main()
