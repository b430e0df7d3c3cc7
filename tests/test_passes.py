"""Passes (DESIGN.md "Passes"): buying, paying once, stacking, expiry, membership and early access,
packs paying bookings with credits counted from their bookings, cancellation with refund."""

import multiprocessing
import threading
from datetime import timedelta

import pytest

from loafy.booking.bookings import NotOpenYet, book_session, cancel_booking
from loafy.checks import find_violations
from loafy.db import db
from loafy.errors import LoafyError, PermissionDenied
from loafy.models import AuditLog, Booking, LedgerEntry, Pass
from loafy.passes import credits, passes, products
from loafy.passes.credits import NoCredits
from tests.helpers import reload


@pytest.fixture
def admin(factory):
    return factory.user(role="admin")


def pay_cash(club_pass, admin, now):
    return passes.mark_pass_paid(admin, club_pass.id, "cash", now)


def test_a_bought_pass_waits_for_payment_then_runs_from_payment(factory, admin, now):
    player = factory.user()
    product = factory.product("period", duration_days=30, price=300_000)
    club_pass = passes.buy_pass(player, product.id, "bank_transfer", now)
    assert club_pass.code.startswith("LP-") and len(club_pass.code) == 8
    assert (club_pass.status, club_pass.amount, club_pass.starts_at) == ("pending_payment", 300_000, None)
    assert club_pass.payment_deadline == now + timedelta(minutes=30)
    assert passes.membership(player.id, now) == {"active": False, "ends_at": None}

    paid_at = now + timedelta(minutes=5)
    club_pass = pay_cash(club_pass, admin, paid_at)
    assert club_pass.status_at(paid_at) == "active"
    assert (club_pass.starts_at, club_pass.ends_at) == (paid_at, paid_at + timedelta(days=30))
    assert passes.membership(player.id, paid_at) == {"active": True, "ends_at": paid_at + timedelta(days=30)}
    assert [a.action for a in AuditLog.select()] == ["pass.mark_paid"]


def test_the_same_payment_twice_is_recorded_once(factory, now):
    player = factory.user()
    club_pass = passes.buy_pass(player, factory.product("pack").id, "bank_transfer", now)
    pay = dict(provider="bank_transfer", provider_id="sepay:991", amount=500_000, now=now)
    assert passes.record_pass_payment(club_pass.id, **pay) == "activated"
    assert passes.record_pass_payment(club_pass.id, **pay) == "duplicate"
    assert LedgerEntry.select().where(LedgerEntry.club_pass == club_pass.id).count() == 1
    # A second, different payment for a pass already paid is owed back.
    again = dict(pay, provider_id="sepay:992")
    assert passes.record_pass_payment(club_pass.id, **again) == "refund_due"
    assert reload(club_pass).refund_due_at == now


def test_less_than_the_price_waits_for_the_rest(factory, now):
    club_pass = passes.buy_pass(factory.user(), factory.product("pack").id, "bank_transfer", now)
    first = dict(provider="bank_transfer", amount=200_000, now=now)
    assert passes.record_pass_payment(club_pass.id, provider_id="t1", **first) == "underpaid"
    assert reload(club_pass).status == "pending_payment"
    assert (
        passes.record_pass_payment(club_pass.id, provider_id="t2", **dict(first, amount=300_000))
        == "activated"
    )
    assert reload(club_pass).status == "paid"


def test_buying_again_while_active_stacks_where_the_last_one_ends(factory, admin, now):
    player = factory.user()
    product = factory.product("period", duration_days=30)
    first = pay_cash(passes.buy_pass(player, product.id, "cash", now), admin, now)
    later = now + timedelta(days=10)
    second = pay_cash(passes.buy_pass(player, product.id, "cash", later), admin, later)
    assert second.starts_at == first.ends_at
    assert second.status_at(later) == "scheduled"
    assert passes.membership(player.id, later) == {
        "active": True,
        "ends_at": first.ends_at + timedelta(days=30),
    }
    # At the exact end of the run the membership ends, not a second later.
    end = second.ends_at
    assert passes.membership(player.id, end - timedelta(seconds=1))["active"] is True
    assert passes.membership(player.id, end) == {"active": False, "ends_at": None}


def test_a_gap_ends_the_run(factory, now):
    player = factory.user()
    factory.paid_pass(player, "period", starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=5))
    factory.paid_pass(player, "period", starts_at=now + timedelta(days=6), ends_at=now + timedelta(days=36))
    assert passes.membership(player.id, now)["ends_at"] == now + timedelta(days=5)


