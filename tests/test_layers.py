"""The layers (DESIGN.md "Layers"): Core imports no face, faces never import each other, only the
wiring may; a worker's app is Core alone; `import loafy` loads nothing else."""

import ast
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from loafy.booking.bookings import book_session
from loafy.models import Notification

ROOT = Path(__file__).resolve().parent.parent
FACES = ("admin", "public", "jobs")
PARTS = ("loafy", *FACES)
# The wiring: the only modules of loafy/ that may import a face (they put the app together).
WIRING = {"loafy/app.py", "loafy/wsgi.py", "loafy/cli.py", "loafy/gunicorn_conf.py"}
WIRING_DIRS = ("loafy/dev/",)
# Loaded by the web app only: a worker or a bare `import loafy` must never load them.
WEB_ONLY_MODULES = ("flask_admin", "authlib.integrations.flask_client")


def imported_modules(tree, rel):
    """(line, dotted module) for every import in a module's tree, at any depth: `import x`,
    `from x import y` (relative ones resolved against the file's package) and
    importlib.import_module / __import__ of a constant name."""
    package = rel[: -len(".py")].split("/")[:-1]  # a package's __init__ and its modules share it
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            up = node.level - 1  # `from .` is the package itself, each further dot one level up
            base = (package[: len(package) - up] if up <= len(package) else []) if node.level else []
            if node.module:
                yield node.lineno, ".".join([*base, *node.module.split(".")])
            else:  # `from . import x` / `from .. import public`: each name may be a module
                for alias in node.names:
                    yield node.lineno, ".".join([*base, alias.name])
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            yield node.lineno, node.args[0].value


def _dynamic_import(call):
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    return (
        name in ("import_module", "__import__")
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    )


def part_of(rel):
    """loafy (Core), a face, or None for the wiring."""
    if rel in WIRING or rel.startswith(WIRING_DIRS):
        return None
    return rel.split("/")[0]


def layer_breaks(root):
    """Every import across the layers under `root`, as "path:line part imports other (module)";
    and how many files were read."""
    breaks, files = [], 0
    for top in PARTS:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            me = part_of(rel)
            if me is None:
                continue
            files += 1
            tree = ast.parse(path.read_text(encoding="utf-8"), rel)
            for line, module in imported_modules(tree, rel):
                other = module.split(".")[0]
                if other in FACES and other != me:  # Core imports no face; a face no other face
                    breaks.append(f"{rel}:{line} {me} imports {other} ({module})")
    return breaks, files


def test_no_import_crosses_the_layers():
    breaks, files = layer_breaks(ROOT)
    assert files > 50  # the walk saw the code, not an empty folder
    assert breaks == []


REQUEST_STATE = {"flask": {"request", "session", "g"}, "flask_login": {"current_user"}}


