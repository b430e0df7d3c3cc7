"""What every face shares (the access guard, formatting, the reader's language), registered once.

The factory calls `init_app` for the web app; a worker's Core app needs only `locale.init_babel`.
"""

from flask_login import current_user

from loafy.web import formatting, labels, locale


def init_app(app):
    """Jinja filters and globals for every face's templates (public pages, staff area)."""
    formatting.init_app(app)
    labels.init_app(app)
    locale.init_app(app)
    app.jinja_env.globals["current_user"] = current_user
