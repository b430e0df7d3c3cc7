"""What a job costs the worker: RQ's plain worker (each job's work horse imports Loafy and builds
the Core app), the forking worker with the app built before the fork, and the Procfile's
`jobs.worker.Worker` (no fork: every job in the worker's own process, the app built once).

    .venv/bin/python bench/worker.py [--jobs 50] [--rounds 2]

Each round enqueues N `flush_notifications` (nothing due: the job's own work is one query) on a
real Redis (127.0.0.1:6379 db 13) and runs `rq worker --burst` over them; the worker's CPU (its
own and its work horses') is read from the kernel. SQLite in a temporary folder. Prints a table.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis
from rq import Queue, Worker

from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/13"
CLASSES = {
    "rq.Worker (plain: forks, each horse builds the app)": [],
    "forking, app built before the fork (the previous jobs.worker.Worker)": [
        "-w",
        "bench.worker.ForkingWorker",
    ],
    "jobs.worker.Worker (no fork, app built once)": ["-w", "jobs.worker.Worker"],
}


class ForkingWorker(Worker):
    """The Procfile's worker before issue 23: RQ's forking worker with the Core app built first."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from jobs.runtime import get_app

        get_app()


def run_worker(extra, env):
    """(wall seconds, CPU seconds) of one burst worker and its work horses."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "rq"), "worker", *extra, "--burst", "-q", "--url", REDIS_URL, "mail"],
        env=env,
        cwd=ROOT,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loafy-bench-worker-"))
    env = dict(
        os.environ,
        LOAFY_ENV="testing",
        DATABASE_URL=f"sqlite:///{tmp / 'loafy.db'}",
        INSTANCE_PATH=str(tmp),
        REDIS_URL=REDIS_URL,
        JOBS_INLINE="0",
    )
    subprocess.run([sys.executable, "-m", "loafy.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True)
    queue = Queue("mail", connection=Redis.from_url(REDIS_URL))
    print(f"Worker cost per job, {args.jobs} jobs a round, {args.rounds} rounds; {machine()}\n")
    print("| worker | empty start, CPU s | per job, CPU ms | per job, wall ms |")
    print("|---|---|---|---|")
    for name, extra in CLASSES.items():
        _wall, idle = min(run_worker(extra, env) for _ in range(args.rounds))  # start-up alone
        results = []
        for _ in range(args.rounds):
            queue.empty()
            for _ in range(args.jobs):
                queue.enqueue("jobs.tasks.flush_notifications")
            results.append(run_worker(extra, env))
        wall, cpu = min(results)
        per_cpu = max(0.0, cpu - idle) / args.jobs * 1000
        print(f"| {name} | {idle:.2f} | {per_cpu:.0f} | {wall / args.jobs * 1000:.0f} |")
    queue.empty()


if __name__ == "__main__":
    main()
