"""Mail through a real SMTP server (aiosmtpd on 127.0.0.1): one connection per batch, refusals,
STARTTLS required and its certificate verified."""

import datetime as dt
import importlib.util
import ipaddress
import smtplib
import socket
import ssl
import sys
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from loafy import mail, notifications
from loafy.booking.bookings import book_session
from loafy.config import load_config
from loafy.errors import ConfigError
from loafy.models import Notification, User

# Installed by .ci/services.sh outside the venv (its atpublic dependency is a top-level `public`).
SMTP_LIBRARIES = Path(__file__).resolve().parent.parent / ".cache" / "smtp"


def _import_aiosmtpd():
    """aiosmtpd does `from public import public` (the atpublic package), which this repo's own
    `public` package shadows: import it with atpublic standing in for a moment."""
    if not (SMTP_LIBRARIES / "aiosmtpd").is_dir():
        return None
    if str(SMTP_LIBRARIES) not in sys.path:
        sys.path.append(str(SMTP_LIBRARIES))  # last: the venv's own packages keep precedence

    def public_modules():
        return {name: module for name, module in sys.modules.items() if name.split(".")[0] == "public"}

    ours = public_modules()
    for name in ours:
        del sys.modules[name]
    init = SMTP_LIBRARIES / "public" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "public", init, submodule_search_locations=[str(init.parent)]
    )
    atpublic = importlib.util.module_from_spec(spec)
    sys.modules["public"] = atpublic
    try:
        spec.loader.exec_module(atpublic)
        from aiosmtpd.controller import Controller
    finally:
        for name in public_modules():
            del sys.modules[name]
        sys.modules.update(ours)
    return Controller


Controller = _import_aiosmtpd()
pytestmark = pytest.mark.skipif(
    Controller is None, reason="aiosmtpd not installed: `bash .ci/services.sh` installs it"
)


