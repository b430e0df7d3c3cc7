"""Configuration from the environment (and `.env` in development). The only reader of os.environ."""

import os
import re
import secrets
from pathlib import Path

from dotenv import dotenv_values

from loafy.errors import ConfigError

ENVIRONMENTS = ("production", "development", "testing")

# Names and defaults: the contract in DESIGN.md. None means "no default".
DEFAULTS = {
    "LOAFY_ENV": "production",
    "SECRET_KEY": None,
    "DATABASE_URL": None,
    "REDIS_URL": None,
    "BASE_URL": "http://127.0.0.1:5000",
    "CLUB_TIMEZONE": "Asia/Ho_Chi_Minh",
    "STRIPE_SECRET_KEY": None,
    "STRIPE_PUBLISHABLE_KEY": None,
    "STRIPE_WEBHOOK_SECRET": None,
    "STRIPE_API_BASE": None,
    "STRIPE_TIMEOUT_SECONDS": "10",
    # Bank-transfer feeds (each optional; an unset one answers 404 at its webhook).
    "SEPAY_API_KEY": None,
    "CASSO_WEBHOOK_SECRET": None,  # per Stripe HTTP call; a slow Stripe must not hold a web worker
    "GOOGLE_CLIENT_ID": None,
    "GOOGLE_CLIENT_SECRET": None,
    "FACEBOOK_CLIENT_ID": None,
    "FACEBOOK_CLIENT_SECRET": None,
    "APPLE_CLIENT_ID": None,
    "APPLE_TEAM_ID": None,
    "APPLE_KEY_ID": None,
    "APPLE_PRIVATE_KEY": None,
    "SMTP_HOST": None,
    "SMTP_PORT": "587",
    "SMTP_STARTTLS": "1",  # 0 only for a relay on the same host: without it mail crosses in clear text
    "SMTP_USER": None,
    "SMTP_PASSWORD": None,
    "MAIL_FROM": "Loafy <no-reply@loafy.local>",
    "MAIL_OUTBOX": None,
    "DB_POOL_SIZE": "20",
    "DB_POOL_TIMEOUT": "10",
    "JOBS_INLINE": None,
    "INSTANCE_PATH": None,  # where SQLite, the outbox and dev state live (default ./instance)
    "TRUSTED_PROXIES": "0",  # proxies in front of the app (Heroku: 1); per-IP limits need the real client
    "RATELIMIT_STORAGE_URI": None,  # default: REDIS_URL in production, memory:// otherwise
}

# Production refuses to start without these.
REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "DATABASE_URL")
# Card payments are optional (Stripe does not serve merchants in Vietnam: a club may run on bank
# transfers and cash alone), but half a Stripe configuration is a mistake: a secret key without its
# webhook secret (payments nobody would confirm) or the other way round, or a publishable key alone.
STRIPE_PAIRED = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")

# Development only (never production): the bank feeds work out of the box under `loafy dev`.
DEV_SEPAY_API_KEY = "sepay_loafy_dev"
DEV_CASSO_WEBHOOK_SECRET = "casso_loafy_dev"  # noqa: S105 - development only

_FLAGS = dict.fromkeys(("1", "true", "yes", "on"), True) | dict.fromkeys(("0", "false", "no", "off"), False)

_OIDC_VAR = re.compile(r"^OIDC_([A-Z0-9_]+?)_(ISSUER|CLIENT_ID|CLIENT_SECRET|LABEL)$")


