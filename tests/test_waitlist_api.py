"""The waitlist through the JSON API: DESIGN.md's scenario end to end (full, join, cancel, offer,
pay by card against localstripe, an offer lapsing to the next entry), each refusal, and who may see
and remove what."""

import json
from datetime import timedelta

import pytest

from loafy import clock
from loafy.booking.bookings import expire_unpaid
from loafy.checks import find_violations
from loafy.models import AuditLog, Booking, WaitlistEntry
from tests.helpers import reload
from tests.oidc_fixtures import fresh_user_per_request  # noqa: F401 - an autouse fixture
from tests.test_api import bearer, error_of
from tests.test_api_scenarios import (  # noqa: F401 - fixtures
    _signed,
    app_config,
    localstripe,
    payments_app_config,
)


def book(client, user, club_session, guests=0, method="bank_transfer"):
    response = client.post(
        "/api/bookings",
        json={"session_id": club_session.id, "guest_count": guests, "payment_method": method},
        headers=bearer(user),
    )
    return response


def join(client, user, club_session, party, min_party=None, method=None):
    body = {"party_size": party}
    if min_party is not None:
        body["min_party"] = min_party
    if method is not None:
        body["payment_method"] = method
    return client.post(f"/api/sessions/{club_session.id}/waitlist", json=body, headers=bearer(user))


def my_waitlist(client, user):
    response = client.get("/api/waitlist", headers=bearer(user))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_join_answers_the_contract(client, factory):
    club_session = factory.club_session(max_slots=2)
    holder = factory.user()
    assert book(client, holder, club_session, guests=1).status_code == 201
    player = factory.user()
    response = join(client, player, club_session, 3, min_party=2)
    assert response.status_code == 201, response.get_data(as_text=True)
    entry = response.get_json()
    assert {
        k: entry[k] for k in ("session_id", "party_size", "min_party", "status", "position", "booking_id")
    } == {
        "session_id": club_session.id,
        "party_size": 3,
        "min_party": 2,
        "status": "waiting",
        "position": 1,
        "booking_id": None,
    }
    assert isinstance(entry["id"], int)
    assert response.headers["Location"].endswith(f"/api/waitlist/{entry['id']}")
    listed = my_waitlist(client, player)
    assert (listed["total"], listed["page"], [e["id"] for e in listed["items"]]) == (1, 1, [entry["id"]])
    assert my_waitlist(client, holder)["items"] == []
    # min_party defaults to party_size
    second = join(client, factory.user(), club_session, 2).get_json()
    assert (second["min_party"], second["position"]) == (2, 2)


def test_refusals(client, factory, now):
    club_session = factory.club_session(max_slots=2)
    holder = factory.user()
    book(client, holder, club_session)
    error_of(join(client, factory.user(), club_session, 1), 409, "not_full")
    book(client, factory.user(), club_session)
    player = factory.user()
    assert join(client, player, club_session, 1).status_code == 201
    error_of(join(client, player, club_session, 1), 409, "duplicate")
    error_of(join(client, holder, club_session, 1), 409, "duplicate")
    for party, min_party in ((0, None), (5, None), (2, 3), ("two", None)):
        error = error_of(join(client, factory.user(), club_session, party, min_party), 422)
        assert error["field"] in ("party_size", "min_party")
    response = client.post(
        f"/api/sessions/{club_session.id}/waitlist", json={"min_party": 1}, headers=bearer(factory.user())
    )
    assert error_of(response, 422)["field"] == "party_size"
    error_of(join(client, factory.user(), club_session, 1, method="bitcoin"), 422)
    cancelled = factory.club_session(max_slots=1, available_slots=0, status="cancelled")
    error_of(join(client, factory.user(), cancelled, 1), 409, "closed")
    started = factory.club_session(starts_at=now - timedelta(minutes=5), max_slots=1, available_slots=0)
    error_of(join(client, factory.user(), started, 1), 409, "closed")
    draft = factory.club_session(status="draft", max_slots=1, available_slots=0)
    error_of(join(client, factory.user(), draft, 1), 404)
    assert client.post(f"/api/sessions/{club_session.id}/waitlist", json={"party_size": 1}).status_code == 401
    assert (
        client.post(
            "/api/sessions/999999/waitlist", json={"party_size": 1}, headers=bearer(player)
        ).status_code
        == 404
    )


def test_who_sees_and_removes_entries(client, factory):
    organizer, other_organizer = factory.user(role="organizer"), factory.user(role="organizer")
    admin = factory.user(role="admin")
    club_session = factory.club_session(max_slots=1, created_by=organizer)
    book(client, factory.user(), club_session)
    player, stranger = factory.user(), factory.user()
    entry = join(client, player, club_session, 1).get_json()
    second = join(client, factory.user(), club_session, 1).get_json()

    assert client.get(f"/api/waitlist/{entry['id']}", headers=bearer(stranger)).status_code == 404
    assert client.delete(f"/api/waitlist/{entry['id']}", headers=bearer(stranger)).status_code == 404
    assert client.get(f"/api/waitlist/{entry['id']}", headers=bearer(other_organizer)).status_code == 404
    staff_list = client.get(f"/api/waitlist?session_id={club_session.id}", headers=bearer(organizer))
    assert staff_list.status_code == 200
    items = staff_list.get_json()["items"]
    assert [(e["id"], e["position"]) for e in items] == [(entry["id"], 1), (second["id"], 2)]
    assert items[0]["user"]["id"] == player.id
    for who in (player, other_organizer):
        assert (
            client.get(f"/api/waitlist?session_id={club_session.id}", headers=bearer(who)).status_code == 403
        )
    assert client.get("/api/waitlist?session_id=999999", headers=bearer(admin)).status_code == 404
    assert client.get(f"/api/waitlist?session_id={club_session.id}", headers=bearer(admin)).status_code == 200

    removed = client.delete(f"/api/waitlist/{entry['id']}", headers=bearer(organizer))
    assert removed.status_code == 200
    assert removed.get_json()["status"] == "left"
    assert AuditLog.get().action == "waitlist.remove"
    assert client.get(f"/api/waitlist/{second['id']}", headers=bearer(admin)).get_json()["position"] == 1
    left = client.delete(f"/api/waitlist/{second['id']}", headers=bearer(factory.user(role="admin")))
    assert left.get_json()["status"] == "left"
    assert AuditLog.select().count() == 2


