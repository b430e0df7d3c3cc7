"""RQ job functions: ids in, reload, return early when there is nothing to do."""

import logging

from jobs.runtime import job

log = logging.getLogger(__name__)


@job
def flush_notifications(app):
    """Send every notification that is due and unsent (catches up after Redis was down)."""
    from loafy.notifications import send_due

    return send_due()
