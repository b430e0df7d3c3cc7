"""Paying a pass by card against a real localstripe, webhooks over real HTTP; the passes API."""

from datetime import timedelta

import pytest

from loafy import clock
from loafy.models import LedgerEntry, Pass, WebhookEvent
from loafy.passes import card, passes
from tests.helpers import csrf_token, login, reload
from tests.stripe_fixtures import localstripe_url, served, stripe_live, stripe_settings, wait_for  # noqa: F401

PRICE = 300_000


@pytest.fixture
def app_config(app_config, localstripe_url):  # noqa: F811
    return {**app_config, **stripe_settings(localstripe_url)}


@pytest.fixture
def live(stripe_live):  # noqa: F811
    return stripe_live


def ledger(club_pass):
    rows = LedgerEntry.select().where(LedgerEntry.club_pass == club_pass.id).order_by(LedgerEntry.id)
    return [(r.kind, r.provider, r.provider_id, r.amount) for r in rows]


def api(client, method, path, body=None):
    return client.open(path, method=method, json=body, headers={"X-CSRFToken": csrf_token(client)})


def test_buy_a_membership_by_card_end_to_end_with_duplicated_and_reordered_webhooks(
    live, factory, now, client
):
    player = factory.user()
    product = factory.product("period", price=PRICE, duration_days=30)
    login(client, player)
    bought = api(client, "POST", "/api/passes", {"product_id": product.id, "payment_method": "stripe"})
    assert bought.status_code == 201, bought.data
    body = bought.get_json()
    assert body["code"].startswith("LP-") and body["status"] == "pending_payment" and body["amount"] == PRICE
    assert body["product"]["id"] == product.id and body["payment_deadline"].endswith("+00:00")

    response = api(client, "POST", "/api/payments/stripe/intent", {"pass_id": body["id"]})
    assert response.status_code == 200, response.data
    intent = response.get_json()
    assert (intent["amount"], intent["currency"]) == (PRICE, "vnd")
    at_stripe = live.intent(intent["payment_intent_id"])
    assert at_stripe["metadata"] == {"pass_id": str(body["id"]), "pass_code": body["code"]}
    # Asking again (a reload) reuses the open intent.
    again = api(client, "POST", "/api/payments/stripe/intent", {"pass_id": body["id"]}).get_json()
    assert again["payment_intent_id"] == intent["payment_intent_id"]

    live.dispatcher.hold = True
    live.pay(intent["payment_intent_id"])
    held_body, held_signature = live.wait_held()[0]
    club_pass = Pass.get_by_id(body["id"])
    assert reload(club_pass).status == "pending_payment"  # the webhook has not arrived

    first = live.deliver(held_body, signature=held_signature)
    assert first.status_code == 200 and first.json()["outcome"] == "activated"
    second = live.deliver(held_body, signature=held_signature)
    assert second.json()["outcome"] == "duplicate"
    replay = live.event("evt_pass_replay", "payment_intent.succeeded", {"id": intent["payment_intent_id"]})
    assert live.deliver(replay).json()["outcome"] == "duplicate"
    row = reload(club_pass)
    assert row.status_at(now) == "active" and row.ends_at == now + timedelta(days=30)
    assert ledger(club_pass) == [
        ("intent", "stripe", intent["payment_intent_id"], PRICE),
        ("payment", "stripe", intent["payment_intent_id"], PRICE),
    ]
    assert WebhookEvent.select().count() == 2
    me = client.get("/api/auth/me").get_json()["user"]["membership"]
    assert me["active"] is True and me["ends_at"].startswith((now + timedelta(days=30)).date().isoformat())
    mine = client.get("/api/passes").get_json()
    assert [p["status"] for p in mine["items"]] == ["active"] and mine["total"] == 1
    refused = api(client, "POST", "/api/payments/stripe/intent", {"pass_id": body["id"]})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "already_confirmed"


