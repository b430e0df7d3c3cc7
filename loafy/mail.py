"""Sending e-mail: SMTP when configured, else a local outbox folder of .eml files to read."""

import html
import logging
import re
import smtplib
import ssl
import threading
from contextlib import contextmanager
from email import encoders
from email.charset import QP, Charset
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from pathlib import Path

log = logging.getLogger(__name__)

# A plain address as people have them: dot-atom characters (Unicode letters allowed), one @, a
# domain of letters, digits and hyphens. No spaces, quotes, angle brackets, commas or control
# characters: whatever holds one is not written into a header.
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]+(?:\.[\w-]+)*")
MAX_ADDRESS_LENGTH = 254

_config = {}


class UnsafeHeader(ValueError):
    """Text that would break out of its header (a line break) or is not an address."""


def is_address(text):
    """The one rule for what is an e-mail address (sign-in and the mail layer both ask it)."""
    return isinstance(text, str) and len(text) <= MAX_ADDRESS_LENGTH and ADDRESS.fullmatch(text) is not None


_batch = threading.local()  # the SMTP connection an open smtp_batch() shares, per thread


def init_app(app):
    _config.clear()
    _config.update(
        {
            k: app.config.get(k)
            for k in ("SMTP_HOST", "SMTP_PORT", "SMTP_STARTTLS", "SMTP_USER", "SMTP_PASSWORD", "MAIL_FROM")
        }
    )
    _config["MAIL_OUTBOX"] = app.config.get("MAIL_OUTBOX") or str(Path(app.instance_path) / "outbox")
    _config["BASE_URL"] = app.config.get("BASE_URL") or "http://127.0.0.1:5000"


def mail_setting(name):
    return _config.get(name)


def outbox_path():
    return Path(_config["MAIL_OUTBOX"])


def send_email(to, subject, body, message_id=None, attachments=(), inline_image=None):
    """Send one plain-text e-mail; raises on failure so the caller's job can retry.

    `attachments`: (filename, MIME type, bytes) each, such as a booking's .ics (calendar).
    `inline_image` (content id, PNG bytes, link) adds an HTML version showing the image inline,
    linked (the door ticket's QR code)."""
    message = _plain_text_message(to, subject, body, message_id)
    if inline_image is not None:
        message = _with_inline_image(message, body, *inline_image)
    if attachments:
        message = _with_attachments(message, attachments)
    if _config.get("SMTP_HOST"):
        if getattr(_batch, "active", False):
            _send_in_batch(message)
        else:
            with _connect() as smtp:
                smtp.send_message(message)
        return None
    folder = outbox_path()
    folder.mkdir(parents=True, exist_ok=True)
    safe_id = "".join(c for c in message["Message-ID"] if c.isalnum() or c in "-_.")
    path = folder / f"{safe_id}.eml"
    path.write_bytes(bytes(message))
    log.info("mail to %s written to the outbox: %s", to, path)
    return path


UTF8_QUOTED_PRINTABLE = Charset("utf-8")
UTF8_QUOTED_PRINTABLE.body_encoding = QP  # readable in the outbox folder, safe on any mail route


def _plain_text_message(to, subject, body, message_id=None):
    """A plain-text UTF-8 message. Built with email.mime (the compat32 policy): a quarter of the
    cost of EmailMessage, whose header parsing and refolding was most of the mail worker's time."""
    message = MIMEText(body, "plain", UTF8_QUOTED_PRINTABLE)
    message["From"] = _address(_config["MAIL_FROM"])
    message["To"] = _address(to)
    message["Subject"] = Header(_one_line(subject), "utf-8")
    message["Message-ID"] = message_id or make_msgid(domain="loafy.local")
    message["Date"] = formatdate(usegmt=True)
    return message


