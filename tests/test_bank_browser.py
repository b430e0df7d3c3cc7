"""The bank-transfer journey in a real Chromium, on a development app (the pay page's "simulate
transfer" button exists only there): book by transfer, press the button, and the page turns
confirmed by itself -- nobody reloads it."""

import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from loafy.models import Booking, LedgerEntry
from tests.conftest import _test_config
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, PHONE, session_cookie

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    pytestmark = [pytest.mark.browser, pytest.mark.skip(reason=f"Chromium not installed at {CHROMIUM}")]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture
def app_config(database_url, tmp_path):
    # Development: the simulate button; jobs inline stand in for the worker `loafy dev` runs.
    return _test_config(database_url, tmp_path, LOAFY_ENV="development", JOBS_INLINE="1")


@pytest.fixture
def server(app):
    http = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield base
    http.shutdown()
    thread.join(5)
    http.server_close()


def test_book_by_transfer_press_simulate_and_see_it_confirmed(app, server, browser, factory):
    club_session = factory.club_session(title="Friday rally", price=120_000, max_slots=8)
    player = factory.user(name="Lan Nguyen")
    context = browser.new_context(locale="en-GB", viewport=PHONE, base_url=server)
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": "session", "value": session_cookie(app, player), "url": server}])
    page = context.new_page()

    page.goto(f"/sessions/{club_session.id}")
    page.get_by_label("Bank transfer (VietQR)").check()
    page.get_by_role("button", name="Book now").click()
    page.wait_for_url(re.compile(r"/bookings/\d+/pay$"))
    booking = Booking.get(Booking.club_session == club_session.id)
    expect(page.locator("#bank-memo")).to_have_text(booking.code)
    expect(page.locator(".deadline")).to_contain_text("Your spot is held until")
    # On a phone the QR code is on the first screen.
    box = page.locator(".vietqr svg").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"]

    page.get_by_role("button", name="Simulate transfer (development)").click()
    expect(page.get_by_text("Transfer received: your booking is confirmed.")).to_be_visible()
    expect(page.locator("#bank-transfer")).to_be_hidden()
    row = Booking.get_by_id(booking.id)
    assert (row.status, row.payment_status) == ("confirmed", "paid")
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 1
    context.close()
