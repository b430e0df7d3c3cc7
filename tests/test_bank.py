"""Bank transfers matched automatically: SePay and Casso webhooks over real HTTP to the running app.

The app is served by a werkzeug server in a thread; each test posts what the feed would post and
checks the rows that matter (BankTransaction, LedgerEntry, Booking, AuditLog).
"""

import json
import threading
from datetime import timedelta

import pytest
import requests
from werkzeug.serving import make_server

from loafy.booking.bookings import book_session, cancel_booking, expire_unpaid
from loafy.checks import find_violations
from loafy.errors import Conflict, PermissionDenied, ValidationError
from loafy.models import AuditLog, BankTransaction, Booking, LedgerEntry
from loafy.money import bank, bank_feeds
from tests.conftest import NO_STRIPE
from tests.helpers import reload

SEPAY_KEY = "sepay-test-key"
CASSO_SECRET = "casso-test-secret"
ACCOUNT = "0123456789"  # the settings' default account
PRICE = 120_000


class Dispatcher:
    def __init__(self):
        self.app = None

    def __call__(self, environ, start_response):
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no test app"]
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def server():
    dispatcher = Dispatcher()
    httpd = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield dispatcher, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def app_config(app_config):
    # A club on bank transfers alone: no Stripe key at all.
    return {**app_config, **NO_STRIPE, "SEPAY_API_KEY": SEPAY_KEY, "CASSO_WEBHOOK_SECRET": CASSO_SECRET}


@pytest.fixture
def base(app, server):
    dispatcher, url = server
    dispatcher.app = app
    yield url
    dispatcher.app = None


_ids = iter(range(10_000, 10**6))


def sepay_body(memo, amount, **fields):
    body = {
        "id": next(_ids),
        "gateway": "Vietcombank",
        "transactionDate": "2026-11-24 10:01:00",
        "accountNumber": ACCOUNT,
        "code": None,
        "content": memo,
        "transferType": "in",
        "transferAmount": amount,
        "accumulated": 5_000_000,
        "subAccount": None,
        "referenceCode": "FT2632800001",
        "description": f"BankAPINotify {memo}",
    }
    body.update(fields)
    return body


def post_sepay(base, body, key=SEPAY_KEY):
    return requests.post(
        f"{base}/api/webhooks/bank/sepay",
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Authorization": f"Apikey {key}", "Content-Type": "application/json"},
        timeout=10,
    )


def casso_body(memo, amount, **fields):
    data = {
        "id": next(_ids),
        "reference": "MBVCB.3317",
        "description": memo,
        "amount": amount,
        "runningBalance": 9_000_000,
        "transactionDateTime": "2026-11-24 10:02:00",
        "accountNumber": ACCOUNT,
        "bankName": "Vietcombank",
        "bankAbbreviation": "VCB",
        "counterAccountName": "NGUYEN VAN AN",
        "counterAccountNumber": "0987654321",
        "counterAccountBankName": "Techcombank",
    }
    data.update(fields)
    return {"error": 0, "data": data}