class RecordingHandler:
    """Keeps every message it accepts; refuses the addresses in `refuse` with the given reply."""

    def __init__(self):
        self.messages = []  # (recipients, parsed message)
        self.connections = 0  # smtplib says EHLO once per connection (when there is no STARTTLS)
        self.refuse = {}

    def reset(self):
        self.messages.clear()
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(**options):
    """A real SMTP server on a free loopback port; its handler records what it is sent."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    handler.port = controller.port
    return handler, controller


@pytest.fixture
def smtp_server():
    handler, controller = serve()
    yield handler
    controller.stop()


@pytest.fixture
def app_config(app_config, smtp_server):
    return dict(app_config, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_server.port), SMTP_STARTTLS="0")


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("", True), ("off", False), ("1", True)])
def test_starttls_is_on_unless_turned_off(value, expected):
    environ = {"LOAFY_ENV": "testing", "SECRET_KEY": "x"} | (
        {} if value is None else {"SMTP_STARTTLS": value}
    )
    assert load_config(environ)["SMTP_STARTTLS"] is expected


def test_a_starttls_setting_that_is_not_a_yes_or_no_is_refused():
    with pytest.raises(ConfigError, match="SMTP_STARTTLS"):
        load_config({"LOAFY_ENV": "testing", "SECRET_KEY": "x", "SMTP_STARTTLS": "tls"})


def book_for(factory, now, *emails):
    """One pending booking per address; the inline jobs send each "received" mail at once."""
    club_session = factory.club_session(max_slots=10)
    return [book_session(factory.user(email=email), club_session, 0, "stripe", now) for email in emails]


def reminder_due(now):
    return now + timedelta(minutes=25)


def message_id(notification):
    return f"<loafy-{notification.dedupe_key.replace(':', '-')}@loafy.local>"


def test_a_batch_of_notifications_goes_out_over_one_connection(app, factory, now, smtp_server):
    emails = ["an@example.com", "binh@example.com", "chi@example.com"]
    book_for(factory, now, *emails)
    smtp_server.reset()
    assert notifications.send_due(reminder_due(now)) == 3
    reminders = Notification.select().where(Notification.kind == "payment_reminder")
    expected = {(n.to_email, n.subject, message_id(n)) for n in reminders}
    assert {n.to_email for n in reminders} == set(emails)
    received = {(tuple(rcpt), msg["Subject"], msg["Message-ID"]) for rcpt, msg in smtp_server.messages}
    assert received == {((to,), subject, mid) for to, subject, mid in expected}
    assert smtp_server.connections == 1


def test_outside_a_batch_each_mail_has_its_own_connection(app, smtp_server):
    mail.send_email("an@example.com", "First", "Hello")
    mail.send_email("binh@example.com", "Second", "Hello")
    assert [(rcpt, msg["Subject"]) for rcpt, msg in smtp_server.messages] == [
        (["an@example.com"], "First"),
        (["binh@example.com"], "Second"),
    ]
    assert smtp_server.connections == 2


def test_a_refused_recipient_waits_for_a_retry_and_the_rest_of_the_batch_goes_out(
    app, factory, now, smtp_server
):
    smtp_server.refuse["bad@example.com"] = "550 5.1.1 No such mailbox"
    book_for(factory, now, "an@example.com", "bad@example.com", "chi@example.com")
    smtp_server.reset()
    notifications.send_due(reminder_due(now))  # the refused "received" mail is retried here too
    delivered = {rcpt[0] for rcpt, _ in smtp_server.messages}
    assert delivered == {"an@example.com", "chi@example.com"}
    refused = Notification.select().join(User).where(User.email == "bad@example.com")
    assert len(refused) == 2
    for notification in refused:
        assert notification.sent_at is None and notification.claimed_at is None
        assert "550" in notification.last_error and "bad@example.com" in notification.last_error
    others = Notification.select().where(Notification.to_email.in_(["an@example.com", "chi@example.com"]))
    assert len(others) == 4 and all(n.sent_at is not None for n in others)


def test_a_connection_the_server_closed_mid_batch_is_replaced(app, factory, now, smtp_server):
    # After a 421 smtplib closes the socket: reusing it would fail every later mail in the batch.
    smtp_server.refuse["busy@example.com"] = "421 4.3.2 Too busy, closing"
    book_for(factory, now, "an@example.com", "busy@example.com", "chi@example.com")
    smtp_server.reset()
    notifications.send_due(reminder_due(now))
    assert {rcpt[0] for rcpt, _ in smtp_server.messages} == {"an@example.com", "chi@example.com"}
    assert smtp_server.connections == 3  # the first, and a fresh one after each of the two 421s


class TestStartTLSRequired:
    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, SMTP_STARTTLS="1")

    def test_a_server_without_starttls_gets_nothing_in_clear_text(self, app, factory, now, smtp_server):
        with pytest.raises(smtplib.SMTPNotSupportedError):
            mail.send_email("an@example.com", "Hello", "Hello")
        (booking,) = book_for(factory, now, "binh@example.com")
        notifications.send_due(reminder_due(now))
        assert smtp_server.messages == []
        for notification in Notification.select().where(Notification.booking == booking.id):
            assert notification.sent_at is None
            assert "STARTTLS" in notification.last_error


def self_signed_certificate(folder):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loafy test smtp")])
    start = dt.datetime.now(dt.UTC) - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TestStartTLSCertificate:
    @pytest.fixture
    def certificate(self, tmp_path):
        return self_signed_certificate(tmp_path)

    @pytest.fixture
    def smtp_server(self, certificate):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        handler, controller = serve(tls_context=context, require_starttls=True)
        yield handler
        controller.stop()

    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, SMTP_STARTTLS="1")

    def test_a_certificate_nobody_vouches_for_is_refused(self, app, smtp_server):
        with pytest.raises(ssl.SSLCertVerificationError):
            mail.send_email("an@example.com", "Hello", "Hello")
        assert smtp_server.messages == []

    def test_a_trusted_certificate_carries_the_mail(self, app, smtp_server, certificate, monkeypatch):
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # read by ssl.create_default_context()
        mail.send_email("an@example.com", "Hello", "Hello")
        assert [rcpt for rcpt, _ in smtp_server.messages] == [["an@example.com"]]