def test_only_the_web_helpers_read_the_request_in_core():
    """Services take the actor and `now` as arguments; the request is read by the faces and by
    loafy/web (the guard, the reader's language) alone."""
    readers = []
    for path in sorted((ROOT / "loafy").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if part_of(rel) is None or rel.startswith("loafy/web/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
            if isinstance(node, ast.ImportFrom) and node.module in REQUEST_STATE:
                names = {alias.name for alias in node.names} & REQUEST_STATE[node.module]
                readers += [f"{rel}:{node.lineno} {node.module}.{name}" for name in sorted(names)]
            elif isinstance(node, ast.Attribute) and node.attr in REQUEST_STATE.get(_name(node.value), ()):
                readers.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
    assert readers == []


def _name(node):
    return node.id if isinstance(node, ast.Name) else None


def test_the_walk_catches_every_kind_of_crossing_import(tmp_path):
    """The checker itself: a planted crossing import of each kind is reported, allowed ones are not."""
    plants = {
        "loafy/__init__.py": "",
        "loafy/rules.py": "def f():\n    import admin.views\n",  # inside a function
        "loafy/hooks.py": "import importlib\nimportlib.import_module('public.pages')\n",
        "loafy/app.py": "import admin\nimport public\n",  # the wiring may
        "loafy/dev/run.py": "from jobs import cron\n",  # so may loafy dev
        "admin/__init__.py": "from .views import x\n",  # admin.views: its own face
        "admin/views.py": "from loafy.web.guards import deny\nfrom ..public import formatting\n",
        "admin/sub/__init__.py": "from .. import base\n",  # admin.base
        "admin/sub/deep.py": "from ... import jobs\n",  # resolved to the top: jobs
        "public/pages.py": "if True:\n    from jobs.tasks import expire_unpaid\n",
        "jobs/tasks.py": "from loafy import queue\nimport loafy.db\n",
    }
    for rel, text in plants.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    breaks, files = layer_breaks(tmp_path)
    assert files == len(plants) - 2  # the two wiring files are not checked
    assert sorted(breaks) == [
        "admin/sub/deep.py:1 admin imports jobs (jobs)",
        "admin/views.py:2 admin imports public (public)",
        "loafy/hooks.py:2 loafy imports public (public.pages)",
        "loafy/rules.py:2 loafy imports admin (admin.views)",
        "public/pages.py:2 public imports jobs (jobs.tasks)",
    ]


def _python(code, env=None, timeout=120):
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


LOADED = """
import json, sys
print(json.dumps(sorted(sys.modules)))
"""


def test_import_loafy_loads_no_face_and_no_app():
    loaded = set(_python("import loafy" + LOADED))
    assert not loaded & {*FACES, "loafy.app", *WEB_ONLY_MODULES, "flask"}


def test_the_clock_loads_no_web():
    """`rq cron jobs.cron` imports the schedule and the jobs it names, and nothing of the web."""
    loaded = set(_python("import jobs.cron" + LOADED))
    assert "jobs.tasks" in loaded
    assert not loaded & {"admin", "public", *WEB_ONLY_MODULES}


@pytest.fixture
def app_config(app_config, redis_url):
    """Jobs go to the real Redis, for the worker to run (not inline in the test's app)."""
    return dict(app_config, REDIS_URL=redis_url, JOBS_INLINE="0")


WORKER = """
import json, os, sys
from redis import Redis
from rq import Queue, SimpleWorker

connection = Redis.from_url(os.environ["REDIS_URL"])
queue = Queue("mail", connection=connection)
first, second = os.environ["BOOKING_IDS"].split(",")

# The Procfile's worker: it builds the Core app before its first job, then forks a horse per job.
from jobs.worker import Worker

worker = Worker([queue], connection=connection)
forked = queue.enqueue("jobs.tasks.send_booking_notifications", int(first))
worker.work(burst=True)
# The same job run in this process, where what it loads can be seen (a horse's modules cannot).
here = queue.enqueue("jobs.tasks.send_booking_notifications", int(second))
SimpleWorker([queue], connection=connection).work(burst=True)

from flask_babel import force_locale
from jobs.runtime import get_app

app = get_app()
with app.app_context(), force_locale("vi"):  # a job writing to a Vietnamese reader
    words = app.jinja_env.from_string("{{ _('Sorry, this session is full.') }}").render()
print(json.dumps({
    "sent": [job.return_value() for job in (forked, here)],
    "words": words,
    "modules": sorted(sys.modules),
    "blueprints": sorted(app.blueprints),
    "rules": [rule.rule for rule in app.url_map.iter_rules()],
}))
"""


def test_a_worker_sends_e_mails_from_a_core_app_without_the_web(
    app_config, app, factory, now, redis_url, redis_conn, tmp_path
):
    club_session = factory.club_session(allow_pay_at_door=True)
    bookings = [
        book_session(factory.user(email=f"{name}@example.com"), club_session, 0, "cash", now)
        for name in ("an", "binh")
    ]
    # Due long ago, whatever the worker's own clock says (it is not frozen like the test's).
    Notification.update(send_after=datetime(2000, 1, 1)).execute()
    outbox = tmp_path / "worker-outbox"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LOAFY_ENV": "testing",
        "DATABASE_URL": app_config["DATABASE_URL"],
        "INSTANCE_PATH": str(tmp_path / "worker"),
        "MAIL_OUTBOX": str(outbox),
        "BASE_URL": "http://localhost",
        "REDIS_URL": redis_url,
        "JOBS_INLINE": "0",
        "BOOKING_IDS": ",".join(str(booking.id) for booking in bookings),
    }
    report = _python(WORKER, env=env)
    assert report["sent"] == [1, 1]  # one e-mail each: by a forked work horse, then in-process
    for booking in bookings:
        confirmed = Notification.get(
            (Notification.booking == booking.id) & (Notification.kind == "booking_confirmed")
        )
        assert confirmed.sent_at is not None and confirmed.to_email == booking.user.email
    mails = sorted(path.read_text() for path in outbox.glob("*.eml"))
    assert len(mails) == 2 and all(any(b.code in mail for mail in mails) for b in bookings)
    loaded = set(report["modules"])
    assert not loaded & {"admin", "public", *WEB_ONLY_MODULES}
    assert report["blueprints"] == [] and report["rules"] == []  # no pages, not even static files
    assert report["words"] == "Rất tiếc, buổi này đã hết chỗ."  # translations work without the web


def test_help_lists_the_commands_with_no_environment(tmp_path):
    """With nothing set (production, no SECRET_KEY) `loafy --help` still helps, without a traceback."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "loafy"), "--help"],  # the console script itself
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # Flask's group printed the ConfigError's traceback here
    assert "Commands:" in result.stdout and "check" in result.stdout
