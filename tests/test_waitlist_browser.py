"""The waitlist journey in a real Chromium on a phone: a player joins a full session's waitlist from
its page, a holder cancels, the offer appears in My bookings with its countdown, and the player pays
it by card (localstripe, the app over real HTTP where Stripe's webhooks reach it)."""

import re
from datetime import UTC

from playwright.sync_api import expect

from loafy.booking import waitlist
from loafy.booking.bookings import book_session, cancel_booking
from loafy.models import Booking, WaitlistEntry
from tests.oidc_fixtures import oidc_issuer  # noqa: F401 - app_config's provider
from tests.stripe_fixtures import localstripe_url, served, stripe_live, wait_for  # noqa: F401
from tests.test_browser import (  # noqa: F401 - fixtures
    PHONE,
    TIMEOUT_MS,
    app_config,
    browser_type_launch_args,
    session_cookie,
)
from tests.test_browser import pytestmark as browser_marks

pytestmark = browser_marks


def test_join_from_a_phone_get_the_offer_and_pay_it(app, browser, factory, now, stripe_live):  # noqa: F811
    live = stripe_live
    club_session = factory.club_session(title="Full doubles", price=150_000, max_slots=2)
    holder = book_session(factory.user(), club_session, 1, "bank_transfer", now)
    player = factory.user(name="Lan")
    context = browser.new_context(locale="en-GB", viewport=PHONE, base_url=live.app_base)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": "session", "value": session_cookie(app, player), "url": live.app_base}])
    try:
        page = context.new_page()
        page.clock.install(time=now.replace(tzinfo=UTC))  # the countdown runs on the server's time
        page.goto(f"/sessions/{club_session.id}")
        expect(page.get_by_role("button", name="Join the waitlist")).to_be_visible()
        page.get_by_label("Party size").select_option("2")
        page.get_by_label("Card").check()
        page.get_by_role("button", name="Join the waitlist").click()
        expect(page.locator(".position")).to_have_text("Your position: 1")
        expect(page.locator(".waiting-count")).to_have_text("1 party waiting")
        entry = WaitlistEntry.get(WaitlistEntry.user == player.id)
        assert (entry.party_size, entry.payment_method) == (2, "stripe")

        cancel_booking(holder.user, holder.id, now)  # two spots free: the offer is made at once
        offer = Booking.get_by_id(WaitlistEntry.get_by_id(entry.id).booking_id)
        page.goto("/bookings")
        item = page.locator(".waitlist-offered")
        expect(item).to_contain_text("Offer: 2 spots")
        expect(item.locator(".countdown")).to_contain_text(re.compile(r"Pay within 1:59:\d\d"))
        item.get_by_role("link", name=re.compile("Pay")).click()
        page.wait_for_url(re.compile(rf"/bookings/{offer.id}/pay$"))
        expect(page.locator("#pay-amount")).to_have_text("300.000 ₫")
        page.locator("#pay-button").click()
        intent_id = wait_for(
            lambda: Booking.get_by_id(offer.id).stripe_payment_intent_id, message="an intent"
        )
        live.pay(intent_id)
        wait_for(lambda: Booking.get_by_id(offer.id).status == "confirmed", message="the webhook")
        assert WaitlistEntry.get_by_id(entry.id).status == "booked"
        page.goto(f"/sessions/{club_session.id}")
        expect(page.get_by_role("heading", name="You are in")).to_be_visible()
        assert waitlist.waiting_count(club_session.id) == 0
    finally:
        context.close()
