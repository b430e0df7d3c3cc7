"""The Procfile's RQ worker (`rq worker -w jobs.worker.Worker`): no fork per job, the Core app built once.

RQ's default worker forks a work horse for each job: the fork, the horse's own Redis connection
and its exit cost more CPU than a mail batch's work (bench/worker.py). This worker runs every job
in its own process, as RQ's SimpleWorker does, with the jobs and the Core app loaded before the
first one. Jobs are short, take ids and open their own database connection (jobs.runtime.job);
RQ still stops a job at its timeout (SIGALRM in this process) and records a failure, and a
crashed worker is restarted by the platform, its job retried by the periodic sweeps.
"""

from rq import SimpleWorker

import jobs.bank
import jobs.payments
import jobs.tasks
from jobs.runtime import get_app

PRELOADED = (jobs.bank, jobs.payments, jobs.tasks)


class Worker(SimpleWorker):
    """An RQ worker that runs its jobs in-process, the Core app built once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        get_app()
