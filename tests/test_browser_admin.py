"""Issue 24: the staff area on a staff member's phone (390 px) and at desktop size, in real Chromium.

Every staff list fits the screen (no sideways scroll), the menu opens and every item is on screen,
and an amount of money never breaks across lines.
"""

import pytest

from loafy.booking import staff
from loafy.booking.bookings import book_session
from tests.oidc_fixtures import oidc_issuer, oidc_provider  # noqa: F401
from tests.test_browser import (  # noqa: F401 - the browser fixtures
    DESKTOP,
    app_config,
    browser_type_launch_args,
    open_context,
    server,
    signed_in_page,
)

pytestmark = pytest.mark.browser
STAFF_PHONE = {"width": 390, "height": 844}
LISTS = (
    "/admin/",
    "/admin/sessions/",
    "/admin/bookings/",
    "/admin/players/",
    "/admin/audit/",
    "/admin/jobs/",
)


@pytest.fixture
def busy_club(factory, now):
    admin = factory.user(role="admin", name="Nguyễn Quản Trị Viên Câu Lạc Bộ")
    for n in range(3):
        club_session = factory.club_session(
            title=f"Cầu lông tối thứ Ba — sân {n} (nhóm trung bình khá)", price=360_000, max_slots=12
        )
        for guests in (0, 2, 3):
            player = factory.user(
                name=f"Trần Thị Phương Thảo {n}{guests}", email=f"rat.dai.{n}.{guests}@example.com"
            )
            booking = book_session(player, club_session.id, guests, "bank_transfer", now)
            if guests:
                staff.mark_paid(admin, booking.id, "bank_transfer", now)
    return admin


@pytest.mark.parametrize(
    ("viewport", "locale"), [(STAFF_PHONE, "vi-VN"), (DESKTOP, "en-GB")], ids=["phone", "desktop"]
)
def test_every_staff_list_fits_the_screen(app, server, open_context, busy_club, viewport, locale):  # noqa: F811
    page = signed_in_page(open_context, app, busy_club, viewport=viewport, locale=locale)
    for path in LISTS:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], (path, width)
        # Money never wraps: "360.000 ₫" is one line in every cell that holds it.
        broken = page.evaluate(
            """() => [...document.querySelectorAll('td')]
                .filter(td => /\\d\\.\\d{3} ₫$/.test(td.textContent.trim()))
                .filter(td => { const r = document.createRange(); r.selectNodeContents(td);
                                return r.getClientRects().length > 1; })
                .map(td => td.textContent.trim())"""
        )
        assert not broken, (path, broken)


def test_the_staff_menu_fits_a_phone(app, server, open_context, busy_club):  # noqa: F811
    page = signed_in_page(open_context, app, busy_club, viewport=STAFF_PHONE, locale="vi-VN")
    page.goto("/admin/bookings/")
    page.get_by_role("button", name="Trình đơn").click()
    items = page.locator("#admin-navbar-collapse .nav-link")
    page.locator("#admin-navbar-collapse.show").wait_for()
    for index in range(items.count()):
        box = items.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= STAFF_PHONE["width"], (
            items.nth(index).inner_text(),
            box,
        )
    assert page.get_by_role("link", name="Trang công khai").is_visible()
