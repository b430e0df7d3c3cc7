"""Sending e-mail: SMTP when configured, else a local outbox folder of .eml files to read."""

import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

log = logging.getLogger(__name__)

_config = {}


def init_app(app):
    _config.clear()
    _config.update(
        {k: app.config.get(k) for k in ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "MAIL_FROM")}
    )
    _config["MAIL_OUTBOX"] = app.config.get("MAIL_OUTBOX") or str(Path(app.instance_path) / "outbox")
    _config["BASE_URL"] = app.config.get("BASE_URL") or "http://127.0.0.1:5000"


def mail_setting(name):
    return _config.get(name)


def outbox_path():
    return Path(_config["MAIL_OUTBOX"])


def send_email(to, subject, body, message_id=None):
    """Send one plain-text e-mail; raises on failure so the caller's job can retry."""
    message = EmailMessage()
    message["From"] = _config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="loafy.local")
    message.set_content(body)
    if _config.get("SMTP_HOST"):
        with smtplib.SMTP(_config["SMTP_HOST"], _config["SMTP_PORT"], timeout=20) as smtp:
            smtp.starttls()
            if _config.get("SMTP_USER"):
                smtp.login(_config["SMTP_USER"], _config["SMTP_PASSWORD"] or "")
            smtp.send_message(message)
        return None
    folder = outbox_path()
    folder.mkdir(parents=True, exist_ok=True)
    safe_id = "".join(c for c in message["Message-ID"] if c.isalnum() or c in "-_.")
    path = folder / f"{safe_id}.eml"
    path.write_bytes(bytes(message))
    log.info("mail to %s written to the outbox: %s", to, path)
    return path
