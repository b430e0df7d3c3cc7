"""The profile page: who you are, how you sign in, and your personal API tokens."""

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from loafy.models import utcnow
from loafy.passes import passes
from loafy.people import accounts, tokens, web_sessions
from loafy.web.guards import role_required
from public.auth import end_browser_session, providers

bp = Blueprint("profile", __name__, url_prefix="/profile")


def _render(new_token=None, status=200):
    now = utcnow()
    page = render_template(
        "public/profile.html",
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


@bp.get("")
@role_required()
def show():
    return _render()


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
    """Shown on this response only (never stored raw), so no redirect: a reload will not show it again."""
    _token, raw = tokens.create_token(current_user, request.form.get("name"), now=utcnow())
    return _render(new_token=raw, status=201)


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
