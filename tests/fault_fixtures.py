"""Real processes and servers for the fault suite, each one ours to break.

- `RedisServer`: a private `redis-server` on a free loopback port (never the shared one on 6379).
- `PostgresCluster`: a throwaway PostgreSQL cluster (initdb as the `postgres` OS user, since
  initdb refuses root) on a free port, so it can be stopped and restarted under load.
- `SlowServer`: accepts HTTP connections and answers nothing for longer than a client timeout.
- `start_gunicorn`: the Procfile's web process (loafy/gunicorn_conf.py) against a given database.
- Child-process bodies (`child_expire_unpaid`, `child_send_notification`) for multiprocessing
  "spawn": they pause inside the operation and signal the parent, which SIGKILLs them there.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from loafy.dev.processes import children
from tests.stripe_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until(predicate, timeout, message, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def port_accepts(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def stop_process(process, timeout=10):
    """Terminate one process we started (then kill it if it lingers)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# --- Redis ---------------------------------------------------------------------------------------


class RedisServer:
    """A private, non-persistent redis-server on 127.0.0.1; kill() and start() at will."""

    def __init__(self):
        self.executable = shutil.which("redis-server")
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        if self.executable is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_accepts(self.port), 10, f"redis-server on port {self.port}")
        return self

    def kill(self):
        """SIGKILL: the abrupt loss a crash or a network cut looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        wait_until(lambda: not port_accepts(self.port), 5, "redis-server to go away")

    def stop(self):
        stop_process(self.process, timeout=5)


# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A throwaway cluster owned by the `postgres` OS user, trust auth, loopback only."""

    def __init__(self):
        self.bindir = _pg_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="loafy-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def _as_postgres(self, *args, timeout=60, check=True):
        command = ["runuser", "-u", "postgres", "--", *map(str, args)]
        if os.geteuid() != 0:
            command = list(map(str, args))  # already an ordinary user: run it directly
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)

    def init(self):
        """initdb, or a skip naming why it cannot work on this machine."""
        if self.bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb) are not installed")
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: initdb cannot run as another user")
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except (LookupError, PermissionError) as exc:
                pytest.skip(f"cannot hand the cluster directory to the postgres user: {exc}")
        try:
            self._as_postgres(
                self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"
            )
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            pytest.skip(f"initdb cannot run here: {detail.strip().splitlines()[-1:]}")
        return self

    def _options(self):
        # fsync off: a throwaway cluster; the restart under test is a clean (fast) shutdown anyway.
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start(self):
        self._as_postgres(
            self.bindir / "pg_ctl", "-D", self.data, "-o", self._options(), "-l", self.log, "-w", "start"
        )
        return self

    def stop(self, mode="fast", check=True):
        return self._as_postgres(
            self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=check
        )

    def url(self, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def destroy(self):
        self.stop("immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


# --- gunicorn ------------------------------------------------------------------------------------


def production_env(database_url, redis_url, port, tmp):
    """The web process's environment in production mode (like bench/rush.py's server_env)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "OIDC_", "GOOGLE_", "FACEBOOK_", "APPLE_", "SMTP_", "RATELIMIT_"))
    }
    env.update(
        {
            "LOAFY_ENV": "production",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "faults-secret",
            "STRIPE_SECRET_KEY": "sk_test_faults",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_faults",
            "STRIPE_WEBHOOK_SECRET": "whsec_faults",
            "BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "TRUSTED_PROXIES": "1",  # one X-Forwarded-For per simulated player: per-IP limits stay clear
            "MAIL_OUTBOX": str(Path(tmp) / "outbox"),
            "INSTANCE_PATH": str(Path(tmp) / "instance"),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "4",
            "DB_POOL_SIZE": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_gunicorn(env, port, log_path):
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through stop_gunicorn
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            str(ROOT / "loafy" / "gunicorn_conf.py"),
            "--bind",
            f"127.0.0.1:{port}",  # loopback only, whatever the config file says
            "--no-control-socket",  # the default path in $HOME is shared with any other gunicorn
            "loafy.wsgi:app",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_file = log
    return process


def gunicorn_workers(master_pid):
    """The worker pids (children of the gunicorn master)."""
    return set(children(master_pid))


def stop_gunicorn(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    process.log_file.close()


# --- a slow HTTP peer ----------------------------------------------------------------------------


class SlowServer:
    """Accepts connections, reads the request, then says nothing for `delay` seconds and hangs up.

    What a Stripe that stopped answering looks like from the client: connect succeeds, read times out.
    """

    def __init__(self, delay=10.0):
        self.delay = delay
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._stall, args=(conn,), daemon=True).start()

    def _stall(self, conn):
        with conn:
            conn.settimeout(1.0)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            self._stop.wait(self.delay)


# --- child processes killed in the middle of a job -----------------------------------------------


def _child_app(database_url, instance):
    from loafy.app import create_app

    # Redis on a closed port: the child's after-commit enqueues fail (logged), nothing leaves it.
    return create_app(
        {
            "LOAFY_ENV": "testing",
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": instance,
            "MAIL_OUTBOX": str(Path(instance) / "outbox"),
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "JOBS_INLINE": "0",
        }
    )


def child_expire_unpaid(database_url, instance, now, pause_in_batch, paused):
    """expire_unpaid, one session per transaction; stops dead inside batch `pause_in_batch`.

    The pause comes after that batch has expired its rows and returned their slots but before its
    commit, so a SIGKILL there leaves an open transaction behind: the test's "killed mid-job".
    """
    from loafy.booking import bookings
    from loafy.db import db

    app = _child_app(database_url, instance)
    original = bookings._release_overdue
    batches = {"n": 0}

    def release_then_pause(session_ids, when):
        codes = original(session_ids, when)
        batches["n"] += 1
        if batches["n"] == pause_in_batch:
            paused.set()
            time.sleep(120)  # the parent kills us here
        return codes

    bookings._release_overdue = release_then_pause
    with app.app_context(), db.connection_context():
        bookings.expire_unpaid(now, sessions_per_transaction=1)


def child_send_notification(database_url, instance, notification_id, now, paused):
    """send_notification, stopping dead in the SMTP call (after the claim, before 'sent')."""
    from loafy import notifications
    from loafy.db import db

    app = _child_app(database_url, instance)

    def stalled_send(*args, **kwargs):
        paused.set()
        time.sleep(120)  # the parent kills us here

    notifications.send_email = stalled_send
    with app.app_context(), db.connection_context():
        notifications.send_notification(notification_id, now)
