"""The player-facing web: pages, sign-in, JSON API, webhooks, error pages."""

from flask import g, redirect, request, session, url_for
from flask.json.provider import DefaultJSONProvider
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge

from loafy.db import db
from loafy.models import utcnow
from loafy.people import web_sessions
from loafy.people.tokens import user_for_token

login_manager = LoginManager()
csrf = CSRFProtect()

# Views that take no CSRF token: signed by their caller instead (Stripe signs its webhooks; Apple's
# form_post only bounces to the GET callback, where the OAuth state is checked).
CSRF_EXEMPT_ENDPOINTS = {
    "payments.stripe_webhook",
    "auth.apple_form_post",
    "bank_webhooks.sepay",
    "bank_webhooks.casso",
}
# No connection checked out before these views: /ping never touches the database, and the health
# check connects itself, so a dead database is its JSON "down" rather than an error page.
NO_DB_CHECKOUT_ENDPOINTS = {"ops.ping", "pages.healthz"}


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a body nested deeper than Python's stack ("[[[[...") is bad JSON like any
    other (a 400, or None from get_json(silent=True)), not a RecursionError and a 500."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply")


def init_app(app):
    from public import (
        api,
        auth,
        bank_webhooks,
        calendar,
        door,
        errors,
        hardening,
        i18n,
        limits,
        pages,
        passes,
        payments,
        profile,
    )
    from public.input_checks import check_input

    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _protect below
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # tied to the session instead of a clock
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config["LOAFY_ENV"] == "production"
    app.config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    app.config["REMEMBER_COOKIE_SECURE"] = app.config["SESSION_COOKIE_SECURE"]
    app.config["PERMANENT_SESSION_LIFETIME"] = web_sessions.MAX_AGE  # the server's rows live as long
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json = JSONProvider(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.user_loader(_load_user)
    login_manager.request_loader(_load_user_from_token)
    login_manager.unauthorized_handler(_unauthorized)
    csrf.init_app(app)

    app.before_request(_limit_streamed_body)
    app.before_request(api.answer_sold_out_at_once)
    app.before_request(_open_db)
    app.before_request(_protect)
    app.before_request(check_input)  # after CSRF: a forged request is refused as forged first
    app.teardown_request(_close_db)

    auth.init_oauth(app)
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the staff area's).
    app.add_url_rule("/favicon.ico", "favicon", _favicon)
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(profile.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(passes.bp)
    app.register_blueprint(bank_webhooks.bp)
    app.register_blueprint(door.bp)
    app.register_blueprint(calendar.bp)
    errors.init_app(app)
    limits.init_app(app)  # after the blueprints: it wraps their views
    i18n.init_app(app)
    hardening.init_app(app)


def _unauthorized():
    """401 JSON for the API; the sign-in page (coming back here afterwards) for pages."""
    from public.errors import error_response

    if request.path.startswith("/api/"):
        return error_response(401, "unauthorized", "Please sign in first.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _limit_streamed_body():
    """413 for a chunked body (no Content-Length) over MAX_CONTENT_LENGTH.

    Werkzeug stops reading such a stream at the limit and hands the view the first megabyte as if
    it were the whole body (a cut JSON or form, a webhook with a "bad signature"). Read it here,
    up to the limit, and refuse it when it reaches the limit; views then get the cached bytes.
    """
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    limit = request.max_content_length
    if limit is not None and len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def _open_db():
    # Close at teardown only what this request opened (a test or CLI may hold its own).
    if request.endpoint in NO_DB_CHECKOUT_ENDPOINTS:
        g.opened_db = db.is_closed()  # whatever they open themselves is closed at teardown
        return
    g.opened_db = db.connect(reuse_if_open=True)


def _close_db(_exc=None):
    if g.get("opened_db") and not db.is_closed():
        db.close()


def _protect():
    """CSRF on every unsafe request that rides on the browser session."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    # A bearer token cannot be attached by a cross-site form, so such requests need no CSRF token.
    if request.endpoint in CSRF_EXEMPT_ENDPOINTS or _bearer_token(request) is not None:
        return
    # Without a signed-in session there is nothing for a forged request to ride on; the route's
    # guard answers (401 for the API, the sign-in page for pages) instead of a CSRF error.
    if not current_user.is_authenticated:
        return
    csrf.protect()


def _bearer_token(req):
    """A personal token opens the JSON API only: pages and the staff area need the browser session
    (a leaked token must not open the staff area), and ignore the header altogether."""
    if not req.path.startswith("/api/"):
        return None
    header = req.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def _load_user(user_id):
    """The cookie's user, only while its server-side session lives (one query, as before)."""
    if _bearer_token(request) is not None:
        return None  # a request with a token is authenticated by that token alone
    return web_sessions.user_for_session(user_id, session.get(web_sessions.COOKIE_KEY))


def _load_user_from_token(req):
    raw = _bearer_token(req)
    if raw is None:
        return None
    user = user_for_token(raw, utcnow())
    g.token_auth = user is not None
    return user


def _favicon():
    return redirect(url_for("static", filename="favicon.svg"), code=301)