def test_unpaid_passes_expire_after_their_deadline_and_a_late_payment_still_activates(factory, now):
    player = factory.user()
    club_pass = passes.buy_pass(player, factory.product("period").id, "stripe", now)
    assert passes.expire_unpaid_passes(now + timedelta(minutes=29)) == []
    late = now + timedelta(minutes=31)
    assert club_pass.status_at(late) == "expired"  # shown expired before the sweep runs
    assert passes.expire_unpaid_passes(late) == [club_pass.code]
    assert passes.expire_unpaid_passes(late) == []  # the sweep twice changes nothing
    assert reload(club_pass).status == "expired"
    outcome = passes.record_pass_payment(
        club_pass.id, provider="stripe", provider_id="pi_late", amount=500_000, now=late
    )
    assert outcome == "activated"
    assert reload(club_pass).status_at(late) == "active"


def test_early_access_is_gained_and_lost_at_the_exact_instant(factory, now):
    player = factory.user()
    club_pass = factory.paid_pass(
        player, "period", starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=5)
    )
    opens = now + timedelta(hours=6)
    session_ = factory.club_session(
        starts_at=now + timedelta(days=2),
        booking_opens_at=opens,
        early_access_opens_at=now - timedelta(hours=1),
    )
    with pytest.raises(NotOpenYet):
        book_session(player, session_, 0, "stripe", club_pass.starts_at - timedelta(seconds=1))
    assert book_session(player, session_, 0, "stripe", club_pass.starts_at).status == "pending_payment"
    other = factory.club_session(
        starts_at=now + timedelta(days=2),
        booking_opens_at=opens,
        early_access_opens_at=now - timedelta(hours=1),
    )
    with pytest.raises(NotOpenYet):
        book_session(player, other, 0, "stripe", club_pass.ends_at)


def test_a_product_without_early_access_makes_no_early_bird(factory, now):
    player = factory.user()
    product = factory.product("period", early_access=False)
    factory.paid_pass(player, "period", product=product, early_access=False)
    session_ = factory.club_session(
        booking_opens_at=now + timedelta(hours=2), early_access_opens_at=now - timedelta(hours=1)
    )
    with pytest.raises(NotOpenYet):
        book_session(player, session_, 0, "stripe", now)
    assert passes.membership(player.id, now)["active"] is True


# --- packs -----------------------------------------------------------------------------------------


def test_a_pack_pays_one_credit_per_slot_and_cancelling_gives_them_back(factory, now):
    player = factory.user()
    pack = factory.paid_pass(player, "pack", credits=3)
    first = book_session(player, factory.club_session(), 1, "pass", now)
    assert (first.status, first.payment_status, first.club_pass_id) == ("confirmed", "paid", pack.id)
    assert credits.credits_left(reload(pack)) == 1
    with pytest.raises(NoCredits) as refused:
        book_session(player, factory.club_session(), 1, "pass", now)
    assert refused.value.code == "no_credits" and refused.value.status == 409
    assert "needs 2 credits" in refused.value.message and "1 left" in refused.value.message
    cancelled = cancel_booking(player, first.id, now)
    assert cancelled.refund_due_at is None  # no money to give back: the credits return
    assert credits.credits_left(reload(pack)) == 3
    assert find_violations() == []


def test_the_pack_that_expires_first_pays(factory, now):
    player = factory.user()
    later = factory.paid_pass(player, "pack", credits=5, ends_at=now + timedelta(days=50))
    sooner = factory.paid_pass(player, "pack", credits=5, ends_at=now + timedelta(days=10))
    factory.paid_pass(
        player, "pack", credits=5, starts_at=now - timedelta(days=90), ends_at=now - timedelta(days=1)
    )
    booking = book_session(player, factory.club_session(), 0, "pass", now)
    assert booking.club_pass_id == sooner.id
    assert credits.credits_left(reload(later)) == 5


def test_without_a_pack_booking_with_pass_is_refused_and_nothing_is_taken(factory, now):
    player = factory.user()
    session_ = factory.club_session(max_slots=4)
    with pytest.raises(NoCredits):
        book_session(player, session_, 0, "pass", now)
    assert reload(session_).available_slots == 4
    assert Booking.select().count() == 0


def _book_many(app, jobs):
    barrier = threading.Barrier(len(jobs), timeout=60)
    results = [None] * len(jobs)

    def run(i, job):
        barrier.wait()
        try:
            with app.app_context(), db.connection_context():
                results[i] = ("ok", job().id)
        except LoafyError as exc:
            results[i] = ("refused", exc.code)
        except Exception as exc:
            results[i] = ("error", repr(exc))

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_five_parallel_bookings_on_three_credits_give_exactly_three_threads(app, factory, now):
    player = factory.user()
    pack = factory.paid_pass(player, "pack", credits=3)
    sessions = [factory.club_session() for _ in range(5)]
    results = _book_many(app, [lambda s=s: book_session(player, s.id, 0, "pass", now) for s in sessions])
    assert sorted(r[0] for r in results) == ["ok"] * 3 + ["refused"] * 2, results
    assert {r[1] for r in results if r[0] == "refused"} == {"no_credits"}
    assert credits.credits_left(reload(pack)) == 0
    assert find_violations() == []