def _with_inline_image(plain, body, cid, png, link):
    """multipart/related: the text and an HTML copy (multipart/alternative), then the PNG the HTML
    shows by its Content-ID. The headers move from the plain message to the new one."""
    text = html.escape(body)
    page = (
        '<!doctype html><html><body><div style="font-family:sans-serif;white-space:pre-wrap">'
        f'{text}</div><p><a href="{html.escape(link, quote=True)}"><img src="cid:{html.escape(cid)}" '
        'alt="QR" width="240" height="240"></a></p></body></html>'
    )
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(body, "plain", UTF8_QUOTED_PRINTABLE))
    alternative.attach(MIMEText(page, "html", UTF8_QUOTED_PRINTABLE))
    related = MIMEMultipart("related")
    related.attach(alternative)
    image = MIMEImage(png, "png")
    image["Content-ID"] = f"<{cid}>"
    image.add_header("Content-Disposition", "inline", filename="ticket-qr.png")
    related.attach(image)
    for key in ("From", "To", "Subject", "Message-ID", "Date"):
        related[key] = plain[key]
    return related


def _with_attachments(text_message, attachments):
    """The message as multipart/mixed: its text first, then each attachment (calendar)."""
    mixed = MIMEMultipart("mixed")
    for header in ("From", "To", "Subject", "Message-ID", "Date"):
        mixed[header] = text_message[header]
        del text_message[header]
    mixed.attach(text_message)
    for filename, mime_type, content in attachments:
        maintype, subtype = mime_type.split(";")[0].strip().split("/")
        part = MIMEBase(maintype, subtype)
        if maintype == "text" and subtype == "calendar":
            part.set_param("method", "PUBLISH")
            part.set_param("charset", "utf-8")
        part.set_payload(content)
        encoders.encode_base64(part)
        part.add_header("Content-Disposition", "attachment", filename=filename)
        mixed.attach(part)
    return mixed


def _address(value):
    """ "Name <address>" with a non-ASCII name encoded (RFC 2047); UnsafeHeader for anything that is
    not one address on one line."""
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnsafeHeader(f"refusing to write {value!r} into an address header")
    parsed = getaddresses([value])
    name, address = parsed[0] if len(parsed) == 1 else ("", "")
    if not is_address(address):
        raise UnsafeHeader(f"refusing to write {value!r} into an address header: not an address")
    return formataddr((name, address), charset="utf-8")


def _one_line(text):
    """Header text on one line: line breaks and other control characters become spaces."""
    return " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(text)).split())


@contextmanager
def smtp_batch():
    """Share one SMTP connection among the send_email calls inside (in this thread): one connect,
    STARTTLS and login for a whole batch instead of one per message. Opened on the first send,
    closed at the end; nested batches share the outer one."""
    if getattr(_batch, "active", False):
        yield
        return
    _batch.active, _batch.smtp = True, None
    try:
        yield
    finally:
        smtp, _batch.active, _batch.smtp = _batch.smtp, False, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):  # the mail is already accepted: nothing is lost
                smtp.close()


def _send_in_batch(message):
    if _batch.smtp is None:
        _batch.smtp = _connect()
    try:
        _batch.smtp.send_message(message)
    except BaseException:
        # The connection may be broken or mid-command: drop it, the next message opens a fresh one.
        smtp, _batch.smtp = _batch.smtp, None
        smtp.close()
        raise


def _connect():
    smtp = smtplib.SMTP(_config["SMTP_HOST"], _config["SMTP_PORT"], timeout=20)
    try:
        if _config.get("SMTP_STARTTLS") is not False:  # only an explicit "off" sends in clear text
            # A context verifies the certificate and host name; starttls() without one does not.
            # A server without STARTTLS raises SMTPNotSupportedError: never fall back to clear text.
            smtp.starttls(context=ssl.create_default_context())
        if _config.get("SMTP_USER"):
            smtp.login(_config["SMTP_USER"], _config["SMTP_PASSWORD"] or "")
    except BaseException:
        smtp.close()
        raise
    return smtp
