"""Jobs run inside a Core app's context (built by the worker itself) with their own database connection."""

import functools

from flask import current_app, has_app_context

from loafy.db import connection

_app = {}


def use_app(app):
    """Run jobs in `app` (tests; None forgets it)."""
    _app.pop("app", None)
    if app is not None:
        _app["app"] = app


def get_app():
    """One Core app per worker process, built on first use: no face, so no Flask-Admin and no
    OAuth client in a worker (what the web needs is the web's)."""
    if "app" not in _app:
        from loafy.app import create_core_app

        _app["app"] = create_core_app()
    return _app["app"]


def job(func):
    """Decorator: run `func` in an app context and a database connection (reusing any open)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            with connection():
                return func(current_app, *args, **kwargs)
        app = get_app()
        with app.app_context(), connection():
            return func(app, *args, **kwargs)

    return wrapper
