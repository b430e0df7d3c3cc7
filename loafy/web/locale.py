"""The reader's language: Vietnamese (the default) or English, chosen by the reader or their browser.

The choice, in order: the `lang` cookie set by the switch link, the signed-in user's saved
`locale`, the browser's Accept-Language, then Vietnamese. Outside a request (a job) it is the
default unless the caller forces one (flask_babel.force_locale). Catalogs are compiled ahead of
time (translations/*/LC_MESSAGES/messages.mo is shipped); nothing is built at run time.
"""

from pathlib import Path

from flask import has_request_context, request
from flask_babel import Babel, get_locale
from flask_login import current_user

SUPPORTED = ("vi", "en")
DEFAULT = "vi"
COOKIE = "lang"
LABELS = {"vi": "Tiếng Việt", "en": "English"}  # each language named in itself

babel = Babel()


def current_locale():
    return str(get_locale() or DEFAULT)


def best_locale(accept_languages):
    """The browser's best match among ours (a bare `vi-VN` or `en-GB` counts), else None."""
    return accept_languages.best_match(SUPPORTED) or next(
        (code[:2] for code, _q in accept_languages if code[:2].lower() in SUPPORTED), None
    )


def select_locale():
    if not has_request_context():
        return DEFAULT
    chosen = request.cookies.get(COOKIE)
    if chosen in SUPPORTED:
        return chosen
    saved = getattr(current_user, "locale", None) if current_user.is_authenticated else None
    if saved in SUPPORTED:
        return saved
    return best_locale(request.accept_languages) or DEFAULT


def init_babel(app):
    """Translations for any app, the worker's too (an e-mail in its reader's language)."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config.get("CLUB_TIMEZONE", "Asia/Ho_Chi_Minh"))
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(app.root_path) / "translations"))
    babel.init_app(app, locale_selector=select_locale)


def _vary(response):
    response.vary.add("Cookie")
    response.vary.add("Accept-Language")
    return response


def init_app(app):
    """Web answers differ by language: caches must key on the cookie and Accept-Language."""
    app.after_request(_vary)
    app.jinja_env.globals["current_locale"] = current_locale
    app.jinja_env.globals["language_labels"] = LABELS
