"""Public's words: refusal and error-page texts in Vietnamese and English, and the language switch.

Which language a reader gets is Core's rule (loafy/web/locale.py), shared by every face.
"""

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from loafy.web.errors import ERROR_MESSAGES, PAY_ERROR_CODES, error_text, messages_for  # noqa: F401
from loafy.web.locale import current_locale

COOKIE_MAX_AGE = 365 * 24 * 3600

# The error pages' messages (public/errors.py speaks English), by the English text, else by status.
PAGE_MESSAGES = {
    "The request could not be understood.": _l("The request could not be understood."),
    "Please sign in first.": _l("Please sign in first."),
    "You are not allowed to see this page.": _l("You are not allowed to see this page."),
    "We could not find that page.": _l("We could not find that page."),
    "That action is not allowed here.": _l("That action is not allowed here."),
    "That cannot be done right now.": _l("That cannot be done right now."),
    "The request is too large.": _l("The request is too large."),
    "Some of the details are not valid.": _l("Some of the details are not valid."),
    "Too many requests. Please wait a moment and try again.": _l(
        "Too many requests. Please wait a moment and try again."
    ),
    "Something went wrong on our side. Nothing was changed; please try again.": _l(
        "Something went wrong on our side. Nothing was changed; please try again."
    ),
    "Loafy is temporarily unavailable. Please try again in a minute.": _l(
        "Loafy is temporarily unavailable. Please try again in a minute."
    ),
    "Your form expired or was sent from elsewhere. Please try again.": _l(
        "Your form expired or was sent from elsewhere. Please try again."
    ),
    "That session does not exist.": _l("That session does not exist."),
    "That booking does not exist.": _l("That booking does not exist."),
}
STATUS_MESSAGES = {
    400: PAGE_MESSAGES["The request could not be understood."],
    401: PAGE_MESSAGES["Please sign in first."],
    403: PAGE_MESSAGES["You are not allowed to see this page."],
    404: PAGE_MESSAGES["We could not find that page."],
    405: PAGE_MESSAGES["That action is not allowed here."],
    409: PAGE_MESSAGES["That cannot be done right now."],
    413: PAGE_MESSAGES["The request is too large."],
    422: PAGE_MESSAGES["Some of the details are not valid."],
    429: PAGE_MESSAGES["Too many requests. Please wait a moment and try again."],
    500: PAGE_MESSAGES["Something went wrong on our side. Nothing was changed; please try again."],
    503: PAGE_MESSAGES["Loafy is temporarily unavailable. Please try again in a minute."],
}
STATUS_TITLES = {
    403: _l("This page is private"),
    404: _l("Page not found"),
    500: _l("Something went wrong"),
}


def page_message(status, message, code=None):
    """The error page's sentence in the reader's language: by its English text, else by the
    refusal's code."""
    if current_locale() == "en":
        return message or str(STATUS_MESSAGES.get(status, ""))
    if not message:
        return str(STATUS_MESSAGES.get(status, STATUS_MESSAGES[500]))
    known = PAGE_MESSAGES.get(message) or ERROR_MESSAGES.get(code)
    return str(known) if known is not None else message  # a message we have no words for stays English


def page_title(status):
    return str(STATUS_TITLES.get(status) or gettext("Error %(status)s", status=status))


def init_app(app):
    app.jinja_env.globals.update(page_message=page_message, page_title=page_title)
