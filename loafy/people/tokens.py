"""Personal API tokens: shown once, stored as a SHA-256 hash, revocable."""

import hashlib
import logging
import secrets
from datetime import timedelta

from loafy.db import db, fetch_one, is_postgres, prepared_sql, raw_sql
from loafy.errors import Conflict, NotFound
from loafy.models import ApiToken, User

log = logging.getLogger(__name__)

TOKEN_PREFIX = "lfy_"  # noqa: S105 - a prefix, not a secret
MAX_ACTIVE_TOKENS = 20


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user, name="API token", now=None):
    """Returns (ApiToken, raw token); the raw token is never stored."""
    if ApiToken.select().where((ApiToken.user == user) & ApiToken.revoked_at.is_null()).count() >= (
        MAX_ACTIVE_TOKENS
    ):
        raise Conflict(
            f"You already have {MAX_ACTIVE_TOKENS} tokens: revoke one you no longer use first.",
            code="too_many_tokens",
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    name = " ".join((name or "").split())[:100] or "API token"
    fields = {"user": user, "name": name, "token_hash": _hash(raw)}
    if now is not None:
        fields["created_at"] = now
    with db.atomic():
        token = ApiToken.create(**fields)
    return token, raw


# Every API request runs this: hand-written SQL, one read (and a touch at most once a minute).
USER_COLUMNS = ", ".join("u." + field.column_name for field in User._meta.sorted_fields)
ACTIVE_USER_BY_HASH_SQL = f"""
SELECT {USER_COLUMNS}, t.id AS token_id, t.last_used_at AS token_last_used_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.active
"""  # noqa: S608 - built from constants; columns named so a prepared statement survives a migration
TOUCH_SQL = "UPDATE api_tokens SET last_used_at = ? WHERE id = ?"
# PostgreSQL: the lookup and its touch in one statement (one round trip, not two); the touch writes
# only when the last one is a minute old, so a hot token's requests stay reads.
OUTPUT_COLUMNS = ", ".join(column.split(".", 1)[1] for column in USER_COLUMNS.split(", "))
LOOKUP_AND_TOUCH_SQL = f"""
WITH found AS ({ACTIVE_USER_BY_HASH_SQL}),
touched AS (
  UPDATE api_tokens SET last_used_at = ?
  WHERE id = (SELECT token_id FROM found) AND (last_used_at IS NULL OR last_used_at < ?)
)
SELECT {OUTPUT_COLUMNS}, token_id, token_last_used_at FROM found
"""  # noqa: S608 - built from constants
TOUCH_EVERY = timedelta(seconds=60)


def user_for_token(raw, now):
    """The active user a raw token belongs to, or None (unknown, revoked, malformed)."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    if is_postgres():
        statement = prepared_sql("loafy_user_by_token_touch", LOOKUP_AND_TOUCH_SQL)
        return fetch_one(User, statement, (_hash(raw), now, now - TOUCH_EVERY))
    statement = prepared_sql("loafy_user_by_token_hash", ACTIVE_USER_BY_HASH_SQL)
    user = fetch_one(User, statement, (_hash(raw),))
    if user is None:
        return None
    # Touch at most once a minute: a hot token must not turn every GET into a write.
    last_used = ApiToken.last_used_at.python_value(user.token_last_used_at)
    if last_used is None or now - last_used > TOUCH_EVERY:
        db.execute_sql(raw_sql(TOUCH_SQL), (now, user.token_id))
    return user


def list_tokens(user):
    """The user's tokens, newest first, revoked ones included (so they can see what stopped working)."""
    return list(
        ApiToken.select()
        .where(ApiToken.user == user)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )


def revoke_token(user, token_id, now):
    """Revoke one of the user's own tokens (again is fine); someone else's token is NotFound."""
    with db.atomic():
        updated = (
            ApiToken.update(revoked_at=now)
            .where((ApiToken.id == token_id) & (ApiToken.user == user) & ApiToken.revoked_at.is_null())
            .execute()
        )
        token = ApiToken.get_or_none((ApiToken.id == token_id) & (ApiToken.user == user))
    if token is None:
        raise NotFound("No such token.")
    if updated:
        log.info("user %s revoked token %s", token.user_id, token.id)
    return token