def _book_in_process(url, player_id, session_id, now, start, out):
    from loafy.app import create_app
    from loafy.models import User

    app = create_app({"LOAFY_ENV": "testing", "DATABASE_URL": url, "DB_POOL_SIZE": "2"})
    with app.app_context(), db.connection_context():
        player = User.get_by_id(player_id)
        start.wait(60)
        try:
            book_session(player, session_id, 0, "pass", now)
            out.put("ok")
        except LoafyError as exc:
            out.put(exc.code)
        except Exception as exc:
            out.put(repr(exc))


def test_five_parallel_bookings_on_three_credits_give_exactly_three_processes(
    app, factory, now, database_url
):
    player = factory.user()
    pack = factory.paid_pass(player, "pack", credits=3)
    sessions = [factory.club_session() for _ in range(5)]
    db.close()
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [
        context.Process(target=_book_in_process, args=(database_url, player.id, s.id, now, start, out))
        for s in sessions
    ]
    for w in workers:
        w.start()
    start.set()
    answers = sorted(out.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    db.connect(reuse_if_open=True)
    assert answers == ["no_credits"] * 2 + ["ok"] * 3
    assert credits.credits_left(reload(pack)) == 0


# --- staff ----------------------------------------------------------------------------------------


def test_staff_sell_at_the_desk_grant_and_cancel_with_refund(factory, admin, now):
    player = factory.user()
    product = factory.product("pack", price=400_000, credits=5)
    sold = passes.sell_at_desk(admin, player.id, product.id, "cash", now)
    assert sold.status_at(now) == "active"
    assert passes.ledger_totals(sold.id) == (400_000, 0)
    cancelled = passes.cancel_pass(admin, sold.id, now, refund=True, reason="moved away")
    assert cancelled.status_at(now) == "cancelled"
    assert passes.ledger_totals(sold.id) == (400_000, 400_000)
    granted = passes.grant_pass(admin, player.id, factory.product("period").id, now, note="volunteer")
    assert granted.payment_method == "grant" and granted.amount == 0
    assert passes.membership(player.id, now)["active"] is True
    assert [a.action for a in AuditLog.select().order_by(AuditLog.id)] == [
        "pass.sell",
        "pass.cancel",
        "pass.grant",
    ]
    with pytest.raises(PermissionDenied):
        passes.cancel_pass(player, granted.id, now)
    with pytest.raises(PermissionDenied):
        passes.grant_pass(factory.user(role="organizer"), player.id, product.id, now)


def test_products_are_validated_and_audited(factory, admin, now):
    product = products.create_product(
        admin, {"name": "10 buổi", "kind": "pack", "price": 900_000, "credits": 10, "validity_days": 90}, now
    )
    assert (product.kind, product.credits, product.duration_days) == ("pack", 10, None)
    with pytest.raises(LoafyError) as refused:
        products.create_product(
            admin, {"name": "x", "kind": "pack", "price": 1, "credits": 0, "validity_days": 9}, now
        )
    assert refused.value.field == "credits"
    products.update_product(admin, product.id, {"active": False}, now)
    assert products.list_products() == []
    assert [a.action for a in AuditLog.select().order_by(AuditLog.id)] == [
        "pass_product.create",
        "pass_product.update",
    ]


def test_a_pass_is_found_by_its_code_in_any_case_with_or_without_the_dash(factory, now):
    club_pass = passes.buy_pass(factory.user(), factory.product().id, "bank_transfer", now)
    letters = club_pass.code[3:]
    for text in (club_pass.code, club_pass.code.lower(), f"lp{letters.lower()}", f"LP{letters}"):
        assert passes.find_pass_by_code(text).id == club_pass.id
    assert passes.find_pass_by_code("LP-") is None
    assert Pass.select().count() == 1


def test_loafy_check_finds_an_overspent_pack(factory, now):
    player = factory.user()
    pack = factory.paid_pass(player, "pack", credits=1)
    booking = book_session(player, factory.club_session(), 0, "pass", now)
    assert find_violations() == []
    Booking.update(slots=2, guest_count=1, amount=2 * booking.unit_price).where(
        Booking.id == booking.id
    ).execute()
    assert any(pack.code in v and "2 credits spent of 1" in v for v in find_violations())


def test_an_activated_pass_is_mailed_once(factory, admin, now, outbox):
    from loafy import notifications

    player = factory.user(email="lan@example.com")
    club_pass = passes.buy_pass(player, factory.product("pack", name="Gói 10 buổi").id, "cash", now)
    pay_cash(club_pass, admin, now)
    notifications.send_due(now)
    notifications.send_due(now)
    mails = [p.read_text() for p in outbox.glob("*.eml") if "pass_confirmed" in p.name]
    assert len(mails) == 1
    assert club_pass.code in mails[0]
