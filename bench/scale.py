"""Scale: the pages with 1,000 sessions and 200,000 bookings, the expiry sweep, a web worker's memory.

    .venv/bin/python bench/scale.py [--skip-sqlite] [--skip-postgres] [--requests 200]

For PostgreSQL (a fresh database on BENCH_PG_URL, dropped at the end) and SQLite: bulk-inserts 1,000
sessions, 2,002 users and 200,000 bookings of every status (10,000 of them pending past their
deadline; every session's available_slots agrees with invariant 1), then measures

- each page's server time (inside the WSGI app, Flask test client in-process; p50/p95/p99 over
  --requests requests) and its query count, which must equal the count on a tiny club (3 sessions,
  15 bookings) measured before the bulk insert;
- `expire_unpaid(now)` releasing the 10,000 overdue bookings, then `find_violations()`;
- the web workers' memory: gunicorn with loafy/gunicorn_conf.py on the same database, warmed with a
  few hundred requests to the same pages, VmRSS of each worker.

Targets (2 cores): pages under 50 ms p99 with constant query counts; expiry under 2 s; a worker
under 100 MB. Loopback only; every loop is bounded in count and time.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database, machine, percentile
from bench.rush import BIN, REDIS_URL, rss_mb, server_env, wait_http
from loafy import clock
from loafy.app import create_app
from loafy.booking.bookings import expire_unpaid
from loafy.checks import find_violations
from loafy.db import db, is_postgres
from loafy.dev.devserver import free_port
from loafy.migrations import upgrade
from loafy.models import ACTIVE_BOOKING_STATUSES, Booking, ClubSession, LedgerEntry, User
from loafy.people.web_sessions import COOKIE_KEY, open_session

SESSIONS = 1_000
PER_SESSION = 200  # bookings per session: 200,000 in all
PLAYERS = 2_000  # plus the busy player (a booking in every session) and the admin
OVERDUE_EVERY = 10  # one booking in ten of an upcoming session is pending past its deadline
MAX_SLOTS = 800
CHUNK = 1_000
TINY_SESSIONS = (500, 501, 502)  # the club before the bulk insert: these sessions...
TINY_BOOKINGS = 5  # ...with this many bookings each
BUSY = 500  # the first upcoming session, nearly full
SECRET_KEY = "bench-secret"  # the same as bench.rush.server_env: session cookies work on gunicorn too

PAGE_TARGET_MS = 50
EXPIRY_TARGET_S = 2.0
RSS_TARGET_MB = 100
PAGE_SECONDS = 60  # at most this long on one page, however many requests were asked for
WARM_REQUESTS = 360
WARM_SECONDS = 120


def make_app(url, tmp, now):
    app = create_app(
        {
            "LOAFY_ENV": "testing",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp),
            "MAIL_OUTBOX": str(Path(tmp) / "outbox"),
            "REDIS_URL": REDIS_URL,
            "JOBS_INLINE": "0",
            "SECRET_KEY": SECRET_KEY,
        }
    )
    clock.freeze(now)
    return app


# --- the data ----------------------------------------------------------------------------------


def session_row(i, now, admin_id):
    starts = now + timedelta(hours=4 * (i - BUSY) + 2)  # half past, half upcoming; BUSY is the next one
    return {
        "title": f"Scale session {i}",
        "location": "Sân Phú Thọ",
        "starts_at": starts,
        "ends_at": starts + timedelta(hours=2),
        "max_slots": MAX_SLOTS,
        "available_slots": MAX_SLOTS,  # set from the bookings afterwards (invariant 1)
        "price": 100_000,
        "status": "published" if starts > now else "completed",
        "booking_opens_at": starts - timedelta(days=14),
        "created_by": admin_id,
        "created_at": starts - timedelta(days=20),
        "updated_at": starts - timedelta(days=20),
    }


def booking_rows(i, session_id, starts_at, players, now, ks):
    """Session i's bookings number k in `ks`; k = 0 is the busy player, k % 10 = 1 is overdue if upcoming."""
    upcoming = starts_at > now
    rows = []
    for k in ks:
        n = i * PER_SESSION + k
        guests = n % 4
        method = ("stripe", "bank_transfer", "cash")[n % 3]
        # Booked between the opening (two weeks before) and the start or now, spread over that span;
        # pending ones in the last hour, each with its own deadline 30 minutes later.
        opens = min(starts_at - timedelta(days=14), now - timedelta(days=1))
        created = opens + (min(starts_at, now) - opens) * (k / PER_SESSION)
        spread = timedelta(milliseconds=k * SESSIONS + i)  # at most 200 s
        recent = now - timedelta(minutes=31) - spread
        if upcoming and k % OVERDUE_EVERY == 1:
            status, created = "pending_payment", recent
        elif upcoming:
            status = ("confirmed", "confirmed", "pending_payment", "cancelled", "expired")[n % 5]
            if status == "pending_payment":
                created = now - timedelta(minutes=10) - spread  # due in 20 minutes or so
        else:
            status = ("confirmed", "confirmed", "confirmed", "cancelled", "expired")[n % 5]
        deadline = created + timedelta(minutes=30) if status == "pending_payment" else None
        player = players[0] if k == 0 else players[1 + (i * 7 + k) % PLAYERS]
        rows.append(
            {
                "code": f"S{n:07d}",
                "user": player,
                "club_session": session_id,
                "guest_count": guests,
                "slots": 1 + guests,
                "unit_price": 100_000,
                "amount": (1 + guests) * 100_000,
                "payment_method": method,
                "status": status,
                "payment_status": "paid" if status == "confirmed" else "unpaid",
                "payment_deadline": deadline,
                "created_at": created,
                "updated_at": created,
                "confirmed_at": created if status == "confirmed" else None,
                "cancelled_at": created + timedelta(hours=1) if status == "cancelled" else None,
                "expired_at": created + timedelta(minutes=30) if status == "expired" else None,
            }
        )
    return rows


