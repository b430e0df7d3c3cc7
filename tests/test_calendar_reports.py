"""Reports: a seeded month whose money equals totals computed independently from the ledger, per
week and month, filtered by location; the CSV holds the same numbers; the page renders in Chromium."""

import csv
import io
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from loafy.booking.bookings import book_session, cancel_booking, record_payment
from loafy.calendar import attendance, reports
from loafy.db import db
from loafy.models import Booking, LedgerEntry, Pass, PassProduct
from tests.helpers import login

NOV = datetime(2026, 11, 1)


def _seed(factory, now):
    """Paid bookings across November at two places, a refund, a failed refund, a no-show."""
    players = [factory.user() for _ in range(6)]
    total = 0
    for day in range(1, 29, 3):
        place = "Quận 1" if day % 2 else "Thủ Đức"
        starts = NOV + timedelta(days=day, hours=11)
        club_session = factory.club_session(
            location=place, starts_at=starts, max_slots=8, price=100_000, booking_opens_at=None
        )
        for index, player in enumerate(players[: 1 + day % 4]):
            booking = book_session(player, club_session.id, index % 2, "stripe", starts - timedelta(days=2))
            record_payment(
                booking.id,
                provider="stripe",
                provider_id=f"pi_{day}_{index}",
                amount=booking.amount,
                now=starts - timedelta(days=2),
            )
            total += booking.amount
    paid = Booking.select().where(Booking.payment_status == "paid").order_by(Booking.id)
    refunded = paid[0]
    with db.atomic():
        LedgerEntry.create(
            booking=refunded.id,
            kind="refund",
            provider="stripe",
            provider_id="re_1",
            amount=50_000,
            status="succeeded",
            created_at=NOV + timedelta(days=10),
        )
        LedgerEntry.create(
            booking=refunded.id,
            kind="refund",
            provider="stripe",
            provider_id="re_2",
            amount=20_000,
            status="failed",
            created_at=NOV + timedelta(days=11),
        )
        LedgerEntry.create(
            booking=refunded.id,
            kind="intent",
            provider="stripe",
            provider_id="pi_x",
            amount=999_000,
            status="requires_payment_method",
            created_at=NOV + timedelta(days=12),
        )
    return total


def _ledger_sums(low, high):
    """The ledger's own totals, by plain SQL: succeeded payments and refunds that did not fail."""
    from loafy.db import raw_sql

    received = db.execute_sql(
        raw_sql(
            "SELECT COALESCE(SUM(amount), 0) FROM payment_ledger WHERE kind = 'payment' AND status = 'succeeded' "
            "AND created_at >= ? AND created_at < ?"
        ),
        (low, high),
    ).fetchone()[0]
    refunded = db.execute_sql(
        raw_sql(
            "SELECT COALESCE(SUM(amount), 0) FROM payment_ledger WHERE kind = 'refund' AND status <> 'failed' "
            "AND created_at >= ? AND created_at < ?"
        ),
        (low, high),
    ).fetchone()[0]
    return int(received), int(refunded)


def test_the_reports_money_equals_the_ledgers(factory, now):
    total = _seed(factory, now)
    report = reports.build(now, "2026-10-01", "2026-11-30")
    low, high = datetime(2026, 9, 30, 17), datetime(2026, 11, 30, 17)  # club-local midnights in UTC
    received, refunded = _ledger_sums(low, high)
    assert received == total > 0 and refunded == 50_000
    assert (report["totals"]["received"], report["totals"]["refunded"]) == (received, refunded)
    assert (
        sum(r["received"] for r in report["week"]) == sum(r["received"] for r in report["month"]) == received
    )
    assert sum(r["refunded"] for r in report["month"]) == refunded
    assert report["totals"]["net"] == received - refunded
    november = next(r for r in report["month"] if r["period"] == "2026-11")
    assert november["received"] == _ledger_sums(datetime(2026, 10, 31, 17), high)[0]
    # By place: the two locations add up to the whole.
    parts = [
        reports.build(now, "2026-10-01", "2026-11-30", place)["totals"] for place in ("Quận 1", "Thủ Đức")
    ]
    assert sum(p["received"] for p in parts) == received
    assert sum(p["bookings"] for p in parts) == report["totals"]["bookings"] == Booking.select().count()


