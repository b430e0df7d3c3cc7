"""A browser journey on a phone: buy a session pack, the transfer arrives, book with the pack."""

import re

import pytest
from playwright.sync_api import expect

from loafy.models import Booking, Pass
from loafy.passes import passes
from tests.oidc_fixtures import oidc_issuer  # noqa: F401
from tests.test_browser import (  # noqa: F401
    PHONE,
    app_config,
    browser_type_launch_args,
    open_context,
    server,
    signed_in_page,
)
from tests.test_browser import pytestmark as browser_marks

pytestmark = browser_marks


@pytest.mark.browser
def test_buy_a_pack_on_a_phone_then_book_with_it(app, server, open_context, factory, now):  # noqa: F811
    factory.product("pack", name="10-session pack", price=900_000, credits=10, validity_days=90)
    club_session = factory.club_session(title="Thursday smash", price=150_000)
    player = factory.user(name="Lan Nguyen")
    page = signed_in_page(open_context, app, player, viewport=PHONE)

    page.goto("/")
    page.get_by_role("link", name="Passes").click()
    product = page.locator(".product", has_text="10-session pack")
    expect(product).to_contain_text("900.000 ₫")
    product.get_by_label("Bank transfer (VietQR)").check()
    product.get_by_role("button", name="Buy").click()
    page.wait_for_url(re.compile(r"/passes/\d+/pay$"))
    club_pass = Pass.get(Pass.user == player.id)
    expect(page.locator(".bank")).to_contain_text(club_pass.code)
    expect(page.locator(".vietqr svg")).to_be_visible()

    # The transfer arrives (what the bank matcher does with a memo holding the code).
    passes.record_pass_payment(
        club_pass.id, provider="bank_transfer", provider_id="sepay:1", amount=900_000, now=now
    )
    expect(page.locator("#pay-state")).to_have_text("Paid: your pass is active.", timeout=10_000)

    page.goto(f"/sessions/{club_session.id}")
    page.get_by_label("Use my pack (10 credits left)").check()
    page.get_by_label("Guests you bring").select_option("1")
    page.get_by_role("button", name="Book now").click()
    page.wait_for_url(re.compile(r"/bookings/\d+$"))
    booking = Booking.get(Booking.user == player.id)
    assert (booking.status, booking.payment_status, booking.club_pass_id) == ("confirmed", "paid", club_pass.id)
    expect(page.locator(".ticket .status")).to_have_text("Confirmed")
    page.goto("/profile")
    expect(page.locator(f"#pass-{club_pass.id} .credits")).to_contain_text("8 credits left")
