"""Issue 24: every staff page, rendered in Vietnamese, says things in words, in Vietnamese.

The test walks the staff menu (so a new view is covered the day it is added), opens each list and the
first details and edit page of each, and compares the page's visible text in Vietnamese and English:
a phrase that reads the same in both is an untranslated label, unless it is the test's own data.
"""

import re
from html.parser import HTMLParser

import pytest

from loafy.booking import staff
from loafy.booking.bookings import book_session
from tests.helpers import login

# The data this test creates, and words that are the same in both languages.
DATA = ("Cầu lông tối thứ Ba", "Nhà thi đấu Quận 1", "Trần Văn An", "Lê Thị Bình", "@example.com")
SAME_IN_BOTH = {"Loafy", "VietQR", "Stripe", "CSV", "OK", "ID", "RQ", "Email", "E-mail", "VND", "EN", "VI"}
CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")  # a raw state or field code: pending_payment, bank_transfer
SKIP_TAGS = {"script", "style", "noscript", "code"}  # code: identifiers (a provider id)


class _Text(HTMLParser):
    """The visible text of a page, with placeholders, titles, labels and option texts."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self._skip += 1
        for name, value in attrs:
            if name in ("placeholder", "title", "aria-label") and value:
                self.parts.append(value.strip())

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if data.lstrip().startswith("{"):
            return  # Flask-Admin's filter definitions, JSON for its script
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


def visible(html):
    parser = _Text()
    parser.feed(html)
    return parser.parts


def _english_phrase(text):
    if any(d in text for d in DATA) or text in SAME_IN_BOTH:
        return False
    if re.fullmatch(r"[\W\d_]*(LB|LP)-[A-Z0-9]+[\W\d_]*", text):
        return False
    return bool(re.search(r"[A-Za-z]{3,}", text))


@pytest.fixture
def staff_pages(app, client, factory, now):
    admin = factory.user(role="admin", name="Trần Văn An")
    player = factory.user(name="Lê Thị Bình")
    club_session = factory.club_session(title="Cầu lông tối thứ Ba", allow_pay_at_door=True)
    booking = book_session(player, club_session.id, 1, "bank_transfer", now)
    staff.mark_paid(admin, booking.id, "bank_transfer", now)
    login(client, admin)
    return client


def _get(client, path, language):
    answer = client.get(path, headers={"Accept-Language": language})
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.get_data(as_text=True)


def _staff_paths(client):
    """The menu's pages, then the first details and edit page each list links to."""
    home = _get(client, "/admin/", "vi")
    menu = sorted(set(re.findall(r'href="(/admin/[^"?#]*)"', home)))
    paths = list(menu)
    for path in menu:
        page = _get(client, path, "vi")
        for kind in ("details", "edit"):
            found = re.search(rf'href="({re.escape(path.rstrip("/"))}/{kind}/\?id=[^"&]+)', page)
            if found:
                paths.append(found.group(1).replace("&amp;", "&"))
    new = re.search(r'href="(/admin/sessions/new/[^"]*)"', _get(client, "/admin/sessions/", "vi"))
    paths.append(new.group(1).replace("&amp;", "&") if new else "/admin/sessions/new/")
    return paths


def test_every_staff_page_in_vietnamese_has_no_raw_code_and_no_english_label(staff_pages):
    client = staff_pages
    paths = _staff_paths(client)
    assert any("/bookings/details/" in p for p in paths) and any("/sessions/edit/" in p for p in paths)
    problems = []
    for path in paths:
        vi_text = visible(_get(client, path, "vi"))
        en_text = set(visible(_get(client, path, "en")))
        for text in vi_text:
            for code in CODE.findall(text):
                problems.append(f"{path}: raw code {code!r} in {text!r}")
            if text in en_text and _english_phrase(text):
                problems.append(f"{path}: untranslated {text!r}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_flask_admins_own_words_are_corrected(staff_pages):
    client = staff_pages
    form = _get(client, "/admin/sessions/new/", "vi")
    assert "bản ghi" not in form and "kỷ lục" not in form.lower()
    assert "Lưu và thêm mục khác" in form
    listing = _get(client, "/admin/sessions/", "vi")
    assert 'placeholder="None"' not in listing and 'placeholder="Tìm kiếm"' in listing


def test_states_methods_and_booleans_are_words_in_both_languages(staff_pages):
    client = staff_pages
    vi = _get(client, "/admin/bookings/", "vi")
    en = _get(client, "/admin/bookings/", "en")
    assert "Đã xác nhận" in vi and "Đã thanh toán" in vi and "Chuyển khoản (VietQR)" in vi
    assert "Confirmed" in en and "Paid" in en and "Bank transfer (VietQR)" in en
    details = client.get("/admin/sessions/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    session_id = re.search(r"/admin/sessions/details/\?id=(\d+)", details).group(1)
    page = _get(client, f"/admin/sessions/details/?id={session_id}", "vi")
    assert re.search(r"<b>Tiền mặt tại cửa</b>\s*</td>\s*<td>\s*Có\s*</td>", page)


def test_the_staff_area_looks_like_loafy_and_links_both_ways(staff_pages):
    client = staff_pages
    page = _get(client, "/admin/", "vi")
    assert "/static/admin.css" in page and "favicon.svg" in page
    assert 'href="/"' in page  # back to the public site
    assert page.count("<h1") == 1 and '<h1 class="h4 my-3">Bảng điều khiển</h1>' in page  # said once
    public = _get(client, "/", "vi")
    assert 'href="/admin/"' in public


def test_the_audit_log_is_written_in_words_with_links(staff_pages):
    client = staff_pages
    page = _get(client, "/admin/audit/", "vi")
    assert "Ghi nhận thanh toán" in page and "booking.mark_paid" not in page
    assert "Số tiền: 200.000" in page and "amount" not in page
    assert re.search(r'href="/admin/bookings/details/\?id=\d+"', page)


def test_sessions_list_the_next_ones_first(staff_pages, factory, now):
    from datetime import timedelta

    factory.club_session(title="Past one", starts_at=now - timedelta(days=3))
    factory.club_session(title="Far one", starts_at=now + timedelta(days=20))
    factory.club_session(title="Next one", starts_at=now + timedelta(hours=5))
    page = _get(staff_pages, "/admin/sessions/", "en")
    order = [page.index(t) for t in ("Next one", "Cầu lông tối thứ Ba", "Far one", "Past one")]
    assert order == sorted(order)


@pytest.mark.parametrize(
    ("language", "expected"), [("vi", "Rất tiếc, buổi này đã hết chỗ."), ("en", "The session is full now.")]
)
def test_a_core_refusal_is_flashed_to_staff_in_their_language(app, language, expected):
    from flask import get_flashed_messages

    from admin.base import flash_error
    from loafy.errors import LoafyError

    with app.test_request_context("/admin/", headers={"Accept-Language": language}):
        flash_error(LoafyError("The session is full now.", code="full"))
        assert get_flashed_messages() == [expected]
