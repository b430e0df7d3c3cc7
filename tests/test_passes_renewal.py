"""Auto-renew against localstripe: a Subscription on the product's Plan; each paid invoice adds one
pass, stacked, once per invoice even when delivered twice; a deleted subscription stops renewal."""

import re
from datetime import UTC

import pytest

from loafy.models import LedgerEntry, Pass, PassProduct
from loafy.passes import renewal
from tests.helpers import csrf_token, login, reload
from tests.stripe_fixtures import localstripe_url, served, stripe_live, stripe_settings, wait_for  # noqa: F401


@pytest.fixture
def app_config(app_config, localstripe_url):  # noqa: F811
    return {**app_config, **stripe_settings(localstripe_url)}


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


def renewing_member(factory, now):
    player = factory.user()
    product = factory.product("period", price=300_000, duration_days=30, renewable=True)
    club_pass = factory.paid_pass(player, "period", product=product, payment_method="stripe")
    return player, renewal.turn_on(player, club_pass.id, "pm_card_visa", now)


def charge_the_next_period(live, club_pass):
    """What Stripe does at the end of a period: invoice the subscription and charge the card."""
    sub = live.client.v1.subscriptions.retrieve(club_pass.stripe_subscription_id)
    invoice = live.client.v1.invoices.create(params={"customer": sub.customer, "subscription": sub.id})
    return live.client.v1.invoices.pay(invoice.id)


def test_a_paid_invoice_renews_once_even_delivered_twice(live, factory, now):
    player, club_pass = renewing_member(factory, now)
    assert club_pass.auto_renew and club_pass.stripe_subscription_id.startswith("sub_")
    assert PassProduct.get_by_id(club_pass.product_id).stripe_plan_id.startswith("plan_")
    sub = live.client.v1.subscriptions.retrieve(club_pass.stripe_subscription_id)
    assert sub.trial_end == int(club_pass.ends_at.replace(tzinfo=UTC).timestamp())  # first charge at its end

    invoice = charge_the_next_period(live, club_pass)
    wait_for(lambda: Pass.select().where(Pass.user == player.id).count() == 2, message="the renewal")
    renewed = Pass.select().where(Pass.user == player.id).order_by(Pass.id.desc()).first()
    assert renewed.starts_at == club_pass.ends_at and renewed.status == "paid"
    assert renewed.auto_renew and not reload(club_pass).auto_renew
    [event] = [e for e in live.events("invoice.payment_succeeded") if e["data"]["object"]["id"] == invoice.id]
    assert live.deliver(event).json()["outcome"] == "duplicate"
    replay = dict(event, id="evt_invoice_replay")
    assert live.deliver(replay).json()["outcome"] == "duplicate"  # a new event id, the same invoice
    assert Pass.select().where(Pass.user == player.id).count() == 2
    assert LedgerEntry.select().where(LedgerEntry.provider_id == invoice.id).count() == 1


def test_turning_it_off_on_the_profile_stops_renewal(live, factory, now, client):
    player, club_pass = renewing_member(factory, now)
    login(client, player)
    page = client.get("/profile").get_data(as_text=True)
    assert "Tự động gia hạn" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/profile/passes/{club_pass.id}/auto-renew/off", data={"csrf_token": token})
    assert response.status_code == 302
    assert reload(club_pass).auto_renew is False
    assert live.client.v1.subscriptions.retrieve(club_pass.stripe_subscription_id).status == "canceled"


def test_a_subscription_cancelled_at_stripe_stops_renewal(live, factory, now):
    _player, club_pass = renewing_member(factory, now)
    live.client.v1.subscriptions.cancel(club_pass.stripe_subscription_id)
    wait_for(lambda: reload(club_pass).auto_renew is False, message="customer.subscription.deleted")
    [event] = live.events("customer.subscription.deleted")
    assert live.deliver(event).json()["outcome"] == "duplicate"


def test_auto_renew_over_the_api(live, factory, now, client):
    player = factory.user()
    product = factory.product("period", duration_days=30, renewable=True)
    club_pass = factory.paid_pass(player, "period", product=product)
    token = login(client, player) and csrf_token(client)
    on = client.post(
        f"/api/passes/{club_pass.id}/auto-renew",
        json={"payment_method": "pm_card_visa"},
        headers={"X-CSRFToken": token},
    )
    assert on.status_code == 200, on.data
    assert on.get_json()["auto_renew"] is True
    off = client.delete(f"/api/passes/{club_pass.id}/auto-renew", headers={"X-CSRFToken": token})
    assert off.status_code == 200 and off.get_json()["auto_renew"] is False
    bad = client.post(
        f"/api/passes/{club_pass.id}/auto-renew", json={"payment_method": "x"}, headers={"X-CSRFToken": token}
    )
    assert bad.status_code == 422


def test_only_a_running_renewable_membership_renews(live, factory, now):
    player = factory.user()
    pack = factory.paid_pass(player, "pack")
    with pytest.raises(renewal.NotRenewable):
        renewal.turn_on(player, pack.id, "pm_card_visa", now)
    plain = factory.paid_pass(player, "period")  # its product is not marked renewable
    with pytest.raises(renewal.NotRenewable):
        renewal.turn_on(player, plain.id, "pm_card_visa", now)
