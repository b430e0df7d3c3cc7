"""WSGI entry for gunicorn (`loafy.wsgi:app`): bad configuration is one line, then exit."""

import sys

from loafy.app import create_app
from loafy.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(4)  # gunicorn treats 4 as "app failed to load" and stops instead of respawning
