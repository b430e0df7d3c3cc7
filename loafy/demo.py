"""Demo data for `loafy dev` and `loafy seed-demo`: a week of sessions and one account per role."""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from loafy.booking.club_sessions import create_session
from loafy.calendar.templates import create_template
from loafy.clock import format_vnd
from loafy.db import db
from loafy.models import ClubSession, PassProduct, User
from loafy.people.accounts import create_user, find_user_by_email

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = (
    # (subject at the dev sign-in provider, e-mail, name, role, member)
    ("admin", "admin@loafy.local", "Trần Minh Anh", "admin", True),
    ("organizer", "organizer@loafy.local", "Nguyễn Văn Bình", "organizer", False),
    ("player", "player@loafy.local", "Lê Thị Cúc", "player", False),
    ("member", "member@loafy.local", "Phạm Quốc Dũng", "player", True),
)

# (title, location, local start hour, hours, max slots, price VND, weekdays 0=Mon)
DEMO_SESSIONS = (
    (
        "Cầu lông giao lưu / Social badminton",
        "Nhà thi đấu Quận 1, 12 Nguyễn Du",
        18,
        2,
        24,
        120_000,
        (0, 2, 4),
    ),
    (
        "Pickleball cho người mới / Pickleball basics",
        "Sân Thảo Điền, 30 Quốc Hương, TP. Thủ Đức",
        7,
        2,
        12,
        150_000,
        (1, 3, 5),
    ),
    (
        "Bóng đá 5 người / 5-a-side football",
        "Sân Phú Thọ, 1 Lữ Gia, Quận 11",
        19,
        1,
        20,
        90_000,
        (2, 6),
    ),
    ("Chạy bộ sáng / Morning run club", "Công viên Tao Đàn, Quận 1", 6, 1, 40, 0, (5, 6)),
    (
        "Bóng chuyền hơi / Volleyball night",
        "Nhà văn hoá Thanh Niên, 4 Phạm Ngọc Thạch",
        19,
        2,
        18,
        100_000,
        (1, 4),
    ),
)


DEMO_TEMPLATE = {
    "title": "Cầu lông chiều / Afternoon badminton (weekly)",
    "description": "Mỗi thứ Ba và thứ Bảy / Every Tuesday and Saturday. All levels welcome.",
    "location": "Nhà thi đấu Quận 1, 12 Nguyễn Du",
    "rrule": "FREQ=WEEKLY;BYDAY=TU,SA",
    "start_time": "17:30",
    "duration_minutes": 90,
    "max_slots": 16,
    "price": 80_000,
    "weeks_ahead": 1,
    "booking_opens_hours_before": 24 * 6,
    "early_access_hours": 24 * 7,
    "allow_pay_at_door": True,
}


def seed_demo(now, timezone="Asia/Ho_Chi_Minh"):
    """Create demo accounts and the next seven days of sessions, if there are no sessions yet."""
    if ClubSession.select().exists():
        return None
    tz = ZoneInfo(timezone)
    with db.atomic():
        users = {}
        for _sub, email, name, role, member in DEMO_ACCOUNTS:
            user = find_user_by_email(email) or create_user(email, name, role=role, now=now)
            if user.role_id != role:  # signed in with Dev sign-in before the demo existed: a player
                User.update(role=role).where(User.id == user.id).execute()
                user = User.get_by_id(user.id)
            users[role] = user
            users[email] = (user, member)
        _seed_passes(users, now)
        organizer = users["organizer"]
        today = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).date()
        created = []
        for offset in range(1, 8):
            day = today + timedelta(days=offset)
            for title, location, hour, hours, slots, price, weekdays in DEMO_SESSIONS:
                if day.weekday() not in weekdays:
                    continue
                starts = datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(ZoneInfo("UTC"))
                starts = starts.replace(tzinfo=None)
                created.append(
                    create_session(
                        organizer,
                        {
                            "title": title,
                            "description": _describe(title, price),
                            "location": location,
                            "starts_at": starts,
                            "ends_at": starts + timedelta(hours=hours),
                            "max_slots": slots,
                            "price": price,
                            "status": "published",
                            "early_access_opens_at": now - timedelta(hours=1),
                            "booking_opens_at": now,
                            "allow_pay_at_door": price == 0 or offset % 2 == 0,
                        },
                        now,
                    )
                )
        # calendar: a weekly slot kept by a template; the nightly job keeps its next week generated.
        _template, generated = create_template(users["admin"], DEMO_TEMPLATE, now)
    transfer = _bank_transfer_booking(find_user_by_email("player@loafy.local"), created, now)
    door = _door_session(organizer, now)
    created = created + generated
    full = _full_session_with_waitlist(organizer, find_user_by_email("member@loafy.local"), today, tz, now)
    log.info("demo data: %d accounts, %d sessions", len(DEMO_ACCOUNTS), len(created) + 2)
    return {
        "accounts": DEMO_ACCOUNTS,
        "sessions": len(created) + 2,
        "bank_booking": transfer,
        "full_session": full,
        "door": door,
    }


# A full session with a waitlist: its spots held by demo guests, three parties waiting (the member
# first, with a friend); the demo player can join the line, a cancellation shows the offer.
DEMO_FULL_SESSION = ("Cầu lông đôi — đã kín / Doubles night (full)", "Nhà thi đấu Quận 1, 12 Nguyễn Du", 6)
DEMO_WAITING = ((2, 2), (3, 1), (1, 1))  # (party, smallest offer taken), in order