def ledger_rows(bookings):
    return [
        {
            "booking": None,  # set after insert (ids are read back by code)
            "code": b["code"],
            "kind": "payment",
            "provider": b["payment_method"],
            "provider_id": f"{b['payment_method']}:{b['code']}",
            "amount": b["amount"],
            "status": "succeeded",
            "created_at": b["created_at"],
        }
        for b in bookings
        if b["status"] == "confirmed"
    ]


def insert_chunks(model, rows):
    for start in range(0, len(rows), CHUNK):
        model.insert_many(rows[start : start + CHUNK]).execute()


def insert_bookings(rows):
    """Bookings, then a succeeded payment in the ledger for each confirmed one."""
    insert_chunks(Booking, rows)
    ledger = ledger_rows(rows)
    ids = {}
    codes = [entry["code"] for entry in ledger]
    for start in range(0, len(codes), CHUNK):
        ids.update(
            Booking.select(Booking.code, Booking.id)
            .where(Booking.code.in_(codes[start : start + CHUNK]))
            .tuples()
        )
    for entry in ledger:
        entry["booking"] = ids[entry.pop("code")]
    insert_chunks(LedgerEntry, ledger)


def settle_available_slots():
    """available_slots = max_slots − active slots, for every session in one statement (invariant 1)."""
    statuses = ", ".join(f"'{s}'" for s in ACTIVE_BOOKING_STATUSES)
    sql = (
        "UPDATE club_sessions SET available_slots = max_slots - COALESCE((SELECT SUM(b.slots) FROM bookings b"
        " WHERE b.club_session_id = club_sessions.id AND b.status IN ({})), 0)"
    )
    db.execute_sql(sql.format(statuses))


def seed_people(now):
    with db.atomic():
        admin = User.create(email="admin@scale.local", name="Scale Admin", role="admin", created_at=now)
        busy = User.create(email="busy@scale.local", name="Busy Player", created_at=now)
        insert_chunks(
            User,
            [
                {"email": f"p{i}@scale.local", "name": f"Player {i}", "created_at": now}
                for i in range(PLAYERS)
            ],
        )
    others = [u for (u,) in User.select(User.id).where(User.email.startswith("p")).order_by(User.id).tuples()]
    return admin, busy, [busy.id, *others]


