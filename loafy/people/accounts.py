"""Users, roles and sign-in identities."""

import logging

from peewee import IntegrityError, fn

from loafy.db import db
from loafy.errors import Conflict, NotFound, PermissionDenied, ValidationError
from loafy.locking import lock_user
from loafy.mail import is_address
from loafy.models import ROLES, Identity, User
from loafy.people.web_sessions import close_all_sessions

log = logging.getLogger(__name__)


def has_role(user, *roles):
    """The one access rule: signed in, active, and holding one of `roles` (none = any role).

    An admin may do everything, so an admin passes every role check.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return not roles or user.role_id == "admin" or user.role_id in roles


def normalize_email(email):
    email = (email or "").strip().lower()
    return email or None


def find_user_by_email(email):
    email = normalize_email(email)
    return User.get_or_none(User.email == email) if email else None


def create_user(email, name, role="player", now=None):
    """A new user; a second user with the same e-mail is a Conflict."""
    email = normalize_email(email)
    if email is None or not is_address(email):
        raise ValidationError("Enter a valid e-mail address.", field="email")
    name = (name or "").strip() or email.split("@")[0]
    if role not in ROLES:
        raise ValidationError(f"Role must be one of: {', '.join(ROLES)}.", field="role")
    try:
        with db.atomic():
            fields = {"email": email, "name": name, "role": role}
            if now is not None:
                fields["created_at"] = now
            return User.create(**fields)
    except IntegrityError:
        raise Conflict(f"A user with the e-mail {email} already exists.", code="duplicate")


def set_role(actor, user, role):
    """Change a user's role; the last admin cannot demote themselves (the club would be locked out).

    A change signs the user out of every browser: a session never outlives the role it began with.
    """
    if role not in ROLES:
        raise ValidationError(f"Role must be one of: {', '.join(ROLES)}.", field="role")
    if actor is not None and not actor.is_admin:
        raise PermissionDenied("Only an admin can change roles.")
    with db.atomic():
        user = User.get_by_id(user.id)
        if user.role_id == "admin" and role != "admin":
            admins = User.select().where((User.role == "admin") & User.active).count()
            if admins <= 1:
                raise Conflict("This is the last admin: make someone else admin first.", code="last_admin")
        if User.update(role=role).where((User.id == user.id) & (User.role != role)).execute():
            close_all_sessions(user.id)
    return User.get_by_id(user.id)


def get_user_by_email(email):
    user = find_user_by_email(email)
    if user is None:
        raise NotFound(f"No user with the e-mail {normalize_email(email)}.")
    return user


def sign_in(provider, subject, *, email, email_verified, name, avatar_url, now):
    """The user for a provider account: by (provider, subject), else by verified e-mail, else new.

    All in one transaction, so a failure half-way leaves no half-created user; two first sign-ins
    racing meet the unique index and the loser re-reads the winner's row.
    """
    if not provider or not subject or len(str(subject)) > 255:
        raise ValidationError("The sign-in provider did not say who you are.")
    email = normalize_email(email)
    if email and not is_address(email):
        # Stored, it would later be written into a To: header (a line break there adds headers).
        raise ValidationError(
            "Your sign-in account gave an e-mail address that is not valid, so we cannot sign you in "
            "with it. Correct the address at your provider, or sign in another way.",
            code="bad_email",
        )
    name = (name or "").strip()[:200]
    if avatar_url and len(avatar_url) > 500:
        avatar_url = None
    for _attempt in range(2):
        try:
            with db.atomic():
                return _sign_in_once(provider, str(subject), email, email_verified, name, avatar_url, now)
        except IntegrityError:
            log.info("sign-in race for %s/%s; retrying", provider, subject)
    raise Conflict("We could not sign you in just now. Please try again.", code="sign_in_conflict")


def _sign_in_once(provider, subject, email, email_verified, name, avatar_url, now):
    identity = Identity.get_or_none((Identity.provider == provider) & (Identity.subject == subject))
    if identity is not None:
        user = identity.user
        if not user.active:
            raise PermissionDenied("This account is disabled. Please contact the club.")
        Identity.update(last_used_at=now, email=email or identity.email).where(
            Identity.id == identity.id
        ).execute()
        User.update(last_login_at=now).where(User.id == user.id).execute()
        return User.get_by_id(user.id)

    user = None
    if email and email_verified:
        user = User.get_or_none(fn.LOWER(User.email) == email)
    if user is None:
        # An unverified e-mail that belongs to someone else is not claimed: the new user gets none.
        owned = email and User.select().where(User.email == email).exists()
        user = User.create(
            email=None if owned else email,
            name=(name or "").strip() or (email.split("@")[0] if email else "Player"),
            avatar_url=avatar_url,
            created_at=now,
        )
    elif not user.active:
        raise PermissionDenied("This account is disabled. Please contact the club.")
    Identity.create(
        user=user,
        provider=provider,
        subject=subject,
        email=email,
        email_verified=bool(email_verified),
        created_at=now,
        last_used_at=now,
    )
    updates = {User.last_login_at: now}
    if avatar_url and not user.avatar_url:
        updates[User.avatar_url] = avatar_url
    User.update(updates).where(User.id == user.id).execute()
    return User.get_by_id(user.id)


def list_identities(user):
    """The user's sign-in accounts, oldest first."""
    return list(Identity.select().where(Identity.user == user).order_by(Identity.created_at, Identity.id))


def unlink_identity(actor, identity_id):
    """Remove one of the actor's own sign-in accounts; never the last (they could not sign in again).

    Someone else's identity is NotFound, not PermissionDenied: ids are not confirmed to strangers.
    """
    with db.atomic():
        # Lock the user's row so two unlinks racing cannot both see "two left" and remove both.
        lock_user(actor.id)
        identity = Identity.get_or_none((Identity.id == identity_id) & (Identity.user == actor.id))
        if identity is None:
            raise NotFound("No such sign-in account.")
        if Identity.select().where(Identity.user == actor.id).count() <= 1:
            raise Conflict(
                "This is your only way to sign in: link another account before removing it.",
                code="last_identity",
            )
        identity.delete_instance()
    log.info("user %s unlinked identity %s (%s)", actor.id, identity.id, identity.provider)
    return identity


def set_locale(user, code):
    """Remember the language a signed-in user chose (the web layer checks `code` is supported)."""
    User.update(locale=code).where(User.id == user.id).execute()
