"""The app's booking endpoint against the floor (bench/floor.py), in one run, by wrk.

    .venv/bin/python bench/floor_vs_app.py [--seconds 5] [--rounds 3] [--connections 32]
                                           [--players 4999] [--sessions 101] [--worker]

One fresh PostgreSQL database with the app's tables, seeded once: players with API tokens, many
published sessions with room to spare. Both servers run under gunicorn with loafy/gunicorn_conf.py
(its workers and threads) and take turns, three rounds (the order alternates), each a wrk run of
N seconds at 32 connections (bench/booking.lua: every request its own (player, session) pair, so
no request is refused for a duplicate; the per-player rate limit stays on and never binds).
Non-2xx answers are counted and printed. The RQ worker is not started unless --worker (the
e-mails the app's bookings queue are then sent during the runs, as in production); the floor
sends none. Redis: db 13. Prints each run, the medians, and the ratio app / floor last.
"""

import argparse
import hashlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database, machine
from bench.rush import REDIS_URL, WORKER_COMMAND, cpu_by_part, server_env
from loafy.app import create_app
from loafy.clock import utcnow
from loafy.db import db
from loafy.dev.devserver import free_port
from loafy.dev.processes import children
from loafy.migrations import upgrade
from loafy.models import ApiToken, ClubSession, User

BIN = Path(sys.executable).parent
THREADS = 2  # wrk's own threads (one per core)