def seed_sessions(indexes, now, admin_id):
    rows = [session_row(i, now, admin_id) for i in indexes]
    insert_chunks(ClubSession, rows)
    titles = [r["title"] for r in rows]
    found = {}
    for start in range(0, len(titles), CHUNK):
        query = ClubSession.select(ClubSession.title, ClubSession.id, ClubSession.starts_at).where(
            ClubSession.title.in_(titles[start : start + CHUNK])
        )
        found.update((title, (sid, starts)) for title, sid, starts in query.tuples())
    return {i: found[f"Scale session {i}"] for i in indexes}


def seed_tiny(now):
    """The club before the bulk insert: 3 sessions, 15 bookings (the busy player in each)."""
    admin, busy, players = seed_people(now)
    with db.atomic():
        sessions = seed_sessions(TINY_SESSIONS, now, admin.id)
        rows = []
        for i, (sid, starts) in sessions.items():
            rows += booking_rows(i, sid, starts, players, now, range(TINY_BOOKINGS))
        insert_bookings(rows)
        settle_available_slots()
    return admin, busy, players, sessions


def seed_bulk(now, admin, players, tiny_sessions):
    """The rest: 997 more sessions and 199,985 more bookings; the busy session nearly full."""
    with db.atomic():
        rest = [i for i in range(SESSIONS) if i not in TINY_SESSIONS]
        sessions = {**tiny_sessions, **seed_sessions(rest, now, admin.id)}
        batch = []
        for i, (sid, starts) in sorted(sessions.items()):
            start = TINY_BOOKINGS if i in TINY_SESSIONS else 0
            batch += booking_rows(i, sid, starts, players, now, range(start, PER_SESSION))
            if len(batch) >= 20 * CHUNK:
                insert_bookings(batch)
                batch = []
        insert_bookings(batch)
        settle_available_slots()
        busy_id = sessions[BUSY][0]
        ClubSession.update(
            max_slots=ClubSession.max_slots - ClubSession.available_slots + 3, available_slots=3
        ).where(ClubSession.id == busy_id).execute()
    if is_postgres():
        db.execute_sql("ANALYZE")
    return sessions


# --- measuring pages ---------------------------------------------------------------------------