def post_casso(base, body, now, secret=CASSO_SECRET, header=None):
    return requests.post(
        f"{base}/api/webhooks/bank/casso",
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={
            "X-Casso-Signature": header or bank_feeds.casso_header(secret, body, now),
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def book(factory, now, guests=0, **session_fields):
    club_session = factory.club_session(price=PRICE, **session_fields)
    return book_session(factory.user(), club_session, guests, "bank_transfer", now)


def transaction(provider_id):
    return BankTransaction.get(BankTransaction.provider_id == str(provider_id))


def payments_of(booking):
    return [
        (row.provider, row.amount)
        for row in LedgerEntry.select().where(
            (LedgerEntry.booking == booking.id) & (LedgerEntry.kind == "payment")
        )
    ]


# --- finding the code ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "memo",
    [
        "LB-K7Q3M",
        "lbk7q3m",
        "MBVCB.3317 lbk7q3m chuyen khoan",
        "IBFT LB K7Q3M thanh toán cầu lông",
        "Nguyễn Văn An chuyển tiền LB-k7q3m.",
        "MBVCB.3317.LBK7Q3M.CT tu 0987654321",
    ],
)
def test_the_code_is_found_in_a_noisy_memo(memo):
    assert [code for _, code in bank.find_codes(memo)] == ["LB-K7Q3M"]


@pytest.mark.parametrize("memo", ["CLBK7Q3M", "LBK7Q3MX", "LB-K7Q0M", "thanh toan", "", "LB-K7Q3"])
def test_no_code_where_there_is_none(memo):
    assert bank.find_codes(memo) == []


# --- SePay: each outcome -------------------------------------------------------------------------


def test_exact_sepay_transfer_confirms_like_mark_paid(base, factory, now, outbox):
    booking = book(factory, now, guests=1)
    body = sepay_body(f"MBVCB.3317 {booking.code.replace('-', '').lower()} chuyen khoan", 2 * PRICE)
    response = post_sepay(base, body)
    assert response.status_code == 200 and response.json() == {"success": True}
    row = reload(booking)
    assert (row.status, row.payment_status) == ("confirmed", "paid")
    stored = transaction(body["id"])
    assert (stored.status, stored.code, stored.target_id) == ("matched", booking.code, booking.id)
    assert json.loads(stored.raw) == body
    assert payments_of(booking) == [("bank_transfer", 2 * PRICE)]
    audit = AuditLog.get(AuditLog.action == "booking.bank_transfer_matched")
    assert audit.object_id == str(booking.id) and audit.actor_id is None
    assert find_violations() == []


def test_repeat_delivery_changes_nothing(base, factory, now):
    booking = book(factory, now)
    body = sepay_body(booking.code, PRICE)
    for _ in range(3):
        assert post_sepay(base, body).status_code == 200
    assert BankTransaction.select().count() == 1
    assert payments_of(booking) == [("bank_transfer", PRICE)]


def test_ten_concurrent_deliveries_of_one_transaction_record_it_once(base, factory, now):
    booking = book(factory, now)
    body = sepay_body(booking.code, PRICE)
    results = []
    barrier = threading.Barrier(10)

    def deliver():
        barrier.wait()
        results.append(post_sepay(base, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 10
    assert BankTransaction.select().count() == 1
    assert payments_of(booking) == [("bank_transfer", PRICE)]
    assert reload(booking).status == "confirmed"


def test_short_transfer_stays_unpaid_then_the_rest_pays(base, factory, now):
    booking = book(factory, now)
    first = sepay_body(booking.code, 100_000)
    assert post_sepay(base, first).status_code == 200
    assert reload(booking).status == "pending_payment" and reload(booking).payment_status == "unpaid"
    assert transaction(first["id"]).status == "underpaid"
    assert [t.id for t in bank.queue_query()] == [transaction(first["id"]).id]
    rest = sepay_body(f"bo sung {booking.code}", 20_000)
    assert post_sepay(base, rest).status_code == 200
    assert reload(booking).status == "confirmed"
    assert transaction(rest["id"]).status == "matched"
    assert list(bank.queue_query()) == []  # the short one was completed by the rest
    assert sorted(payments_of(booking)) == [("bank_transfer", 20_000), ("bank_transfer", 100_000)]


def test_over_transfer_pays_and_is_flagged(base, factory, now):
    booking = book(factory, now)
    body = sepay_body(booking.code, 150_000)
    post_sepay(base, body)
    assert reload(booking).status == "confirmed"
    assert transaction(body["id"]).status == "overpaid"
    assert [t.status for t in bank.queue_query()] == ["overpaid"]


def test_second_transfer_for_a_paid_booking_is_a_duplicate(base, factory, now):
    booking = book(factory, now)
    post_sepay(base, sepay_body(booking.code, PRICE))
    again = sepay_body(booking.code, PRICE)
    post_sepay(base, again)
    assert transaction(again["id"]).status == "duplicate"
    assert reload(booking).refund_due_at is not None  # the second payment is owed back
    assert len(payments_of(booking)) == 2


def test_no_code_is_unmatched_and_staff_assign_it(base, factory, now):
    booking = book(factory, now)
    body = sepay_body("chuyen tien cau long toi thu ba", PRICE)
    post_sepay(base, body)
    stored = transaction(body["id"])
    assert stored.status == "unmatched" and reload(booking).status == "pending_payment"
    admin = factory.user(role="admin")
    bank.assign_transaction(admin, stored.id, booking.code.lower().replace("-", ""), now)
    assert reload(booking).status == "confirmed"
    assert transaction(body["id"]).status == "matched"
    assert AuditLog.select().where(AuditLog.action == "bank.assign").count() == 1
    assert AuditLog.select().where(AuditLog.action == "booking.bank_transfer_assigned").count() == 1
    with pytest.raises(Conflict):
        bank.assign_transaction(admin, stored.id, booking.code, now)  # once only


def test_outgoing_or_other_account_is_ignored(base, factory, now):
    booking = book(factory, now)
    out = sepay_body(booking.code, PRICE, transferType="out")
    other = sepay_body(booking.code, PRICE, accountNumber="999888777")
    post_sepay(base, out)
    post_sepay(base, other)
    assert transaction(out["id"]).status == "ignored"
    assert transaction(other["id"]).status == "ignored"
    assert reload(booking).status == "pending_payment" and payments_of(booking) == []


def test_transfer_a_minute_after_the_deadline_is_not_lost(base, factory, now, app):
    from loafy import clock

    booking = book(factory, now)
    clock.freeze(booking.payment_deadline + timedelta(minutes=1))
    try:
        post_sepay(base, sepay_body(booking.code, PRICE))
    finally:
        clock.freeze(now)
    assert reload(booking).status == "confirmed" and reload(booking).payment_status == "paid"
    assert find_violations() == []


def test_expired_booking_reconfirmed_when_a_slot_is_free(base, factory, now):
    booking = book(factory, now)
    expire_unpaid(booking.payment_deadline + timedelta(seconds=1))
    assert reload(booking).status == "expired"
    body = sepay_body(booking.code, PRICE)
    post_sepay(base, body)
    assert reload(booking).status == "confirmed"
    assert transaction(body["id"]).status == "matched"
    assert transaction(body["id"]).outcome == "reconfirmed"
    assert find_violations() == []


def test_expired_booking_with_its_slot_gone_is_refund_due_for_staff(base, factory, now):
    booking = book(factory, now, max_slots=1)
    later = booking.payment_deadline + timedelta(seconds=1)
    expire_unpaid(later)
    taker = book_session(factory.user(), booking.club_session_id, 0, "bank_transfer", later)
    assert taker.status == "pending_payment"
    body = casso_body(f"CT {booking.code}", PRICE)
    assert post_casso(base, body, now).status_code == 200
    row = reload(booking)
    assert row.status == "expired" and row.refund_due_at is not None
    stored = transaction(body["data"]["id"])
    assert stored.status == "refund_due"
    assert "NGUYEN VAN AN" in bank.payer_details(stored) and "0987654321" in bank.payer_details(stored)
    admin = factory.user(role="admin")
    with pytest.raises(ValidationError):
        bank.resolve_transaction(admin, stored.id, now, refunded=True)  # needs the bank's reference
    bank.resolve_transaction(admin, stored.id, now, refunded=True, bank_reference="FT999")
    assert reload(booking).refund_due_at is None
    refunds = LedgerEntry.select().where((LedgerEntry.booking == booking.id) & (LedgerEntry.kind == "refund"))
    assert [r.amount for r in refunds] == [PRICE]
    assert list(bank.queue_query()) == []
    assert find_violations() == []


def test_transfer_for_a_cancelled_booking_is_refund_due(base, factory, now):
    booking = book(factory, now)
    cancel_booking(booking.user, booking.id, now)
    body = sepay_body(booking.code, PRICE)
    post_sepay(base, body)
    assert transaction(body["id"]).status == "refund_due"
    assert reload(booking).status == "cancelled"


# --- authentication, limits, configuration -------------------------------------------------------


def test_wrong_sepay_key_is_401_and_stores_nothing(base, factory, now):
    booking = book(factory, now)
    for key in ("wrong", "", SEPAY_KEY + "x"):
        assert post_sepay(base, sepay_body(booking.code, PRICE), key=key).status_code == 401
    response = requests.post(
        f"{base}/api/webhooks/bank/sepay", json=sepay_body(booking.code, PRICE), timeout=5
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "bad_signature"
    assert BankTransaction.select().count() == 0


def test_casso_good_signature_with_a_vietnamese_memo(base, factory, now):
    booking = book(factory, now)
    body = casso_body(f"Nguyễn Văn An chuyển khoản {booking.code.lower()} sân cầu lông ₫", PRICE)
    # Signed over ensure_ascii=False text: the memo's UTF-8, not \\u escapes.
    assert "ễ" in bank_feeds.casso_signed_text(1, body)
    assert post_casso(base, body, now).status_code == 200
    assert reload(booking).status == "confirmed"
    assert "Nguyễn" in transaction(body["data"]["id"]).memo


@pytest.mark.parametrize(
    ("shift", "accepted"),
    [
        (timedelta(minutes=-4, seconds=-50), True),
        (timedelta(seconds=50), True),
        (timedelta(minutes=-5, seconds=-5), False),
        (timedelta(minutes=1, seconds=10), False),
    ],
)
def test_casso_timestamp_window(base, factory, now, shift, accepted):
    booking = book(factory, now)
    body = casso_body(booking.code, PRICE)
    response = post_casso(base, body, now + shift)
    assert response.status_code == (200 if accepted else 401)
    assert BankTransaction.select().count() == (1 if accepted else 0)


def test_casso_forged_signatures_are_refused(base, factory, now):
    booking = book(factory, now)
    body = casso_body(booking.code, PRICE)
    good = bank_feeds.casso_header(CASSO_SECRET, body, now)
    t = good.split(",")[0]
    forged = [
        bank_feeds.casso_header("other-secret", body, now),
        f"{t},v1={'0' * 128}",
        t,
        "v1=abc",
        "",
        "t=abc,v1=def",
    ]
    for header in forged:
        assert post_casso(base, body, now, header=header or "x").status_code == 401, header
    tampered = casso_body(booking.code, PRICE * 2)
    tampered["data"]["id"] = body["data"]["id"]
    assert post_casso(base, tampered, now, header=good).status_code == 401
    assert BankTransaction.select().count() == 0


def test_ascii_escaped_signature_is_refused_for_a_vietnamese_memo(base, factory, now):
    import hashlib
    import hmac

    booking = book(factory, now)
    body = casso_body(f"chuyển khoản {booking.code}", PRICE)
    t = bank_feeds.casso_header(CASSO_SECRET, body, now).split(",")[0][2:]
    text = f"{t}." + json.dumps(body, sort_keys=True, separators=(",", ":"))
    escaped = hmac.new(CASSO_SECRET.encode(), text.encode(), hashlib.sha512).hexdigest()
    assert post_casso(base, body, now, header=f"t={t},v1={escaped}").status_code == 401
    assert post_casso(base, body, now).status_code == 200


def test_too_large_a_body_is_413(base):
    body = sepay_body("x" * (bank_feeds.MAX_BODY_BYTES + 10), PRICE)
    assert post_sepay(base, body).status_code == 413
    assert BankTransaction.select().count() == 0


def test_broken_bodies_are_4xx(base):
    for raw in (b"{not json", b"[]", b'{"id": 1}', json.dumps(sepay_body("x", -5)).encode()):
        response = requests.post(
            f"{base}/api/webhooks/bank/sepay",
            data=raw,
            headers={"Authorization": f"Apikey {SEPAY_KEY}", "Content-Type": "application/json"},
            timeout=5,
        )
        assert 400 <= response.status_code < 500, (raw, response.text)
        assert "error" in response.json()
    assert BankTransaction.select().count() == 0


def test_an_unconfigured_provider_is_404(database_url, tmp_path, server):
    from loafy.app import create_app
    from tests.conftest import _close_pool, _test_config

    app = create_app(_test_config(database_url, tmp_path))
    dispatcher, url = server
    dispatcher.app = app
    try:
        assert post_sepay(url, sepay_body("LB-AAAAA", PRICE)).status_code == 404
        assert requests.post(f"{url}/api/webhooks/bank/casso", json={}, timeout=5).status_code == 404
    finally:
        dispatcher.app = None
        _close_pool()


def test_the_match_job_is_idempotent(base, factory, now):
    booking = book(factory, now)
    body = sepay_body(booking.code, PRICE)
    post_sepay(base, body)
    stored = transaction(body["id"])
    assert bank.match_transaction(stored.id, now) == "matched"
    assert bank.match_pending(now) == {}
    assert payments_of(booking) == [("bank_transfer", PRICE)]


def test_reconcile_lists_the_flagged(base, factory, now):
    post_sepay(base, sepay_body("tien san", 50_000))
    lines = bank.flagged_lines()
    assert len(lines) == 1 and "unmatched" in lines[0] and "tien san" in lines[0]


def test_booking_json_has_the_bank_details(base, factory, now, client):
    from tests.helpers import login

    booking = book(factory, now)
    login(client, booking.user)
    body = client.get(f"/api/bookings/{booking.id}").get_json()
    assert body["bank"] == {
        "bank_name": "Vietcombank",
        "bank_bin": "970436",
        "account_number": ACCOUNT,
        "account_name": "LOAFY CLUB",
        "memo": booking.code,
    }
    assert Booking.get_by_id(booking.id).status == "pending_payment"


# --- the staff queue in the admin ----------------------------------------------------------------


def _csrf(client, path):
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_admin_queue_assign_and_resolve(base, factory, now, client):
    from tests.helpers import login

    booking = book(factory, now)
    unmatched = sepay_body("chuyen khoan tien san thu 3", PRICE)
    post_sepay(base, unmatched)
    over = book(factory, now)
    overpaid = sepay_body(over.code, PRICE + 30_000)
    post_sepay(base, overpaid)
    admin = factory.user(role="admin")
    login(client, admin)
    page = client.get("/admin/bank/").get_data(as_text=True)
    assert "chuyen khoan tien san thu 3" in page and 'id="bank-queue-size" data-count="2"' in page
    assert 'id="bank-queue"' in client.get("/admin/").get_data(as_text=True)
    stored = transaction(unmatched["id"])
    token = _csrf(client, "/admin/bank/")
    response = client.post(
        "/admin/bank/assign/", data={"id": stored.id, "code": booking.code, "csrf_token": token}
    )
    assert response.status_code == 302
    assert reload(booking).status == "confirmed" and transaction(unmatched["id"]).status == "matched"
    # The overpaid 30.000 ₫ go back by hand: recorded with the bank's reference, audited.
    flagged = transaction(overpaid["id"])
    response = client.post(
        "/admin/bank/resolve/",
        data={"id": flagged.id, "refunded": "1", "bank_reference": "FT777", "csrf_token": token},
    )
    assert response.status_code == 302
    assert transaction(overpaid["id"]).resolved_by_id == admin.id
    refunds = LedgerEntry.select().where((LedgerEntry.booking == over.id) & (LedgerEntry.kind == "refund"))
    assert [r.amount for r in refunds] == [30_000]
    assert AuditLog.select().where(AuditLog.action == "bank.resolve").count() == 1
    assert list(bank.queue_query()) == []


def test_the_queue_is_for_admins_only(base, factory, now, client):
    from tests.helpers import login

    post_sepay(base, sepay_body("no code here", PRICE))
    login(client, factory.user(role="organizer"))
    assert client.get("/admin/bank/").status_code == 403
    stored = BankTransaction.get()
    with pytest.raises(PermissionDenied):
        bank.assign_transaction(factory.user(role="organizer"), stored.id, "LB-AAAAA", now)
    assert transaction(stored.provider_id).status == "unmatched"


# --- the pay page, development's simulate button and CLI -----------------------------------------


def test_pay_page_shows_what_to_transfer_and_no_simulate_button_outside_development(
    base, factory, now, client
):
    from tests.helpers import english, login

    booking = book(factory, now)
    login(english(client), booking.user)
    page = client.get(f"/bookings/{booking.id}/pay").get_data(as_text=True)
    assert page.index('class="vietqr"') < page.index('id="bank-account"')  # the QR first, above the fold
    assert f'data-copy="{booking.code}"' in page and f'data-copy="{ACCOUNT}"' in page
    assert f'data-copy="{PRICE}"' in page
    assert "This page shows it by itself" in page and 'id="simulate-transfer"' not in page
    assert client.post(
        f"/bookings/{booking.id}/simulate-transfer", headers={"X-CSRFToken": "x"}
    ).status_code in (
        400,
        404,
    )
    assert reload(booking).status == "pending_payment"


def _dev_app(database_url, tmp_path, **extra):
    from loafy.app import create_app
    from tests.conftest import _test_config

    config = _test_config(
        database_url, tmp_path, LOAFY_ENV="development", JOBS_INLINE="1", SEPAY_API_KEY=SEPAY_KEY, **extra
    )
    return create_app(config)


def test_simulate_button_in_development_confirms_the_booking(database_url, tmp_path, factory, now):
    from tests.helpers import csrf_token, login

    booking = book(factory, now)
    dev = _dev_app(database_url, tmp_path)
    dev_client = dev.test_client()
    login(dev_client, booking.user)
    page = dev_client.get(f"/bookings/{booking.id}/pay").get_data(as_text=True)
    assert 'id="simulate-transfer"' in page
    response = dev_client.post(
        f"/bookings/{booking.id}/simulate-transfer",
        headers={"X-CSRFToken": csrf_token(dev_client), "Accept": "application/json"},
    )
    assert response.status_code == 200, response.data
    assert reload(booking).status == "confirmed"
    assert dev_client.get(f"/bookings/{booking.id}/status.json").get_json()["status"] == "confirmed"


@pytest.mark.parametrize("provider", ["sepay", "casso"])
def test_cli_bank_simulate_posts_a_signed_webhook(base, database_url, tmp_path, factory, now, provider):
    booking = book(factory, now)
    dev = _dev_app(database_url, tmp_path, CASSO_WEBHOOK_SECRET=CASSO_SECRET)
    result = dev.test_cli_runner().invoke(
        args=["bank", "simulate", booking.code, str(PRICE), "--provider", provider, "--url", base]
    )
    assert result.exit_code == 0, result.output
    assert "200" in result.output
    assert reload(booking).status == "confirmed"
    assert BankTransaction.get().provider == provider


def test_cli_bank_simulate_is_for_development_only(app, factory, now):
    booking = book(factory, now)
    result = app.test_cli_runner().invoke(args=["bank", "simulate", booking.code, str(PRICE)])
    assert result.exit_code != 0 and "development" in result.output
    assert BankTransaction.select().count() == 0


def test_cli_reconcile_without_stripe_lists_the_flagged(base, app):
    post_sepay(base, sepay_body("khong co ma", 70_000))
    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 1
    assert "card payments are not set up" in result.output
    assert "FLAGGED bank sepay" in result.output and "unmatched" in result.output


def test_out_of_order_and_late_repeats_change_nothing(base, factory, now):
    """Two halves of one payment delivered in reverse order, then the first again ten minutes
    later (SePay retries for half an hour): paid once, every transfer stored once."""
    from loafy import clock

    booking = book(factory, now)
    first, second = sepay_body(booking.code, 60_000), sepay_body(booking.code, 60_000)
    assert post_sepay(base, second).status_code == 200
    assert reload(booking).status == "pending_payment"
    assert post_sepay(base, first).status_code == 200
    assert reload(booking).status == "confirmed"
    before = (reload(booking).updated_at, payments_of(booking))
    clock.freeze(now + timedelta(minutes=10))
    try:
        assert post_sepay(base, first).status_code == 200
        assert post_sepay(base, second).status_code == 200
    finally:
        clock.freeze(now)
    assert (reload(booking).updated_at, payments_of(booking)) == before
    assert BankTransaction.select().count() == 2
    assert sorted(t.status for t in BankTransaction.select()) == ["matched", "underpaid"]
    assert list(bank.queue_query()) == []


def test_the_queue_speaks_vietnamese(base, factory, now, client):
    from tests.helpers import login

    post_sepay(base, sepay_body("tien san", PRICE))
    login(client, factory.user(role="admin"))
    page = client.get("/admin/bank/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert "Chuyển khoản ngân hàng" in page and "Không có mã đặt chỗ" in page and "Gán" in page
    assert "No booking code" not in page


def test_booking_details_list_its_transfers_in_vietnamese(base, factory, now, client):
    from tests.helpers import login

    booking = book(factory, now)
    post_sepay(base, sepay_body(booking.code, 50_000))
    post_sepay(base, sepay_body(booking.code, 70_000))
    login(client, factory.user(role="admin"))
    page = client.get(f"/admin/bookings/details/?id={booking.id}", headers={"Accept-Language": "vi"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="bank-transfers"' in text
    assert "Chuyển khoản thiếu: chưa đủ tiền" in text and "Chuyển khoản, khớp theo mã" in text
    assert "Chuyển thiếu" in text and "Đã khớp: đã thanh toán" in text
    assert "đã đủ nhờ lần chuyển sau" in text and "completed by" not in text


# --- configuration: Stripe optional, half a Stripe refused ----------------------------------------


def test_production_starts_without_any_stripe_variable(tmp_path):
    from loafy.config import load_config

    environ = {"LOAFY_ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": "sqlite:////tmp/x.db"}
    config = load_config(environ=environ, instance_path=tmp_path)
    assert config["STRIPE_SECRET_KEY"] is None and config["SEPAY_API_KEY"] is None


@pytest.mark.parametrize(
    ("present", "named"),
    [
        ({"STRIPE_SECRET_KEY": "sk"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "wh"}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_PUBLISHABLE_KEY": "pk"}, "STRIPE_SECRET_KEY"),
    ],
)
def test_half_a_stripe_configuration_stops_production(tmp_path, present, named):
    from loafy.config import load_config
    from loafy.errors import ConfigError

    environ = {"LOAFY_ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": "sqlite:////tmp/x.db", **present}
    with pytest.raises(ConfigError, match=named):
        load_config(environ=environ, instance_path=tmp_path)


def test_development_has_bank_feed_keys_production_does_not(tmp_path):
    from loafy.config import load_config

    dev = load_config(environ={"LOAFY_ENV": "development"}, instance_path=tmp_path)
    assert dev["SEPAY_API_KEY"] and dev["CASSO_WEBHOOK_SECRET"]


def test_casso_batch_stores_each_transfer_once(base, factory, now):
    first, second = book(factory, now), book(factory, now)
    items = [casso_body(first.code, PRICE)["data"], casso_body(second.code.lower(), PRICE)["data"]]
    body = {"error": 0, "data": items}
    assert post_casso(base, body, now).status_code == 200
    assert post_casso(base, body, now).status_code == 200  # Casso retries the whole batch
    assert BankTransaction.select().count() == 2
    assert reload(first).status == reload(second).status == "confirmed"


def test_two_transfers_for_one_booking_matched_at_once_see_each_other(base, factory, now):
    """Two halves (or two full payments) arriving in the same second, matched by two jobs at once:
    together they pay the booking; a second full payment is a duplicate, never a second confirm."""
    halves, twice = book(factory, now), book(factory, now)
    bodies = [sepay_body(halves.code, PRICE // 2), sepay_body(halves.code, PRICE // 2)]
    bodies += [sepay_body(twice.code, PRICE), sepay_body(twice.code, PRICE)]
    barrier = threading.Barrier(len(bodies))
    codes = []

    def deliver(body):
        barrier.wait()
        codes.append(post_sepay(base, body).status_code)

    threads = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 4
    assert reload(halves).status == "confirmed"
    assert sorted(transaction(b["id"]).status for b in bodies[:2]) == ["matched", "underpaid"]
    assert reload(twice).status == "confirmed"
    assert sorted(transaction(b["id"]).status for b in bodies[2:]) == ["duplicate", "matched"]
    assert find_violations() == []
