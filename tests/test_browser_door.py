"""The door scanner in a real Chromium: a fake camera films a ticket's QR code and the screen turns
green, the count goes up; a hand scanner's keystrokes (or typing) do the same; searching a name.

Chromium's fake camera plays a Y4M file (`--use-file-for-fake-video-capture`): the test draws the
ticket's QR code into raw YUV 4:2:0 frames itself. Desktop Chromium on Linux has no BarcodeDetector
for QR codes, so this also runs the vendored jsQR decoder.
"""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import segno
from playwright.sync_api import expect
from werkzeug.serving import make_server

from loafy.booking.bookings import book_session
from loafy.door import tickets
from loafy.models import Booking
from tests.helpers import reload
from tests.test_browser import AXE, CHROMIUM, CHROMIUM_ARGS, PHONE, SCREENSHOTS, TIMEOUT_MS, session_cookie

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=f"Chromium not installed at {CHROMIUM}")]

WIDTH, HEIGHT = 640, 480


def qr_y4m(text, path, frames=10):
    """A short Y4M video of `text`'s QR code, black on white, centred (Chromium loops it)."""
    matrix = segno.make(text, error="m").matrix
    border = 4
    size = len(matrix) + 2 * border
    scale = min(WIDTH, HEIGHT) * 8 // 10 // size
    left, top = (WIDTH - size * scale) // 2, (HEIGHT - size * scale) // 2
    luma = bytearray(b"\xff" * (WIDTH * HEIGHT))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if not dark:
                continue
            for dy in range(scale):
                start = (top + (y + border) * scale + dy) * WIDTH + left + (x + border) * scale
                luma[start : start + scale] = b"\x10" * scale
    chroma = b"\x80" * (WIDTH // 2 * HEIGHT // 2)  # no colour
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + bytes(luma) + chroma + chroma)
    return path


@pytest.fixture
def server(app):
    http = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    app.config["BASE_URL"] = base
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield base
    http.shutdown()
    thread.join(5)
    http.server_close()


def door_page(playwright, app, server, user, extra_args=(), locale="en-GB"):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], headless=True
    )
    context = browser.new_context(locale=locale, viewport=PHONE, base_url=server, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.grant_permissions(["camera"], origin=server)
    context.add_cookies([{"name": "session", "value": session_cookie(app, user), "url": server}])
    return browser, context.new_page()


@pytest.fixture
def door(factory, now):
    organizer = factory.user(role="organizer", name="Bình")
    tonight = factory.club_session(
        title="Cầu lông tối nay",
        created_by=organizer,
        starts_at=now + timedelta(hours=1),
        price=0,
        max_slots=20,
    )
    party = book_session(factory.user(name="Trần Thị Hoa"), tonight, 1, "cash", now)  # free: confirmed
    single = book_session(factory.user(name="Lê Văn Nam"), tonight, 0, "cash", now)
    return organizer, tonight, reload(party), reload(single)


def test_the_camera_scans_a_ticket_and_the_screen_turns_green(app, server, playwright, door, tmp_path):
    organizer, _tonight, party, _single = door
    video = qr_y4m(tickets.ticket_url(party), tmp_path / "ticket.y4m")
    camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    browser, page = door_page(playwright, app, server, organizer, camera)
    try:
        page.goto("/door")
        expect(page.locator("#door-count-text")).to_have_text("Checked in 0 of 3 people")
        result = page.locator("#door-result")
        expect(result).to_be_visible(timeout=20_000)  # the camera found the code
        expect(result).to_have_attribute("data-status", "ok")
        expect(result).to_have_class("door-result green")
        expect(page.locator("#door-result-name")).to_have_text("Trần Thị Hoa")
        expect(page.locator("#door-collect")).to_be_hidden()  # nothing to collect: paid (free)
        expect(page.locator("#door-result-detail")).to_contain_text("2 of 2 in")
        expect(page.locator("#door-count-text")).to_have_text("Checked in 2 of 3 people")
        assert reload(party).checked_in_people == 2
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "door-green-phone.png"))
        page.get_by_role("button", name="Next").click()
        page.screenshot(path=str(SCREENSHOTS / "door-scanner-phone.png"))
        # The ticket stays in front of the camera: it is read again, and now says "already".
        expect(result).to_have_attribute("data-status", "already", timeout=20_000)
        expect(result).to_have_class("door-result amber")
        assert reload(party).checked_in_people == 2
    finally:
        browser.close()


def test_a_hand_scanner_or_typing_checks_in_and_search_finds_names(app, server, playwright, door):
    organizer, _tonight, party, single = door
    browser, page = door_page(playwright, app, server, organizer)  # no camera at all
    try:
        page.goto("/door")
        expect(page.locator("#door-camera-note")).to_be_visible()  # says to type or scan instead
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        field = page.get_by_label("Scan or type a code")
        field.fill(single.code.lower())
        field.press("Enter")  # what a hand scanner sends after the code
        result = page.locator("#door-result")
        expect(result).to_have_attribute("data-status", "ok")
        expect(page.locator("#door-count-text")).to_have_text("Checked in 1 of 3 people")
        page.get_by_role("button", name="Next").click()
        expect(result).to_be_hidden()

        page.get_by_label("Search by name").fill("hoa")  # no accents typed
        item = page.locator("#door-search-results li").filter(has_text="Trần Thị Hoa")
        expect(item).to_be_visible()
        item.get_by_role("combobox").select_option("1")  # one of the two is here
        item.get_by_role("button", name="Check in").click()
        expect(result).to_have_attribute("data-status", "ok")
        expect(page.locator("#door-result-title")).to_have_text("Checked in, more to come")
        expect(page.locator("#door-count-text")).to_have_text("Checked in 2 of 3 people")
        page.get_by_role("button", name="Undo").click()
        expect(page.locator("#door-result-title")).to_have_text("Check-in undone")
        assert Booking.get_by_id(party.id).checked_in_people == 0
        page.get_by_role("button", name="Next").click()

        field.fill("LB-NOPE2")
        field.press("Enter")
        expect(result).to_have_attribute("data-status", "invalid")
        expect(result).to_have_class("door-result red")
    finally:
        browser.close()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core not installed: `bash .ci/services.sh` installs it")
def test_axe_finds_no_serious_violations_at_the_door(app, server, playwright, door):
    organizer, _tonight, party, _single = door
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    problems = {}
    try:
        for locale in ("vi-VN", "en-GB"):
            # axe is injected as a script, which the CSP (rightly) refuses; the test context bypasses it.
            context = browser.new_context(locale=locale, viewport=PHONE, base_url=server, bypass_csp=True)
            context.add_cookies([{"name": "session", "value": session_cookie(app, organizer), "url": server}])
            anonymous = browser.new_context(locale=locale, viewport=PHONE, base_url=server, bypass_csp=True)
            for ctx, path in ((context, "/door"), (anonymous, f"/t/{party.ticket_secret}")):
                page = ctx.new_page()
                page.goto(path)
                page.add_script_tag(path=str(AXE))
                result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
                serious = [
                    (v["id"], v["help"], len(v["nodes"]))
                    for v in result["violations"]
                    if v["impact"] in ("serious", "critical")
                ]
                if serious:
                    problems[f"{locale} {path}"] = serious
            context.close()
            anonymous.close()
    finally:
        browser.close()
    assert problems == {}
