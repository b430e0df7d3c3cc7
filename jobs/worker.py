"""The Procfile's RQ worker (`rq worker -w jobs.worker.Worker`): the Core app is built once.

RQ forks a work horse for each job, and a horse inherits what its parent has loaded. Built in the
parent before the first job, the jobs and the Core app are ready in every horse, instead of each
horse importing Loafy and building its own app again. Nothing is connected yet when it forks:
the database and Redis are opened inside each job.
"""

from rq import Worker as RQWorker

import jobs.bank
import jobs.payments
import jobs.tasks
from jobs.runtime import get_app

PRELOADED = (jobs.bank, jobs.payments, jobs.tasks)


class Worker(RQWorker):
    """An RQ worker whose work horses start with the Core app built."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        get_app()