class Meter:
    """Wraps the WSGI app and the database: per request, the time inside the app and the statements."""

    def __init__(self, app):
        self.app = app
        self.inner = app.wsgi_app
        self.statements = []
        self.last = None
        app.wsgi_app = self
        database = db.obj
        original = database.execute_sql

        def counting(sql, params=None, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(sql, params, *args, **kwargs)
            finally:
                self.statements.append((time.perf_counter() - started, sql))

        database.execute_sql = counting

    def __call__(self, environ, start_response):
        self.statements = []
        started = time.perf_counter()
        body = self.inner(environ, start_response)
        self.last = (time.perf_counter() - started, self.statements)
        return body

    def close(self):
        self.app.wsgi_app = self.inner
        del db.obj.execute_sql  # back to the class's method


def signed_in(app, user):
    client = app.test_client()
    if user is not None:
        key = open_session(user, clock.utcnow())
        with client.session_transaction() as session:  # as tests/helpers.py's login
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
            session[COOKIE_KEY] = key
    return client


def page_plan(busy, admin, sessions, booking_id):
    """(label, path, who) for every page measured; who is 'player', 'admin' or None."""
    busy_session = sessions[BUSY][0]
    return [
        ("/ (anonymous)", "/", None),
        ("/", "/", "player"),
        ("/sessions", "/sessions", "player"),
        ("/sessions/<busy>", f"/sessions/{busy_session}", "player"),
        ("/bookings", "/bookings", "player"),
        ("/bookings/<id>", f"/bookings/{booking_id}", "player"),
        ("/api/sessions", "/api/sessions", "player"),
        ("/api/bookings", "/api/bookings", "player"),
        ("/admin/bookings/", "/admin/bookings/", "admin"),
        ("/admin/", "/admin/", "admin"),
    ]


def count_pages(app, meter, clients, plan):
    counts = {}
    for label, path, who in plan:
        response = clients[who].get(path)
        assert response.status_code == 200, (label, response.status_code)
        counts[label] = len(meter.last[1])
    return counts


def time_pages(app, meter, clients, plan, requests):
    results = {}
    for label, path, who in plan:
        client = clients[who]
        for _ in range(3):  # warm the caches and the connection
            client.get(path)
        times, counts, slowest = [], set(), {}
        stop_at = time.perf_counter() + PAGE_SECONDS
        for _ in range(requests):
            response = client.get(path)
            assert response.status_code == 200, (label, response.status_code)
            elapsed, statements = meter.last
            times.append(elapsed)
            counts.add(len(statements))
            for seconds, sql in statements:
                slowest[sql] = max(slowest.get(sql, 0), seconds)
            if time.perf_counter() > stop_at:
                break
        worst_sql = max(slowest.items(), key=lambda item: item[1]) if slowest else ("", 0)
        results[label] = {
            "n": len(times),
            "p50": percentile(times, 0.5) * 1000,
            "p95": percentile(times, 0.95) * 1000,
            "p99": percentile(times, 0.99) * 1000,
            "queries": sorted(counts),
            "slowest_ms": worst_sql[1] * 1000,
            "slowest_sql": worst_sql[0],
        }
        print(
            f"  {label:<20} p99 {results[label]['p99']:6.1f} ms, {results[label]['queries']} queries",
            flush=True,
        )
    return results


# --- the web workers' memory -------------------------------------------------------------------


def cookie_for(app, user):
    client = signed_in(app, user)
    client.get("/ping")
    return client.get_cookie("session").value


def web_worker_memory(url, plan, cookies):
    """Start gunicorn on the database, warm every page, return (RSS of each worker in MB, statuses)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(ROOT / "loafy" / "gunicorn_conf.py"), "loafy.wsgi:app"],
        env=server_env(url, port),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    statuses = {}
    try:
        wait_http(base + "/ping")
        lock = threading.Lock()
        stop_at = time.monotonic() + WARM_SECONDS
        jobs = iter([plan[n % len(plan)] for n in range(WARM_REQUESTS)])

        def worker():
            while time.monotonic() < stop_at:
                with lock:
                    job = next(jobs, None)
                if job is None:
                    return
                _label, path, who = job
                request = urllib.request.Request(base + path)
                if who is not None:
                    request.add_header("Cookie", f"session={cookies[who]}")
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        response.read()
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError:
                    status = 0
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WARM_SECONDS + 30)
        return rss_mb(web.pid), statuses
    finally:
        web.terminate()
        try:
            web.wait(timeout=20)
        except subprocess.TimeoutExpired:
            web.kill()


# --- one database ------------------------------------------------------------------------------


def bench(kind, requests):
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        url, handle = fresh_database(kind, tmp)
        try:
            app = make_app(url, tmp, now)
            with app.app_context(), db.connection_context():
                upgrade()
                admin, busy, players, tiny_sessions = seed_tiny(now)
                booking_id = (
                    Booking.select(Booking.id)
                    .where((Booking.user == busy.id) & (Booking.club_session == tiny_sessions[BUSY][0]))
                    .scalar()
                )
            # No app context stays pushed while the client runs (g would leak between clients).
            meter = Meter(app)
            clients = {
                None: signed_in(app, None),
                "player": signed_in(app, busy),
                "admin": signed_in(app, admin),
            }
            plan = page_plan(busy, admin, tiny_sessions, booking_id)
            tiny = count_pages(app, meter, clients, plan)

            print(f"  seeding {SESSIONS} sessions and {SESSIONS * PER_SESSION} bookings…", flush=True)
            started = time.perf_counter()
            with app.app_context(), db.connection_context():
                seed_bulk(now, admin, players, tiny_sessions)
                totals = {
                    "sessions": ClubSession.select().count(),
                    "bookings": Booking.select().count(),
                    "players": User.select().count(),
                    "ledger": LedgerEntry.select().count(),
                    "busy player's bookings": Booking.select().where(Booking.user == busy.id).count(),
                    "overdue": Booking.select()
                    .where((Booking.status == "pending_payment") & (Booking.payment_deadline <= now))
                    .count(),
                }
                violations = find_violations()
            print(f"  seeded in {time.perf_counter() - started:.0f} s: {totals}", flush=True)
            assert totals["bookings"] == SESSIONS * PER_SESSION, totals
            assert not violations, violations[:3]

            pages = time_pages(app, meter, clients, plan, requests)
            cookies = {who: cookie_for(app, user) for who, user in (("player", busy), ("admin", admin))}
            meter.close()
            for label, big in pages.items():
                big["tiny"] = tiny[label]

            with app.app_context(), db.connection_context():
                started = time.perf_counter()
                released = expire_unpaid(now)
                elapsed = time.perf_counter() - started
                after = find_violations()
            expiry = {
                "overdue": totals["overdue"],
                "released": len(released),
                "seconds": elapsed,
                "violations": len(after),
            }
            print(f"  expire_unpaid: {expiry}", flush=True)
            db.close() if not db.is_closed() else None
            getattr(db.obj, "close_all", lambda: None)()

            memory, statuses = web_worker_memory(url, plan, cookies)
            print(f"  web workers: {memory} MB after {statuses}", flush=True)
            return {"kind": kind, "pages": pages, "expiry": expiry, "memory": memory, "statuses": statuses}
        finally:
            db.close() if not db.is_closed() else None
            getattr(db.obj, "close_all", lambda: None)()
            drop_database(handle)


# --- the report --------------------------------------------------------------------------------


def short_sql(sql):
    """The statement without its column list, which is most of its length."""
    return re.sub(r"^SELECT (.{60}).*? FROM ", r"SELECT \1… FROM ", sql, count=1)[:400]


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(results, requests, verbose):
    print(f"\nmachine: {machine()}")
    print(
        f"data: {SESSIONS} sessions, {SESSIONS * PER_SESSION} bookings, {PLAYERS + 2} users; "
        f"the player has a booking in every session; server time over {requests} requests per page"
    )
    for result in results:
        kind = result["kind"]
        print(f"\n{kind}: pages (server time in ms; queries with 200,000 bookings vs a 15-booking club)")
        print(
            f"  {'page':<20}{'p50':>7}{'p95':>7}{'p99':>7}{'queries':>9}{'tiny':>6}"
            f"{'slowest SQL':>13}  {'target':<32}result"
        )
        for label, row in result["pages"].items():
            queries = "/".join(str(q) for q in row["queries"])
            constant = row["queries"] == [row["tiny"]]
            fast = row["p99"] < PAGE_TARGET_MS
            print(
                f"  {label:<20}{row['p50']:>7.1f}{row['p95']:>7.1f}{row['p99']:>7.1f}{queries:>9}{row['tiny']:>6}"
                f"{row['slowest_ms']:>11.1f}ms  {'p99 < 50 ms, queries = tiny':<32}"
                f"{verdict(fast and constant)}"
                + ("" if fast else " (slow)")
                + ("" if constant else " (queries grew)")
            )
            if verbose or not fast:
                print(f"      slowest statement: {short_sql(row['slowest_sql'])}")
        expiry = result["expiry"]
        ok = (
            expiry["seconds"] < EXPIRY_TARGET_S
            and expiry["released"] == expiry["overdue"] == 10_000
            and expiry["violations"] == 0
        )
        print(f"\n{kind}: expire_unpaid")
        print(f"  {'overdue':>9}{'released':>10}{'seconds':>9}{'violations':>12}  {'target':<32}result")
        print(
            f"  {expiry['overdue']:>9}{expiry['released']:>10}{expiry['seconds']:>9.2f}{expiry['violations']:>12}"
            f"  {'10,000 in < 2 s, 0 violations':<32}{verdict(ok)}"
        )
        print(
            f"\n{kind}: web workers (gunicorn, loafy/gunicorn_conf.py; warm-up statuses {result['statuses']})"
        )
        print(f"  {'worker':<9}{'RSS MB':>8}  {'target':<32}result")
        for n, rss in enumerate(result["memory"], 1):
            print(f"  {n:<9}{rss:>8.0f}  {'< 100 MB':<32}{verdict(rss < RSS_TARGET_MB)}")
        if not result["memory"]:
            print("  no worker found                       MISS")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every page's slowest statement")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    kinds = ([] if args.skip_postgres else ["postgres"]) + ([] if args.skip_sqlite else ["sqlite"])
    results = []
    for kind in kinds:
        print(f"{kind}…", flush=True)
        results.append(bench(kind, max(1, min(args.requests, 10_000))))
    report(results, args.requests, args.verbose)


if __name__ == "__main__":
    main()