def test_fill_attendance_and_members(factory, now):
    player = factory.user(created_at=NOV + timedelta(days=2))
    club_session = factory.club_session(
        starts_at=NOV + timedelta(days=20), max_slots=4, price=0, booking_opens_at=None
    )
    came = book_session(player, club_session.id, 1, "stripe", NOV)
    october = NOV - timedelta(days=20)
    missed = book_session(factory.user(created_at=october), club_session.id, 0, "stripe", NOV)
    Booking.update(checked_in_at=club_session.starts_at).where(Booking.id == came.id).execute()
    gone = book_session(
        factory.user(created_at=october),
        factory.club_session(starts_at=NOV + timedelta(days=21), price=0, booking_opens_at=None).id,
        0,
        "stripe",
        NOV,
    )
    cancel_booking(gone.user, gone.id, NOV)
    attendance.mark_attendance(now)
    assert missed.id != came.id
    product = PassProduct.create(name="10 buổi", kind="pack", price=900_000, credits=10, validity_days=90)
    for n, (paid_at, amount) in enumerate(
        [(NOV + timedelta(days=3), 900_000), (NOV + timedelta(days=9), 900_000), (NOV, 0), (None, 900_000)]
    ):
        Pass.create(
            code=f"LP-TEST{n}",
            user=player,
            product=product,
            kind="pack",
            days=90,
            credits_total=10,
            amount=amount,
            payment_method="cash",
            status="paid" if paid_at else "pending_payment",
            paid_at=paid_at,
            starts_at=paid_at,
            ends_at=paid_at and paid_at + timedelta(days=90),
        )  # two sold; a granted one (no money) and an unpaid one are not
    month = next(
        r for r in reports.build(now, "2026-11-01", "2026-11-30")["month"] if r["period"] == "2026-11"
    )
    assert (month["sessions"], month["capacity"], month["booked_slots"], month["bookings"]) == (2, 14, 3, 2)
    assert month["fill_rate"] == round(100 * 3 / 14, 1)
    assert (month["attended"], month["no_show"], month["attendance_rate"], month["no_show_rate"]) == (
        1,
        1,
        50.0,
        50.0,
    )
    assert month["new_members"] == 1 and month["passes_sold"] == 2


def test_weeks_start_on_monday_in_club_time(factory, now):
    report = reports.build(now, "2026-11-01", "2026-11-30")
    assert [r["period"] for r in report["week"]][:2] == ["2026-10-26", "2026-11-02"]
    assert [r["period"] for r in report["month"]] == ["2026-11"]


def test_bad_ranges_are_named(now):
    from loafy.errors import ValidationError

    with pytest.raises(ValidationError):
        reports.build(now, "2026-12-01", "2026-11-01")
    with pytest.raises(ValidationError):
        reports.build(now, "someday", None)


def test_the_csv_holds_the_same_numbers(client, factory, now):
    _seed(factory, now)
    login(client, factory.user(role="admin"))
    response = client.get("/admin/reports/report.csv?from=2026-10-01&to=2026-11-30")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    report = reports.build(now, "2026-10-01", "2026-11-30")
    months = [r for r in rows if r["kind"] == "month"]
    assert [int(r["received"]) for r in months] == [r["received"] for r in report["month"]]
    (total,) = [r for r in rows if r["kind"] == "total"]
    assert int(total["refunded"]) == report["totals"]["refunded"]
    page = client.get("/admin/reports/?from=2026-10-01&to=2026-11-30")
    assert page.status_code == 200 and b"chart.umd.min.js" in page.data
    assert client.get("/admin/reports/?from=nope").status_code == 200  # the message, not a 500


@pytest.fixture(scope="session")
def browser_type_launch_args():
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture
def server(app):
    """The app over real HTTP on 127.0.0.1; yields its base URL."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(5)
    http.server_close()


@pytest.mark.browser
def test_the_page_renders_charts_in_chromium(app, server, browser, factory, now):
    from tests.test_browser import session_cookie

    _seed(factory, now)
    admin = factory.user(role="admin")
    context = browser.new_context(base_url=server)
    context.add_cookies([{"name": "session", "value": session_cookie(app, admin), "url": server}])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/admin/reports/?from=2026-10-01&to=2026-11-30")
    page.wait_for_selector("body[data-report-kind=week]", timeout=15_000)
    drawn = page.evaluate("Chart.getChart('chart-money').data.datasets[0].data.reduce((a, b) => a + b, 0)")
    assert drawn == reports.build(now, "2026-10-01", "2026-11-30")["totals"]["received"]
    page.click("[data-kind=month]")
    page.wait_for_selector("body[data-report-kind=month]", timeout=15_000)
    assert page.evaluate("Chart.getChart('chart-bookings').data.labels") == ["2026-10", "2026-11"]
    assert errors == []
    context.close()