def test_a_lapsed_offer_goes_to_the_next_entry(client, factory, now):
    club_session = factory.club_session(max_slots=2, price=80_000)
    holder = factory.user()
    held = book(client, holder, club_session, guests=1).get_json()
    first, second = factory.user(), factory.user()
    first_entry = join(client, first, club_session, 2, min_party=1).get_json()
    join(client, second, club_session, 2)
    assert client.delete(f"/api/bookings/{held['id']}", headers=bearer(holder)).status_code == 200

    [entry] = my_waitlist(client, first)["items"]
    assert entry["status"] == "offered" and entry["position"] is None
    offer = client.get(f"/api/bookings/{entry['booking_id']}", headers=bearer(first)).get_json()
    assert (offer["source"], offer["status"], offer["slots"], offer["amount"]) == (
        "waitlist",
        "pending_payment",
        2,
        160_000,
    )
    assert (
        entry["offer"]["id"] == offer["id"]
        and entry["offer"]["payment_deadline"] == offer["payment_deadline"]
    )
    assert held["source"] == "direct"

    deadline = Booking.get_by_id(offer["id"]).payment_deadline
    clock.freeze(deadline + timedelta(seconds=1))
    expire_unpaid(deadline + timedelta(seconds=1))
    assert (
        client.get(f"/api/waitlist/{first_entry['id']}", headers=bearer(first)).get_json()["status"]
        == "lapsed"
    )
    [next_entry] = my_waitlist(client, second)["items"]
    assert next_entry["status"] == "offered"
    assert (
        client.get(f"/api/bookings/{next_entry['booking_id']}", headers=bearer(second)).get_json()["slots"]
        == 2
    )
    assert find_violations() == []


def test_the_scenario_end_to_end_paid_by_card(localstripe, app, client, factory):  # noqa: F811
    import stripe

    club_session = factory.club_session(max_slots=3, price=150_000)
    holder = factory.user()
    held = book(client, holder, club_session, guests=2, method="stripe").get_json()
    error_of(book(client, factory.user(), club_session, method="stripe"), 409, "full")
    player = factory.user()
    entry = join(client, player, club_session, 2, method="stripe").get_json()
    assert entry["status"] == "waiting" and entry["payment_method"] == "stripe"

    assert client.delete(f"/api/bookings/{held['id']}", headers=bearer(holder)).status_code == 200
    entry = client.get(f"/api/waitlist/{entry['id']}", headers=bearer(player)).get_json()
    assert entry["status"] == "offered"
    # The one spot the party cannot use is anyone's; no more than that.
    assert book(client, factory.user(), club_session, method="stripe").status_code == 201
    error_of(book(client, factory.user(), club_session, method="stripe"), 409, "full")

    response = client.post(
        "/api/payments/stripe/intent", json={"booking_id": entry["booking_id"]}, headers=bearer(player)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    intent = response.get_json()
    assert intent["amount"] == 300_000
    sdk = stripe.StripeClient("sk_test_loafy", base_addresses={"api": localstripe})
    sdk.v1.payment_intents.update(intent["payment_intent_id"], {"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(intent["payment_intent_id"])
    event = json.dumps(
        {
            "id": f"evt_{intent['payment_intent_id']}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent["payment_intent_id"], "object": "payment_intent"}},
        }
    )
    assert client.post("/api/webhooks/stripe", data=event, headers=_signed(event)).status_code == 200
    entry = client.get(f"/api/waitlist/{entry['id']}", headers=bearer(player)).get_json()
    assert entry["status"] == "booked"
    offer = client.get(f"/api/bookings/{entry['booking_id']}", headers=bearer(player)).get_json()
    assert (offer["status"], offer["payment_status"], offer["source"]) == ("confirmed", "paid", "waitlist")
    error_of(client.delete(f"/api/waitlist/{entry['id']}", headers=bearer(player)), 409)
    assert reload(club_session).available_slots == 0
    assert WaitlistEntry.get_by_id(entry["id"]).status == "booked"
    assert find_violations() == []


@pytest.mark.parametrize(
    "path", ["/api/waitlist?page=0", "/api/waitlist?per_page=1000", "/api/waitlist?session_id=x"]
)
def test_bad_queries_are_clear(client, factory, path):
    response = client.get(path, headers=bearer(factory.user(role="admin")))
    assert response.status_code in (404, 422)
