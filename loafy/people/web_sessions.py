"""Browser sessions kept on the server: signing out deletes the row, so a copied cookie dies too.

The signed cookie carries the user id and a random key (under COOKIE_KEY); a request is signed in
only while a row with that key's hash exists for an active user, read in the one query that loads
the user anyway. Signing out ends this browser's row; "sign out everywhere", a role change and a
deactivated account end them all.
"""

import hashlib
import logging
import secrets
from datetime import timedelta

from loafy.db import db
from loafy.errors import as_id
from loafy.models import User, WebSession

log = logging.getLogger(__name__)

COOKIE_KEY = "_session_key"
# As long as a signed cookie is accepted at all (the web app sets PERMANENT_SESSION_LIFETIME to it).
MAX_AGE = timedelta(days=31)


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def open_session(user, now):
    """A new session for `user`; returns the raw key for the cookie (never stored)."""
    raw = secrets.token_urlsafe(32)
    with db.atomic():
        # The user's sessions whose cookies can no longer be accepted go as a new one comes.
        WebSession.delete().where(
            (WebSession.user == user.id) & (WebSession.created_at < now - MAX_AGE)
        ).execute()
        WebSession.create(user=user.id, key_hash=_hash(raw), created_at=now)
    return raw


def user_for_session(user_id, raw):
    """The active user whose session `raw` is, or None (signed out, ended, unknown, malformed)."""
    if not isinstance(raw, str) or not raw or len(raw) > 100:
        return None
    user_id = as_id(user_id)
    if user_id is None:
        return None
    return (
        User.select(User)
        .join(WebSession)
        .where((User.id == user_id) & User.active & (WebSession.key_hash == _hash(raw)))
        .first()
    )


def close_session(raw):
    """End one browser's session (signing out); an unknown key is fine (already ended)."""
    if isinstance(raw, str) and raw:
        WebSession.delete().where(WebSession.key_hash == _hash(raw)).execute()


def close_all_sessions(user_id):
    """End every browser session of the user (sign out everywhere, role change, deactivation)."""
    ended = WebSession.delete().where(WebSession.user == user_id).execute()
    if ended:
        log.info("ended %s browser sessions of user %s", ended, user_id)
    return ended
