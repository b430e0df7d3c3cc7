"""A pass paid by bank transfer: the matcher finds its LP- code in a noisy memo and pays it through
record_pass_payment, the function staff "mark paid" uses; short, repeated and late transfers."""

from datetime import timedelta

from loafy.models import AuditLog, LedgerEntry
from loafy.passes import passes
from tests.helpers import reload
from tests.test_bank import app_config, base, post_sepay, sepay_body, server, transaction  # noqa: F401

PRICE = 900_000


def pending_pass(factory, now):
    product = factory.product("pack", price=PRICE, credits=10)
    return passes.buy_pass(factory.user(), product.id, "bank_transfer", now)


def test_a_transfer_with_the_pass_code_activates_it_once(base, factory, now):  # noqa: F811
    club_pass = pending_pass(factory, now)
    body = sepay_body(f"MBVCB.3317 {club_pass.code.replace('-', '').lower()} chuyen khoan", PRICE)
    assert post_sepay(base, body).json() == {"success": True}
    row = reload(club_pass)
    assert row.status_at(now) == "active" and row.ends_at == now + timedelta(days=60)
    stored = transaction(body["id"])
    assert (stored.status, stored.code, stored.target_kind, stored.target_id) == (
        "matched",
        club_pass.code,
        "pass",
        club_pass.id,
    )
    assert AuditLog.get(AuditLog.action == "pass.bank_transfer_matched").object_id == str(club_pass.id)
    assert post_sepay(base, body).status_code == 200  # the feed retries: nothing changes
    assert LedgerEntry.select().where(LedgerEntry.club_pass == club_pass.id).count() == 1
    again = sepay_body(club_pass.code, PRICE)  # a second transfer for a paid pass
    post_sepay(base, again)
    assert transaction(again["id"]).status == "duplicate"
    assert reload(club_pass).refund_due_at == now


def test_a_short_transfer_waits_for_the_rest_and_a_late_one_still_activates(base, factory, now):  # noqa: F811
    club_pass = pending_pass(factory, now)
    passes.expire_unpaid_passes(now + timedelta(hours=1))
    first = sepay_body(club_pass.code, 400_000)
    post_sepay(base, first)
    assert transaction(first["id"]).status == "underpaid" and reload(club_pass).status == "expired"
    rest = sepay_body(f"bo sung {club_pass.code}", 500_000)
    post_sepay(base, rest)
    assert transaction(rest["id"]).status == "matched"
    assert reload(club_pass).status == "paid"
    assert passes.ledger_totals(club_pass.id) == (PRICE, 0)
