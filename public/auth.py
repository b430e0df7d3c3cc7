"""Sign-in with OAuth/OIDC providers (Authlib) and Flask-Login sessions."""

import logging
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from loafy import accounts
from loafy.errors import LoafyError
from loafy.models import utcnow

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")


def init_oauth(app):
    """One Authlib registry per app, with a client for each configured provider."""
    oauth = OAuth(app)
    providers = {}
    for name, provider in app.config["OIDC_PROVIDERS"].items():
        oauth.register(
            name,
            client_id=provider["client_id"],
            client_secret=provider["client_secret"],
            server_metadata_url=provider["issuer"].rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "timeout": 10},
        )
        providers[name] = {"label": provider["label"], "kind": "oidc"}
    app.extensions["loafy_oauth"] = oauth
    app.extensions["loafy_providers"] = providers


def providers():
    return current_app.extensions["loafy_providers"]


def safe_next(target):
    """Only this site's own paths: never an absolute URL, a scheme or a protocol-relative //host."""
    if not target or not isinstance(target, str):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("pages.home"))
    return render_template(
        "public/login.html", providers=providers(), next=safe_next(request.args.get("next"))
    )


@bp.get("/login/<provider>")
def login_with(provider):
    if provider not in providers():
        abort(404)
    session["login_next"] = safe_next(request.args.get("next"))
    client = current_app.extensions["loafy_oauth"].create_client(provider)
    redirect_uri = current_app.config["BASE_URL"].rstrip("/") + url_for("auth.callback", provider=provider)
    try:
        return client.authorize_redirect(redirect_uri)
    except (requests.RequestException, AuthlibBaseError, ValueError) as exc:
        log.warning("sign-in provider %s unreachable: %s", provider, exc)
        return _login_failed(
            f"{providers()[provider]['label']} is not answering right now. Please try again."
        )


@bp.get("/callback/<provider>")
def callback(provider):
    if provider not in providers():
        abort(404)
    label = providers()[provider]["label"]
    if request.args.get("error"):
        message = (
            "You cancelled signing in."
            if request.args["error"] == "access_denied"
            else f"{label} could not sign you in ({request.args['error'][:60]})."
        )
        return _login_failed(message)
    client = current_app.extensions["loafy_oauth"].create_client(provider)
    try:
        token = client.authorize_access_token()
        claims = token.get("userinfo") or client.userinfo(token=token)
    except Exception as exc:
        # Anything a provider sends back (forged state, bad nonce, garbage, a timeout) ends here:
        # Authlib, joserfc and requests each raise their own types, and none may become a 500.
        log.warning("sign-in callback from %s failed: %r", provider, exc)
        return _login_failed("That sign-in link is no longer valid. Please try again.")
    try:
        user = accounts.sign_in(
            provider,
            claims.get("sub"),
            email=claims.get("email"),
            email_verified=claims.get("email_verified") in (True, "true"),
            name=claims.get("name") or claims.get("given_name"),
            avatar_url=claims.get("picture"),
            now=utcnow(),
        )
    except LoafyError as exc:
        return _login_failed(exc.message)
    next_url = session.pop("login_next", None)
    session.clear()  # a fresh session on sign-in: nothing from before survives
    login_user(user)
    return redirect(safe_next(next_url) or url_for("pages.home"))


def _login_failed(message):
    session.pop("login_next", None)
    flash(message, "error")
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "GET":
        return render_template("public/logout.html")
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("pages.home"))