def load_config(environ=None, overrides=None, instance_path="instance"):
    """Build the app's settings: defaults < .env (development) < environment < overrides."""
    environ = dict(os.environ if environ is None else environ)
    overrides = dict(overrides or {})
    env = overrides.get("LOAFY_ENV") or environ.get("LOAFY_ENV") or DEFAULTS["LOAFY_ENV"]
    if env not in ENVIRONMENTS:
        raise ConfigError(f"LOAFY_ENV must be one of {', '.join(ENVIRONMENTS)} (got {env!r})")

    values = {}
    if env == "development" and Path(".env").is_file():
        values.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    values.update(environ)
    values.update(overrides)
    values["LOAFY_ENV"] = env

    config = {name: values.get(name, default) for name, default in DEFAULTS.items()}
    config.update({k: v for k, v in overrides.items() if k not in config})
    for name, value in config.items():
        if value == "":
            config[name] = None  # an empty variable means "not set"

    if env == "production":
        for name in REQUIRED_IN_PRODUCTION:
            if not config.get(name):
                raise ConfigError(f"{name} is not set; Loafy cannot start in production without it")
        if any(config.get(name) for name in (*STRIPE_PAIRED, "STRIPE_PUBLISHABLE_KEY")):
            for name in STRIPE_PAIRED:
                if not config.get(name):
                    raise ConfigError(
                        f"{name} is not set but other STRIPE_* variables are; set them all for card "
                        "payments, or none to run without them"
                    )
    else:
        config["SECRET_KEY"] = config["SECRET_KEY"] or _dev_secret(instance_path, env)
        if env == "development":  # `loafy bank simulate` and the pay page's button sign with these
            config["SEPAY_API_KEY"] = config["SEPAY_API_KEY"] or DEV_SEPAY_API_KEY
            config["CASSO_WEBHOOK_SECRET"] = config["CASSO_WEBHOOK_SECRET"] or DEV_CASSO_WEBHOOK_SECRET
        if not config["DATABASE_URL"]:
            config["DATABASE_URL"] = f"sqlite:///{Path(instance_path).resolve() / 'loafy.db'}"

    for name in ("DB_POOL_SIZE", "DB_POOL_TIMEOUT", "SMTP_PORT", "TRUSTED_PROXIES"):
        try:
            config[name] = int(config[name])
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number (got {config[name]!r})")

    starttls = config["SMTP_STARTTLS"]
    starttls = DEFAULTS["SMTP_STARTTLS"] if starttls is None else str(starttls).strip().lower()
    if starttls not in _FLAGS:
        raise ConfigError(f"SMTP_STARTTLS must be 1 or 0 (got {config['SMTP_STARTTLS']!r})")
    config["SMTP_STARTTLS"] = _FLAGS[starttls]

    timeout = config["STRIPE_TIMEOUT_SECONDS"] or DEFAULTS["STRIPE_TIMEOUT_SECONDS"]
    try:
        config["STRIPE_TIMEOUT_SECONDS"] = float(timeout)
    except (TypeError, ValueError):
        config["STRIPE_TIMEOUT_SECONDS"] = None
    if not 0 < (config["STRIPE_TIMEOUT_SECONDS"] or 0) <= 120:
        raise ConfigError(f"STRIPE_TIMEOUT_SECONDS must be seconds, above 0, at most 120 (got {timeout!r})")

    config["OIDC_PROVIDERS"] = overrides.get("OIDC_PROVIDERS") or _oidc_providers(values)
    config["DEBUG"] = False
    config["TESTING"] = env == "testing"
    return config


def _dev_secret(instance_path, env):
    """A stable random key per checkout, so development sessions survive restarts."""
    if env == "testing":
        return "testing-secret-key"
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _oidc_providers(values):
    """Collect OIDC_<NAME>_ISSUER / _CLIENT_ID / _CLIENT_SECRET / _LABEL into one dict per name."""
    providers = {}
    for key, value in values.items():
        match = _OIDC_VAR.match(key)
        if match and value:
            name, part = match.group(1).lower(), match.group(2).lower()
            providers.setdefault(name, {})[part] = value
    for name, provider in list(providers.items()):
        missing = [p for p in ("issuer", "client_id") if p not in provider]
        if missing:
            var = f"OIDC_{name.upper()}_{missing[0].upper()}"
            raise ConfigError(f"{var} is not set but other OIDC_{name.upper()}_* variables are")
        provider.setdefault("client_secret", "")
        provider.setdefault("label", name.replace("_", " ").title())
    return providers