def seed(url, players, sessions):
    """(token lines, session id lines) of a fresh database."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # rate-limit counters of an earlier run
    app = create_app(
        {"LOAFY_ENV": "testing", "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "JOBS_INLINE": "0"}
    )
    now = utcnow()
    with app.app_context(), db.connection_context():
        upgrade()
        with db.atomic():
            for start in range(0, players, 1000):
                User.insert_many(
                    [
                        {"email": f"p{i}@bench.local", "name": f"Player {i}", "created_at": now}
                        for i in range(start, min(players, start + 1000))
                    ]
                ).execute()
            user_ids = [u.id for u in User.select(User.id).order_by(User.id)]
            raw = [f"lfy_{secrets.token_urlsafe(32)}" for _ in user_ids]
            rows = [
                {
                    "user": uid,
                    "name": "bench",
                    "token_hash": hashlib.sha256(t.encode()).hexdigest(),
                    "created_at": now,
                }
                for uid, t in zip(user_ids, raw, strict=True)
            ]
            for start in range(0, len(rows), 1000):
                ApiToken.insert_many(rows[start : start + 1000]).execute()
            ClubSession.insert_many(
                [
                    {
                        "title": f"Session {i}",
                        "starts_at": now + timedelta(days=2),
                        "ends_at": now + timedelta(days=2, hours=2),
                        "max_slots": 100_000,
                        "available_slots": 100_000,
                        "price": 100_000,
                        "status": "published",
                        "booking_opens_at": now - timedelta(hours=1),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(sessions)
                ]
            ).execute()
            session_ids = [s.id for s in ClubSession.select(ClubSession.id).order_by(ClubSession.id)]
    getattr(db.obj, "close_all", lambda: None)()
    return raw, [str(i) for i in session_ids]


def wait_http(url, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (405 for a GET on a POST route)
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def wrk(port, first, args, files):
    script = ROOT / "bench" / "booking.lua"
    command = [
        "wrk", "-t", str(THREADS), "-c", str(args.connections), "-d", f"{args.seconds}s", "--timeout", "10s",
        "-s", str(script), f"http://127.0.0.1:{port}/api/bookings", "--", *files, str(first), str(THREADS),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["sample"] = next((x[7:] for x in out.stdout.splitlines() if x.startswith("SAMPLE ")), "")
    result["rate"] = result["created"] / result["seconds"]
    return result


def profile(master_pid, seconds, folder):
    """py-spy record on each gunicorn worker for the run's duration (raw folded stacks in folder)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(BIN / "py-spy"),
                "record",
                "-d",
                str(seconds),
                "-r",
                "250",
                "-f",
                "raw",
                "--gil",
                "--nonblocking",
                "-o",
                f"{folder}/worker-{pid}.txt",
                "-p",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in children(master_pid)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--players", type=int, default=4999, help="coprime with --sessions")
    parser.add_argument("--sessions", type=int, default=101)
    parser.add_argument("--only", choices=("app", "floor"), help="run one server (for a profiler)")
    parser.add_argument(
        "--baseline", metavar="DIR", help="also serve the app from DIR (an export of an earlier commit)"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy each app worker in round 1 (raw stacks, GIL held: CPU)"
    )
    parser.add_argument(
        "--worker", action="store_true", help="run the RQ worker (e-mails sent during the runs)"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    pairs = args.players * args.sessions
    block = pairs // (3 * args.rounds)  # each run books its own block of (player, session) pairs
    children = []
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database("postgres", tmp)
        try:
            tokens, sessions = seed(url, args.players, args.sessions)
            files = [Path(tmp) / "tokens.txt", Path(tmp) / "sessions.txt"]
            files[0].write_text("\n".join(tokens) + "\n")
            files[1].write_text("\n".join(sessions) + "\n")
            files = [str(f) for f in files]
            servers = {}
            targets = [("app", "loafy.wsgi:app", ROOT), ("floor", "bench.floor:app", ROOT)]
            if args.baseline:  # gunicorn puts its working directory first on the path: that code runs
                targets.append(("before", "loafy.wsgi:app", Path(args.baseline).resolve()))
            for name, target, source in targets:
                if args.only not in (None, name):
                    continue
                port = free_port()
                env = server_env(url, port)
                gunicorn = [str(BIN / "gunicorn"), "--config", str(source / "loafy" / "gunicorn_conf.py")]
                web = subprocess.Popen(
                    [*gunicorn, target],
                    env=env,
                    cwd=source,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                children.append(web)
                servers[name] = (port, web)
                if name == "app" and args.worker:
                    worker = subprocess.Popen(
                        [*WORKER_COMMAND, "--url", REDIS_URL, "default", "mail"],
                        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    children.append(worker)
            for port, _web in servers.values():
                wait_http(f"http://127.0.0.1:{port}/api/bookings")
            # Warm-up: every thread of both servers connected, statements prepared, code loaded.
            for run, (port, _web) in enumerate(servers.values()):
                warm = argparse.Namespace(**{**vars(args), "seconds": 1})
                wrk(port, pairs - (run + 1) * 20_000, warm, files)
            results = {name: [] for name in servers}
            cpu = {name: [] for name in servers}
            block_index = 0
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in order:
                    port, web = servers[name]
                    spies = []
                    if args.profile and name == "app" and round_ == 0:
                        spies = profile(web.pid, args.seconds, args.profile)
                    before = cpu_by_part(web.pid, 0)
                    result = wrk(port, block_index * block, args, files)
                    for spy in spies:
                        spy.wait(timeout=60)
                    after = cpu_by_part(web.pid, 0)
                    block_index += 1
                    per = {
                        k: (after[k] - before[k]) * 1000 / max(1, result["requests"])
                        for k in ("web", "database")
                    }
                    results[name].append(result)
                    cpu[name].append(per)
                    print(
                        f"  round {round_ + 1} {name:<5} {result['rate']:>7.0f} bookings/s  "
                        f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                        f"201: {result['created']}  non-2xx: {result['other']} {result['statuses'] or ''}  "
                        f"socket errors: {result['socket_errors']}  CPU/request: web {per['web']:.2f} ms, "
                        f"PostgreSQL {per['database']:.2f} ms"
                    )
                    if result["sample"]:
                        print(f"    first refusal: {result['sample']}")
            print(
                f"\nMedians of {args.rounds} rounds, {args.seconds} s each, {args.connections} connections:"
            )
            medians = {}
            for name in servers:
                medians[name] = statistics.median(r["rate"] for r in results[name])
                non_2xx = sum(r["other"] for r in results[name])
                web_ms = statistics.median(c["web"] for c in cpu[name])
                db_ms = statistics.median(c["database"] for c in cpu[name])
                print(
                    f"  {name:<5} {medians[name]:>7.0f} bookings/s   non-2xx over all rounds: {non_2xx}   "
                    f"CPU per booking: web {web_ms:.2f} ms, PostgreSQL {db_ms:.2f} ms"
                )
            if args.only:
                return
            per_round = [a["rate"] / f["rate"] for a, f in zip(results["app"], results["floor"], strict=True)]
            print(f"  per round: {' / '.join(f'{r:.2f}' for r in per_round)}")
            if "before" in medians:
                print(f"before / floor = {medians['before'] / medians['floor']:.2f}")
                print(f"app / before = {medians['app'] / medians['before']:.2f}")
            print(f"app / floor = {medians['app'] / medians['floor']:.2f}")
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
