"""Personal API tokens: shown once, stored as a SHA-256 hash, revocable."""

import hashlib
import secrets

from loafy.db import db
from loafy.errors import NotFound
from loafy.models import ApiToken, User

TOKEN_PREFIX = "lfy_"  # noqa: S105 - a prefix, not a secret


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user, name="API token", now=None):
    """Returns (ApiToken, raw token); the raw token is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    fields = {"user": user, "name": (name or "API token")[:100], "token_hash": _hash(raw)}
    if now is not None:
        fields["created_at"] = now
    with db.atomic():
        token = ApiToken.create(**fields)
    return token, raw


def user_for_token(raw, now):
    """The active user a raw token belongs to, or None (unknown, revoked, malformed)."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.select(ApiToken, User)
        .join(User)
        .where((ApiToken.token_hash == _hash(raw)) & ApiToken.revoked_at.is_null() & User.active)
        .first()
    )
    if token is None:
        return None
    # Touch at most once a minute: a hot token must not turn every GET into a write.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
    return token.user


def revoke_token(user, token_id, now):
    with db.atomic():
        updated = (
            ApiToken.update(revoked_at=now)
            .where((ApiToken.id == token_id) & (ApiToken.user == user) & ApiToken.revoked_at.is_null())
            .execute()
        )
    if not updated:
        raise NotFound("No such token.")
