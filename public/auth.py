"""Sign-in with OAuth/OIDC providers (Authlib) and Flask-Login sessions."""

import logging
from urllib.parse import urlencode, urlsplit

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
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from loafy.demo import DEMO_ACCOUNTS
from loafy.errors import LoafyError
from loafy.models import utcnow
from loafy.people import accounts, web_sessions
from public import providers as provider_specs
from public.i18n import error_text

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")

DEV_PROVIDER = "dev"  # the local OIDC provider `loafy dev` starts (OIDC_DEV_*)

# Apple's form_post fields worth carrying to the GET callback; anything else is dropped.
APPLE_FIELDS = ("code", "state", "error", "user")
APPLE_USER_MAX = 2000


def init_oauth(app):
    """One Authlib registry per app, with a client for each configured provider."""
    oauth = OAuth(app)
    app.extensions["loafy_oauth"] = oauth
    app.extensions["loafy_providers"] = provider_specs.register_providers(oauth, app.config)


def providers():
    return current_app.extensions["loafy_providers"]


def _provider_or_404(name):
    provider = providers().get(name)
    if provider is None:
        abort(404)
    return provider


def safe_next(target):
    """Only this site's own paths: never an absolute URL, a scheme or a protocol-relative //host."""
    if not target or not isinstance(target, str):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
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
    spec = _provider_or_404(provider)
    session["login_next"] = safe_next(request.args.get("next"))
    client = current_app.extensions["loafy_oauth"].create_client(provider)
    redirect_uri = current_app.config["BASE_URL"].rstrip("/") + url_for("auth.callback", provider=provider)
    try:
        if provider == DEV_PROVIDER and current_app.config["LOAFY_ENV"] == "development":
            return _dev_sign_in_page(client, redirect_uri)
        return client.authorize_redirect(redirect_uri)
    except Exception as exc:
        # Down, slow, or answering garbage to discovery: Authlib, requests and json each raise
        # their own types, and none of them may become a 500.
        log.warning("sign-in provider %s unusable: %r", provider, exc)
        return _login_failed(
            _("%(provider)s is not answering right now. Please try again in a minute.", provider=spec.label)
        )


def _dev_sign_in_page(client, redirect_uri):
    """`loafy dev`'s local provider: our own page (both languages, phone-first, no CDN) posts the
    chosen subject to the provider's authorize URL, which answers like any provider would."""
    authorization = client.create_authorization_url(redirect_uri)
    client.save_authorize_data(redirect_uri=redirect_uri, **authorization)
    return render_template("public/dev_signin.html", action=authorization["url"], accounts=DEMO_ACCOUNTS)


@bp.post("/callback/apple")
def apple_form_post():
    """Apple posts its answer cross-site, where the SameSite=Lax session cookie is not sent.

    Bounce it to the GET callback as a top-level redirect (which does carry the cookie) so the
    state and nonce are checked against this browser's session like every other provider.
    This view must not touch the session: a cookie set here would replace the real one.
    """
    _provider_or_404("apple")
    fields = {k: request.form.get(k, "") for k in APPLE_FIELDS if request.form.get(k)}
    if len(fields.get("user", "")) > APPLE_USER_MAX:
        fields.pop("user")
    return redirect(url_for("auth.callback", provider="apple") + "?" + urlencode(fields), code=303)


@bp.get("/callback/<provider>")
def callback(provider):
    spec = _provider_or_404(provider)
    error = request.args.get("error")
    if error:
        if error in ("access_denied", "user_cancelled_authorize"):
            return _login_failed(_("You cancelled signing in. Nothing was changed."))
        return _login_failed(
            _(
                "%(provider)s could not sign you in (%(error)s). Please try again.",
                provider=spec.label,
                error=error[:60],
            )
        )
    client = current_app.extensions["loafy_oauth"].create_client(provider)
    if provider == "apple":
        client.client_secret = provider_specs.apple_client_secret(current_app.config)
    try:
        token = client.authorize_access_token()
        profile = provider_specs.fetch_profile(spec, client, token, apple_user=request.args.get("user"))
    except Exception as exc:
        # A forged or replayed state, a bad nonce, garbage, a timeout: Authlib, joserfc, requests
        # and our own parsing each raise their own types, and none may become a 500.
        log.warning("sign-in callback from %s failed: %r", provider, exc)
        return _login_failed(
            _(
                "We could not confirm your sign-in with %(provider)s. The link may have expired "
                "or been used already. Please try again.",
                provider=spec.label,
            )
        )
    try:
        user = accounts.sign_in(
            provider,
            profile.subject,
            email=profile.email,
            email_verified=profile.email_verified,
            name=profile.name,
            avatar_url=profile.avatar_url,
            now=utcnow(),
        )
    except LoafyError as exc:
        return _login_failed(error_text(exc))
    next_url = session.pop("login_next", None)
    session.clear()  # a fresh session on sign-in: nothing from before survives (no fixation)
    start_browser_session(user)
    log.info("user %s signed in with %s", user.id, provider)
    return redirect(safe_next(next_url) or url_for("pages.home"))


def _login_failed(message):
    session.pop("login_next", None)
    flash(message, "error")
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET asks; only a POST carrying the CSRF token (checked before every unsafe request) signs out."""
    if request.method == "GET":
        return render_template("public/logout.html")
    end_browser_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("pages.home"))


def start_browser_session(user):
    """Sign this browser in: a server-side session whose key the cookie carries."""
    login_user(user)
    session[web_sessions.COOKIE_KEY] = web_sessions.open_session(user, utcnow())


def end_browser_session():
    """Sign this browser out on the server too: the cookie, even a copy of it, no longer works."""
    web_sessions.close_session(session.get(web_sessions.COOKIE_KEY))
    logout_user()
    session.clear()
