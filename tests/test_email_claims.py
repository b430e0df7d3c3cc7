"""An e-mail claim that is not one plain address is refused at sign-in, and the mail layer never
writes unchecked text into a header."""

import email
from email.header import decode_header, make_header

import pytest

from loafy import mail
from loafy.models import Identity, User
from tests.conftest import _test_config
from tests.helpers import english
from tests.oidc_fixtures import (
    flashed,
    fresh_user_per_request,  # noqa: F401 - an autouse fixture
    new_subject,
    oidc_issuer,  # noqa: F401 - a fixture
    oidc_provider,
    set_claims,
    sign_in,
)

BAD_EMAILS = [
    "victim@example.com\r\nBcc: spy@evil.test",
    "victim@example.com\nBcc: spy@evil.test",
    "not-an-address",
    "Spy <spy@evil.test>",
    "a@b.com, spy@evil.test",
    "two@@example.com",
]


@pytest.fixture
def app_config(database_url, tmp_path, oidc_issuer):  # noqa: F811
    return _test_config(database_url, tmp_path, OIDC_PROVIDERS={"dev": oidc_provider(oidc_issuer)})


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_bad_email_claim_is_refused_at_sign_in(client, oidc_issuer, email):  # noqa: F811
    english(client)
    subject = new_subject()
    set_claims(oidc_issuer, subject, email=email, email_verified=True)
    response = sign_in(client, oidc_issuer, subject)
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/login")
    assert any("e-mail address that is not valid" in m for m in flashed(client)), flashed(client)
    assert client.get("/api/auth/me").status_code == 401
    assert User.select().count() == 0 and Identity.select().count() == 0


def test_the_refusal_is_in_vietnamese_by_default(client, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email=BAD_EMAILS[0], email_verified=True)
    sign_in(client, oidc_issuer, subject)
    assert any("địa chỉ e-mail không hợp lệ" in m for m in flashed(client)), flashed(client)


def test_a_plain_address_still_signs_in(client, oidc_issuer):  # noqa: F811
    subject = new_subject()
    set_claims(oidc_issuer, subject, email="Nguyen.Van-A+club@Example.com.vn", email_verified=True)
    assert sign_in(client, oidc_issuer, subject).status_code == 302
    assert User.get().email == "nguyen.van-a+club@example.com.vn"


@pytest.mark.parametrize("to", [e for e in BAD_EMAILS if "<" not in e] + ["x@example.com\x00", "<a@b.c>\r\n"])
def test_the_mail_layer_refuses_to_write_a_bad_address_header(app, outbox, to):
    with pytest.raises(mail.UnsafeHeader):
        mail.send_email(to, "Hello", "Body")
    assert not outbox.exists() or not list(outbox.iterdir())


def test_a_subject_with_line_breaks_stays_one_header(app, outbox):
    path = mail.send_email("player@example.com", "Booked\r\nBcc: spy@evil.test", "Body")
    message = email.message_from_bytes(path.read_bytes())
    assert message.get_all("Bcc") is None
    assert str(make_header(decode_header(message["Subject"]))) == "Booked Bcc: spy@evil.test"
    assert message["To"] == "player@example.com"


def test_a_named_address_is_fine(app, outbox):
    path = mail.send_email('"Nguyễn, Văn A" <a@example.com>', "Hi", "Body")
    assert email.message_from_bytes(path.read_bytes())["To"].endswith("<a@example.com>")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a@b.co", True),
        ("người.chơi@câulông.vn", True),
        ("a@localhost", True),
        ("a b@c.d", False),
        ("a@b..c", False),
        ("@b.c", False),
        ("a@", False),
        ("a" * 65 + "@b.c", False),
        (None, False),
    ],
)
def test_what_an_address_is(text, ok):
    assert mail.is_address(text) is ok