def _full_session_with_waitlist(organizer, member, today, tz, now):
    """The full demo session's id: every spot booked (paid at the door), then the waitlist."""
    from loafy.booking import waitlist
    from loafy.booking.bookings import book_session

    title, location, slots = DEMO_FULL_SESSION
    day = today + timedelta(days=3)
    starts = (
        datetime(day.year, day.month, day.day, 19, tzinfo=tz).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    )
    club_session = create_session(
        organizer,
        {
            "title": title,
            "description": _describe(title, 100_000),
            "location": location,
            "starts_at": starts,
            "ends_at": starts + timedelta(hours=2),
            "max_slots": slots,
            "price": 100_000,
            "status": "published",
            "booking_opens_at": now,
            "allow_pay_at_door": True,
        },
        now,
    )
    guests = [_demo_guest(n, now) for n in range(1, slots // 2 + 3)]
    for guest in guests[: slots // 2]:
        book_session(guest, club_session, 1, "cash", now)  # two spots each, confirmed (cash at the door)
    waiting = [member, *guests[slots // 2 :]]
    for seconds, (user, (party, smallest)) in enumerate(zip(waiting, DEMO_WAITING, strict=True)):
        waitlist.join_waitlist(
            user, club_session.id, party, now + timedelta(seconds=seconds), min_party=smallest
        )
    return club_session.id


def _demo_guest(number, now):
    email = f"guest{number}@loafy.local"
    return find_user_by_email(email) or create_user(email, f"Khách demo {number}", role="player", now=now)


# The demo's bank-transfer booking waits this long (not the usual half hour): time to try the
# pay page's "simulate transfer" button, or `loafy bank simulate CODE AMOUNT`, long after start.
DEMO_TRANSFER_HOURS = 24


def _bank_transfer_booking(player, created, now):
    """The player's unpaid bank-transfer booking in the last paid session, to pay by a simulated
    transfer (the whole VietQR flow without a bank); its code, or None."""
    from loafy.booking.bookings import book_session
    from loafy.models import Booking

    paid = [s for s in created if s.price > 0]
    if not paid:
        return None
    booking = book_session(player, paid[-1], 1, "bank_transfer", now)
    deadline = min(now + timedelta(hours=DEMO_TRANSFER_HOURS), paid[-1].starts_at)
    Booking.update(payment_deadline=deadline).where(Booking.id == booking.id).execute()
    return booking.code


# door: people with tickets for tonight's session, to scan at /door (name, guests, paid?).
DOOR_GUESTS = (
    ("Hoàng Thị Em", 0, True),
    ("Vũ Đức Giang", 2, True),
    ("Đỗ Minh Hạnh", 1, False),
    ("Bùi Thanh Khoa", 0, True),
)


def _door_session(organizer, now):
    """A session starting within the hour (check-in is open), with paid and unpaid tickets to scan
    at /door: the player's (cash at the door, unpaid, one guest), the member's (paid) and a few
    more. Returns the session's id."""
    from loafy.booking.bookings import book_session
    from loafy.booking.staff import mark_paid

    starts = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    club_session = create_session(
        organizer,
        {
            "title": "Giao lưu tối nay / Tonight's social (door demo)",
            "description": _describe("Giao lưu tối nay / Tonight's social", 120_000)
            + " Quét vé ở /door / Scan the tickets at /door.",
            "location": "Nhà thi đấu Quận 1, 12 Nguyễn Du",
            "starts_at": starts,
            "ends_at": starts + timedelta(hours=2),
            "max_slots": 24,
            "price": 120_000,
            "status": "published",
            "booking_opens_at": now,
            "allow_pay_at_door": True,
        },
        now,
    )
    people = [
        (find_user_by_email("player@loafy.local"), 1, False),
        (find_user_by_email("member@loafy.local"), 0, True),
    ]
    for index, (name, guests, paid) in enumerate(DOOR_GUESTS, start=1):
        email = f"door{index}@loafy.local"
        people.append((find_user_by_email(email) or create_user(email, name, now=now), guests, paid))
    for user, guests, paid in people:
        booking = book_session(user, club_session, guests, "cash", now)
        if paid:
            mark_paid(organizer, booking.id, "bank_transfer", now)
    return club_session.id


# (name, kind, price VND, days, credits): what the demo club sells
DEMO_PRODUCTS = (
    ("Thành viên tháng / Monthly membership", "period", 300_000, 30, None),
    ("Thành viên năm / Yearly membership", "period", 2_500_000, 365, None),
    ("Gói 10 buổi / 10-session pack", "pack", 900_000, 90, 10),
)


def _seed_passes(users, now):
    """The products to buy; members hold a year's membership, the demo player a 10-session pack."""
    from loafy.passes.passes import _activate, _create_pass

    made = {}
    for name, kind, price, days, credits in DEMO_PRODUCTS:
        made[kind, days] = PassProduct.create(
            name=name,
            kind=kind,
            price=price,
            duration_days=days if kind == "period" else None,
            validity_days=days if kind == "pack" else None,
            credits=credits,
            early_access=True,
            created_at=now,
            updated_at=now,
        )
    for _sub, email, _name, _role, member in DEMO_ACCOUNTS:
        user, _ = users[email]
        product = made["period", 365] if member else None
        if email.startswith("player@"):
            product = made["pack", 90]
        if product is not None:
            club_pass = _create_pass(user.id, product, now, amount=0, payment_method="grant", note="demo")
            _activate(club_pass, now)


def _describe(title, price):
    cost = "Miễn phí / Free" if price == 0 else f"{format_vnd(price)} / người (per person)"
    return (
        f"{title}. Mọi trình độ đều được chào đón — all levels welcome. {cost}. "
        "Mang giày thể thao và nước uống / Bring court shoes and water."
    )
