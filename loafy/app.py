"""The application factory: the one place where configuration, database, queue and web are wired."""

import logging
from pathlib import Path

from flask import Flask

from loafy import clock, mail, queue
from loafy.booking import sold_out
from loafy.config import load_config
from loafy.db import db, make_database
from loafy.money import payments
from loafy.settings import forget_recent_settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(config=None):
    """Build a Loafy app; `config` overrides the environment (tests pass LOAFY_ENV=testing)."""
    app = Flask(
        "loafy",
        root_path=str(ROOT),
        instance_path=str(ROOT / "instance"),
        template_folder="templates",
        static_folder="public/static",
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
    payments.init_app(app)

    # Web layers are imported here, not at module level: loafy/ must not depend on them.
    import admin
    import public
    from loafy import cli

    public.init_app(app)
    admin.init_admin(app)
    cli.register(app)
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
