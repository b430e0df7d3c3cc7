"""The audit log: who changed what and when, for every staff action. Written in the caller's transaction."""

import json
import logging

from loafy.models import AuditLog

log = logging.getLogger(__name__)


def record(actor, action, object_type, object_id, details, now):
    """One audit row; call it inside the transaction of the change it describes."""
    return AuditLog.create(
        actor=getattr(actor, "id", actor),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=json.dumps(details or {}, default=str, ensure_ascii=False, sort_keys=True),
        created_at=now,
    )
