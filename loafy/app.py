"""The application factories: the one place where configuration, database, queue and faces are wired."""

import logging
from pathlib import Path

from flask import Flask

from loafy import clock, mail, queue
from loafy.booking import sold_out
from loafy.config import load_config
from loafy.db import db, make_database
from loafy.money import stripe_client
from loafy.settings import forget_recent_settings
from loafy.web import locale

ROOT = Path(__file__).resolve().parent.parent


def create_core_app(config=None):
    """The app of a process with no web (the RQ worker): config, database, clock, queue, mail,
    Stripe's client and translations. No face is imported: no Flask-Admin, no OAuth client."""
    return _build_core(config, static_folder=None)


def create_app(config=None):
    """The web app: the Core app plus every face; `config` overrides the environment (tests pass
    LOAFY_ENV=testing)."""
    app = _build_core(config, static_folder="public/static")
    # Faces are imported here, not at module level: loafy/ must not depend on them.
    import admin
    import public
    from loafy import cli, web

    web.init_app(app)  # filters, globals and hooks every face's templates share
    public.init_app(app)
    admin.init_admin(app)
    cli.register(app)
    return app


def _build_core(config, static_folder):
    app = Flask(
        "loafy",
        root_path=str(ROOT),
        instance_path=str(ROOT / "instance"),
        template_folder="templates",
        static_folder=static_folder,
    )
    settings = load_config(overrides=config, instance_path=app.instance_path)
    if settings.get("INSTANCE_PATH"):
        app.instance_path = str(Path(settings["INSTANCE_PATH"]).resolve())
        settings = load_config(overrides=config, instance_path=app.instance_path)
    app.config.update(settings)
    _configure_logging(app)

    db.initialize(
        make_database(
            app.config["DATABASE_URL"],
            pool_size=app.config["DB_POOL_SIZE"],
            pool_timeout=app.config["DB_POOL_TIMEOUT"],
        )
    )
    clock.init_app(app)
    queue.init_app(app)
    sold_out.forget_all()  # a hint never outlives its app (tests: one app per fresh database)
    forget_recent_settings()  # nor does a copy of the settings
    mail.init_app(app)
    stripe_client.init_app(app)
    locale.init_babel(app)
    return app


def _configure_logging(app):
    level = logging.DEBUG if app.config["LOAFY_ENV"] == "development" else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.logger.setLevel(level)
    logging.getLogger("peewee").setLevel(logging.INFO)  # its DEBUG logs every SQL statement
    # Stripe's DEBUG logs whole response bodies: a PaymentIntent's client_secret must never be logged.
    logging.getLogger("stripe").setLevel(logging.INFO)
    # Inside an RQ worker, RQ prints its own lines with its own handler: passing them on to the
    # root handler as well printed every job line twice, in two formats.
    logging.getLogger("rq").setLevel(logging.INFO)  # its DEBUG narrates every job's bookkeeping
    for name in ("rq.worker", "rq.scheduler", "rq.job", "rq.cron"):
        rq_logger = logging.getLogger(name)
        if rq_logger.handlers:
            rq_logger.propagate = False