def test_a_card_payment_after_the_deadline_still_activates_the_pass(live, factory, now):
    player = factory.user()
    club_pass = passes.buy_pass(player, factory.product("pack", price=PRICE).id, "stripe", now)
    intent_id = card.create_pass_intent(player, club_pass.id, now)["payment_intent_id"]
    live.dispatcher.hold = True
    live.pay(intent_id)  # paid at the last moment; the webhook is late
    held_body, held_signature = live.wait_held()[0]
    late = now + timedelta(minutes=45)
    clock.freeze(late)
    # The sweep expires it; settling its intent finds the money and activates it (invariant 4).
    assert passes.expire_unpaid_passes(late) == [club_pass.code]
    assert reload(club_pass).status == "paid" and reload(club_pass).starts_at == late
    assert live.deliver(held_body, signature=held_signature).json()["outcome"] == "duplicate"
    assert [r[0] for r in ledger(club_pass)] == ["intent", "payment"]


def test_staff_cancel_a_card_pass_and_the_money_goes_back_once(live, factory, now):
    player, admin = factory.user(), factory.user(role="admin")
    club_pass = passes.buy_pass(player, factory.product("pack", price=PRICE).id, "stripe", now)
    intent_id = card.create_pass_intent(player, club_pass.id, now)["payment_intent_id"]
    live.pay(intent_id)
    wait_for(lambda: reload(club_pass).status == "paid", message="the webhook")
    passes.cancel_pass(admin, club_pass.id, now, refund=True)  # the settle job runs inline after commit
    refunds = [r for r in ledger(club_pass) if r[0] == "refund"]
    assert [r[3] for r in refunds] == [PRICE]
    assert reload(club_pass).refund_due_at is None
    assert card.settle_pass(club_pass.id, now) == "nothing"  # again: nothing more goes back
    assert live.charge(intent_id)["amount_refunded"] == PRICE


def test_a_wrong_amount_is_recorded_and_given_back(live, factory, now):
    player = factory.user()
    club_pass = passes.buy_pass(player, factory.product("pack", price=PRICE).id, "stripe", now)
    intent_id = card.create_pass_intent(player, club_pass.id, now)["payment_intent_id"]
    live.client.v1.payment_intents.update(intent_id, params={"amount": 1_000})
    live.pay(intent_id)
    wait_for(lambda: len([r for r in ledger(club_pass) if r[0] == "refund"]) == 1, message="the refund")
    assert reload(club_pass).status == "pending_payment"


def test_products_api_is_admin_only_and_lists_active_ones(client, factory):
    admin, player = factory.user(role="admin"), factory.user()
    login(client, player)
    refused = api(
        client, "POST", "/api/pass-products", {"name": "x", "kind": "period", "price": 1, "duration_days": 1}
    )
    assert refused.status_code == 403
    login(client, admin)
    created = api(
        client,
        "POST",
        "/api/pass-products",
        {"name": "Gói 10 buổi", "kind": "pack", "price": 900_000, "credits": 10, "validity_days": 90},
    )
    assert created.status_code == 201, created.data
    product = created.get_json()
    assert (product["kind"], product["credits"], product["early_access"], product["active"]) == (
        "pack",
        10,
        True,
        True,
    )
    bad = api(client, "PUT", f"/api/pass-products/{product['id']}", {"credits": 0})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "credits"
    hidden = api(client, "PUT", f"/api/pass-products/{product['id']}", {"active": False})
    assert hidden.status_code == 200 and hidden.get_json()["active"] is False
    assert client.get("/api/pass-products").get_json()["items"] == []
    gone = api(client, "POST", "/api/passes", {"product_id": product["id"], "payment_method": "cash"})
    assert gone.status_code == 404


def test_booking_with_a_pack_over_the_api(client, factory, now):
    player = factory.user()
    factory.paid_pass(player, "pack", credits=1)
    login(client, player)
    first = api(
        client, "POST", "/api/bookings", {"session_id": factory.club_session().id, "payment_method": "pass"}
    )
    assert first.status_code == 201, first.data
    assert (first.get_json()["status"], first.get_json()["payment_status"]) == ("confirmed", "paid")
    second = api(
        client, "POST", "/api/bookings", {"session_id": factory.club_session().id, "payment_method": "pass"}
    )
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "no_credits"
    assert "no credits left" in second.get_json()["error"]["message"]
    assert client.get("/api/passes").get_json()["items"][0]["credits_left"] == 0
