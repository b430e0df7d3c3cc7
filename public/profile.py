"""The profile page: who you are, how you sign in, and your personal API tokens."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from loafy.calendar import ics
from loafy.models import utcnow
from loafy.passes import passes
from loafy.people import accounts, tokens, web_sessions
from loafy.web.guards import role_required
from public.auth import end_browser_session, providers

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _render(new_token=None, new_feed_url=None, status=200):
    now = utcnow()
    page = render_template(
        "public/profile.html",
        calendar_token=ics.live_feed_token(current_user),  # calendar
        new_feed_url=new_feed_url,
        identities=accounts.list_identities(current_user),
        tokens=tokens.list_tokens(current_user),
        providers=providers(),
        new_token=new_token,
        membership=passes.membership(current_user.id, now),
        mine=passes.list_passes(current_user, None, now),
        now=now,
    )
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"  # the page may show a token once
    return response


# The new token travels to the page after the redirect in the session cookie, encrypted (the cookie
# is only signed, and readable), and is removed by the page that shows it: a reload shows nothing
# and creates nothing.
NEW_TOKEN_KEY = "profile_new_token"  # noqa: S105 - a session key, not a secret


def _sealer():
    key = hashlib.sha256(b"loafy profile token " + current_app.secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _take_new_token():
    sealed = session.pop(NEW_TOKEN_KEY, None)
    if not sealed:
        return None
    try:
        return _sealer().decrypt(sealed.encode(), ttl=600).decode()
    except InvalidToken:  # older than ten minutes, or another secret key: gone, like any reload
        return None


render_profile = _render  # calendar: the feed link is shown once, on the profile page


@bp.get("")
@role_required()
def show():
    return _render(new_token=_take_new_token())


@bp.post("/identities/<int:identity_id>/unlink")
@role_required()
def unlink_identity(identity_id):
    identity = accounts.unlink_identity(current_user, identity_id)
    label = providers().get(identity.provider)
    name = label.label if label else identity.provider
    flash(_("%(provider)s can no longer be used to sign in.", provider=name), "info")
    return redirect(url_for("profile.show"))


@bp.post("/tokens")
@role_required()
def create_token():
    """Create, then redirect (post/redirect/get): the profile page shows the token once, and
    reloading it neither shows it again nor creates another (only its hash is stored)."""
    _token, raw = tokens.create_token(current_user, request.form.get("name"), now=utcnow())
    session[NEW_TOKEN_KEY] = _sealer().encrypt(raw.encode()).decode()
    return redirect(url_for("profile.show"), code=303)


@bp.post("/tokens/<int:token_id>/revoke")
@role_required()
def revoke_token(token_id):
    token = tokens.revoke_token(current_user, token_id, utcnow())
    flash(_("The token “%(name)s” no longer works.", name=token.name), "info")
    return redirect(url_for("profile.show"))


@bp.post("/passes/<int:pass_id>/auto-renew/off")
@role_required()
def auto_renew_off(pass_id):
    """passes: stop renewing a membership by card (the running pass runs to its end)."""
    from loafy.passes import renewal

    renewal.turn_off(current_user, pass_id, utcnow())
    flash(_("Auto-renew is off. Your membership runs to its end."), "info")
    return redirect(url_for("profile.show"))


@bp.post("/sign-out-everywhere")
@role_required()
def sign_out_everywhere():
    """Ends every browser session of this account (a lost phone, a shared computer); tokens stay."""
    web_sessions.close_all_sessions(current_user.id)
    end_browser_session()
    flash(_("You are signed out on every device."), "info")
    return redirect(url_for("pages.home"))
