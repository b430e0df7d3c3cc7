"""The waitlist through its services: joining, order, parties, offers after every freeing event,
lapses, payment, the check, and the e-mails. On whichever database the suite runs on."""

from datetime import timedelta

import pytest

from loafy.booking import waitlist
from loafy.booking.bookings import SessionFull, book_session, cancel_booking, expire_unpaid, record_payment
from loafy.booking.staff import update_session
from loafy.checks import find_violations
from loafy.errors import NotFound
from loafy.models import AuditLog, Booking, ClubSession, WaitlistEntry
from loafy.settings import update_settings
from tests.helpers import reload


def _full_session(factory, now, max_slots=4, holders=None, **fields):
    """A session whose slots are all held by confirmed one-person bookings; returns it and them."""
    club_session = factory.club_session(max_slots=max_slots, **fields)
    held = []
    for _ in range(holders if holders is not None else max_slots):
        booking = book_session(factory.user(), club_session, 0, "bank_transfer", now)
        record_payment(
            booking.id,
            provider="bank_transfer",
            provider_id=f"t-{booking.code}",
            amount=booking.amount,
            now=now,
        )
        held.append(reload(booking))
    return reload(club_session), held


def _join(factory, club_session, now, party=1, min_party=None, user=None, at=None):
    return waitlist.join_waitlist(
        user or factory.user(), club_session.id, party, at or now, min_party=min_party
    )


def _cancel(booking, now):
    return cancel_booking(booking.user, booking.id, now)


# --- joining -------------------------------------------------------------------------------------


def test_joining_a_full_session_gives_a_place_in_order(factory, now):
    club_session, _ = _full_session(factory, now)
    first = _join(factory, club_session, now, party=2)
    second = _join(factory, club_session, now + timedelta(seconds=1))
    third = _join(factory, club_session, now)  # same time as the first: the id breaks the tie
    assert (first.status, first.party_size, first.min_party, first.position) == ("waiting", 2, 2, 1)
    assert waitlist.position(reload(second)) == 3
    assert waitlist.position(reload(third)) == 2
    assert waitlist.waiting_count(club_session.id) == 3
    assert find_violations() == []


def test_a_session_with_room_says_book_instead(factory, now):
    club_session, _ = _full_session(factory, now, max_slots=4, holders=2)
    with pytest.raises(waitlist.NotFull) as error:
        _join(factory, club_session, now, party=2)
    assert error.value.code == "not_full" and error.value.status == 409
    # Room for 2 but the party is 3 and takes nothing less: it may wait.
    assert _join(factory, club_session, now, party=3).status == "waiting"
    # A party of 4 that takes 2 fits the 2 free: book them instead.
    with pytest.raises(waitlist.NotFull, match="Only 2 spots left"):
        _join(factory, club_session, now, party=4, min_party=2)


def test_duplicates_are_refused(factory, now):
    club_session, held = _full_session(factory, now)
    player = factory.user()
    _join(factory, club_session, now, user=player)
    with pytest.raises(waitlist.AlreadyListed) as error:
        _join(factory, club_session, now, user=player)
    assert error.value.code == "duplicate"
    with pytest.raises(waitlist.AlreadyListed):  # a player holding a booking books guests instead
        _join(factory, club_session, now, user=held[0].user)
    assert WaitlistEntry.select().count() == 1


@pytest.mark.parametrize("change", ["cancelled", "started", "completed"])
def test_closed_sessions_refuse(factory, now, change):
    club_session, _ = _full_session(factory, now, max_slots=1)
    if change == "started":
        ClubSession.update(starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)).where(
            ClubSession.id == club_session.id
        ).execute()
    else:
        ClubSession.update(status=change).where(ClubSession.id == club_session.id).execute()
    with pytest.raises(waitlist.WaitlistClosed) as error:
        _join(factory, club_session, now)
    assert error.value.code == "closed"


def test_drafts_do_not_exist_for_players(factory, now):
    club_session = factory.club_session(status="draft", max_slots=1, available_slots=0)
    with pytest.raises(NotFound):
        _join(factory, club_session, now)


@pytest.mark.parametrize(
    "party, min_party",
    [(0, None), (5, None), (2, 3), (2, 0), ("x", None), (True, None), (None, None), (1.5, None)],
)
def test_bad_parties_are_refused_clearly(factory, now, party, min_party):
    club_session, _ = _full_session(factory, now, max_slots=1)
    with pytest.raises(waitlist.InvalidParty) as error:
        _join(factory, club_session, now, party=party, min_party=min_party)
    assert error.value.status == 422 and error.value.field in ("party_size", "min_party")


def test_the_party_limit_follows_max_guests(factory, now):
    update_settings({"max_guests": 1})
    club_session, _ = _full_session(factory, now, max_slots=1)
    with pytest.raises(waitlist.InvalidParty, match="1 to 2 people"):
        _join(factory, club_session, now, party=3)


# --- offers ----------------------------------------------------------------------------------


def test_a_cancellation_offers_the_slots_to_the_head(factory, now):
    club_session, held = _full_session(factory, now)
    entry = _join(factory, club_session, now, party=1)
    later = now + timedelta(minutes=5)
    _cancel(held[0], later)
    entry = reload(entry)
    assert entry.status == "offered" and entry.offered_at == later
    offer = Booking.get_by_id(entry.booking_id)
    assert (offer.status, offer.source, offer.slots, offer.user_id) == (
        "pending_payment",
        "waitlist",
        1,
        entry.user_id,
    )
    assert offer.payment_deadline == later + timedelta(minutes=120)  # two days away: the far window
    assert offer.amount == club_session.price
    assert reload(club_session).available_slots == 0
    assert find_violations() == []


@pytest.mark.parametrize(
    "starts_in, expected",
    [
        (timedelta(days=2), timedelta(minutes=120)),
        (timedelta(hours=5), timedelta(minutes=30)),
        (timedelta(hours=1), timedelta(minutes=10)),
        (timedelta(minutes=4), timedelta(minutes=4)),  # never past the start
    ],
)
def test_the_offer_window_follows_how_soon_the_session_starts(factory, now, starts_in, expected):
    club_session, held = _full_session(factory, now, max_slots=1, starts_at=now + starts_in)
    update_settings({"cancellation_cutoff_hours": 0})
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    assert Booking.get_by_id(reload(entry).booking_id).payment_deadline == now + expected


def test_offer_windows_are_settings(factory, now):
    update_settings({"waitlist_offer_minutes_far": 45})
    club_session, held = _full_session(factory, now, max_slots=1)
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    assert Booking.get_by_id(reload(entry).booking_id).payment_deadline == now + timedelta(minutes=45)


def test_a_party_keeps_its_place_while_a_smaller_one_behind_it_is_offered(factory, now):
    club_session, held = _full_session(factory, now, max_slots=4)
    trio = _join(factory, club_session, now, party=3)  # all three or nothing
    solo = _join(factory, club_session, now + timedelta(seconds=1), party=1)
    _cancel(held[0], now)
    assert reload(trio).status == "waiting" and waitlist.position(reload(trio)) == 1
    assert reload(solo).status == "offered"
    assert Booking.get_by_id(reload(solo).booking_id).slots == 1
    _cancel(held[1], now)
    _cancel(held[2], now)  # two free: still not enough for the trio
    assert reload(trio).status == "waiting"
    assert reload(club_session).available_slots == 2
    assert find_violations() == []
    _cancel(held[3], now)  # three free: the trio's offer
    trio = reload(trio)
    assert trio.status == "offered"
    assert Booking.get_by_id(trio.booking_id).slots == 3
    assert reload(club_session).available_slots == 0
    assert find_violations() == []


def test_a_party_that_accepts_fewer_gets_what_is_free(factory, now):
    club_session, held = _full_session(factory, now, max_slots=4)
    entry = _join(factory, club_session, now, party=4, min_party=2)
    _cancel(held[0], now)
    assert reload(entry).status == "waiting"
    _cancel(held[1], now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    assert (offer.slots, offer.guest_count, offer.amount) == (2, 1, 2 * club_session.price)


def test_one_freeing_event_serves_several_entries(factory, now):
    club_session = factory.club_session(max_slots=4)
    big = book_session(factory.user(), club_session, 2, "bank_transfer", now)
    book_session(factory.user(), club_session, 0, "bank_transfer", now)
    entries = [_join(factory, club_session, now + timedelta(seconds=i)) for i in range(5)]
    _cancel(big, now)
    statuses = [reload(e).status for e in entries]
    assert statuses == ["offered", "offered", "offered", "waiting", "waiting"]
    assert waitlist.position(reload(entries[3])) == 1


def test_an_unpaid_offer_lapses_and_the_next_is_offered(factory, now):
    club_session, held = _full_session(factory, now, max_slots=2)
    first = _join(factory, club_session, now, party=2)
    second = _join(factory, club_session, now + timedelta(seconds=1), party=2)
    _cancel(held[0], now)
    _cancel(held[1], now)
    offer = Booking.get_by_id(reload(first).booking_id)
    assert reload(second).status == "waiting"
    later = offer.payment_deadline + timedelta(seconds=1)
    assert expire_unpaid(later) == [offer.code]
    assert reload(offer).status == "expired"
    assert reload(first).status == "lapsed"
    second = reload(second)
    assert second.status == "offered"
    assert Booking.get_by_id(second.booking_id).payment_deadline == later + timedelta(minutes=120)
    assert reload(club_session).available_slots == 0
    assert find_violations(later) == []


def test_paying_the_offer_books_the_entry(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1)
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    outcome = record_payment(
        offer.id, provider="stripe", provider_id="pi_offer", amount=offer.amount, now=now
    )
    assert outcome == "confirmed"
    assert reload(offer).status == "confirmed"
    assert reload(entry).status == "booked"
    assert find_violations() == []


def test_a_late_payment_of_a_lapsed_offer_books_it_if_room_remains(factory, now):
    club_session, held = _full_session(factory, now, max_slots=2)
    entry = _join(factory, club_session, now, party=1)
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    later = offer.payment_deadline + timedelta(minutes=1)
    expire_unpaid(later)
    assert reload(entry).status == "lapsed"
    outcome = record_payment(
        offer.id, provider="stripe", provider_id="pi_late", amount=offer.amount, now=later
    )
    assert outcome == "reconfirmed" and reload(entry).status == "booked"


def test_free_sessions_and_cash_at_the_door_are_booked_at_once(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1, price=0)
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    entry = reload(entry)
    assert entry.status == "booked"
    assert Booking.get_by_id(entry.booking_id).status == "confirmed"


def test_raising_capacity_offers_the_new_slots(factory, now):
    club_session, _ = _full_session(factory, now, max_slots=2)
    entry = _join(factory, club_session, now, party=2)
    update_session(factory.user(role="admin"), club_session.id, {"max_slots": 3}, now)
    assert reload(entry).status == "waiting"
    after = update_session(factory.user(role="admin"), club_session.id, {"max_slots": 4}, now)
    assert reload(entry).status == "offered"
    assert after.available_slots == 0
    assert find_violations() == []


def test_a_lapsed_hold_goes_to_the_waitlist_not_to_a_direct_booker(factory, now):
    """While a fitting entry waits, nobody outside the waitlist gets the slots: 409 full."""
    club_session = factory.club_session(max_slots=2)
    hold = book_session(factory.user(), club_session, 1, "bank_transfer", now)
    entry = _join(factory, club_session, now, party=2)
    later = hold.payment_deadline + timedelta(seconds=1)  # lapsed, the expiry job not run yet
    with pytest.raises(SessionFull):
        book_session(factory.user(), club_session, 0, "stripe", later)
    assert reload(hold).status == "expired"
    assert reload(entry).status == "offered"
    assert find_violations(later) == []


def test_a_direct_booker_gets_what_no_waiting_party_fits(factory, now):
    club_session, held = _full_session(factory, now, max_slots=3)
    trio = _join(factory, club_session, now, party=3)
    _cancel(held[0], now)
    booking = book_session(factory.user(), club_session, 0, "stripe", now)
    assert booking.status == "pending_payment" and booking.source == "direct"
    assert reload(trio).status == "waiting"


def test_a_waiting_player_who_books_directly_leaves_the_waitlist(factory, now):
    club_session, held = _full_session(factory, now, max_slots=3)
    player = factory.user()
    mine = _join(factory, club_session, now, party=3, user=player)
    _cancel(held[0], now)
    book_session(player, club_session, 0, "stripe", now)
    assert reload(mine).status == "left"


# --- leaving ---------------------------------------------------------------------------------


def test_leaving_moves_everyone_behind_up(factory, now):
    club_session, _ = _full_session(factory, now)
    first = _join(factory, club_session, now)
    second = _join(factory, club_session, now + timedelta(seconds=1))
    left = waitlist.leave_waitlist(first.user, first.id, now)
    assert left.status == "left" and waitlist.position(left) is None
    assert waitlist.position(reload(second)) == 1
    assert waitlist.leave_waitlist(first.user, first.id, now).status == "left"  # twice: no change
    assert AuditLog.select().count() == 0  # the player's own action


def test_declining_an_offer_passes_it_on(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1)
    first = _join(factory, club_session, now)
    second = _join(factory, club_session, now + timedelta(seconds=1))
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(first).booking_id)
    waitlist.leave_waitlist(first.user, first.id, now)
    assert reload(offer).status == "cancelled"
    assert reload(second).status == "offered"
    assert find_violations() == []


def test_cancelling_the_offer_booking_is_declining_it(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1)
    first = _join(factory, club_session, now)
    second = _join(factory, club_session, now + timedelta(seconds=1))
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(first).booking_id)
    cancel_booking(first.user, offer.id, now)
    assert reload(first).status == "left"
    assert reload(second).status == "offered"


def test_staff_remove_an_entry_audited_and_others_cannot(factory, now):
    organizer = factory.user(role="organizer")
    club_session, _ = _full_session(factory, now, created_by=organizer)
    entry = _join(factory, club_session, now)
    with pytest.raises(NotFound):
        waitlist.leave_waitlist(factory.user(), entry.id, now)
    with pytest.raises(NotFound):
        waitlist.leave_waitlist(factory.user(role="organizer"), entry.id, now)  # not their session
    waitlist.leave_waitlist(organizer, entry.id, now)
    row = AuditLog.get()
    assert (row.action, row.object_id, row.actor_id) == ("waitlist.remove", str(entry.id), organizer.id)


def test_a_booked_entry_cannot_leave(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1)
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    record_payment(offer.id, provider="stripe", provider_id="pi_x", amount=offer.amount, now=now)
    with pytest.raises(waitlist.EntryNotActive):
        waitlist.leave_waitlist(entry.user, entry.id, now)


# --- the check and the sweep -----------------------------------------------------------------


def test_the_check_sees_a_fitting_entry_left_waiting_and_the_sweep_offers_it(factory, now):
    club_session, held = _full_session(factory, now, max_slots=2)
    entry = _join(factory, club_session, now)
    # A crash between a freeing commit and its offer, simulated: the slot returns behind our back.
    Booking.update(status="cancelled").where(Booking.id == held[0].id).execute()
    ClubSession.update(available_slots=1).where(ClubSession.id == club_session.id).execute()
    assert any("waiting entry fits" in line for line in find_violations())
    assert waitlist.offer_everywhere(now) == [Booking.get_by_id(reload(entry).booking_id).code]
    assert find_violations() == []
    assert waitlist.offer_everywhere(now) == []


def test_the_check_sees_an_offer_beyond_its_party(factory, now):
    club_session, held = _full_session(factory, now, max_slots=1)
    entry = _join(factory, club_session, now)
    _cancel(held[0], now)
    Booking.update(slots=2, guest_count=1, amount=2 * club_session.price).where(
        Booking.id == reload(entry).booking_id
    ).execute()
    assert any("for a party of 1..1" in line for line in find_violations())


# --- e-mails ---------------------------------------------------------------------------------


def _mails(outbox):
    import email
    from email import policy

    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))
    ]


def _mail_to(outbox, address):
    return [m for m in _mails(outbox) if m["To"] == address]


def test_the_waitlist_mails_in_both_languages(factory, now, outbox):
    from loafy import notifications

    club_session, held = _full_session(factory, now, max_slots=2, price=150_000)
    ahead = _join(factory, club_session, now)
    player = factory.user(email="lan@example.com", name="Lan")
    entry = _join(factory, club_session, now + timedelta(seconds=1), party=2, user=player)
    notifications.send_due(now + timedelta(seconds=1))
    joined = _mail_to(outbox, "lan@example.com")
    assert len(joined) == 1
    body = joined[0].get_content()
    assert "Xin chào Lan" in body and "Hello Lan" in body
    assert "Vị trí của bạn: số 2" in body and "Your position: number 2" in body
    assert "waitlist" in joined[0]["Subject"]

    waitlist.leave_waitlist(ahead.user, ahead.id, now)
    _cancel(held[0], now)
    _cancel(held[1], now)
    notifications.send_due(now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    mails = _mail_to(outbox, "lan@example.com")
    assert len(mails) == 2
    [mail] = [m for m in mails if offer.code in m["Subject"]]
    body = mail.get_content()
    assert "A spot for you" in mail["Subject"]
    assert "2 chỗ" in body and "2 spots" in body
    assert "300.000 ₫" in body
    assert "12:00 24/11/2026" in body  # 03:00 UTC + 120 minutes, in Vietnam time
    assert f"/bookings/{offer.id}/pay" in body

    later = offer.payment_deadline + timedelta(seconds=1)
    expire_unpaid(later)
    notifications.send_due(later)
    mails = _mail_to(outbox, "lan@example.com")
    assert len(mails) == 3
    [mail] = [m for m in mails if "lapsed" in m["Subject"]]
    assert "đã hết hạn" in mail.get_content() and offer.code in mail["Subject"]


def test_the_booked_mail(factory, now, outbox):
    from loafy import notifications

    club_session, held = _full_session(factory, now, max_slots=1)
    player = factory.user(email="minh@example.com", name="Minh")
    entry = _join(factory, club_session, now, user=player)
    _cancel(held[0], now)
    offer = Booking.get_by_id(reload(entry).booking_id)
    record_payment(offer.id, provider="stripe", provider_id="pi_b", amount=offer.amount, now=now)
    notifications.send_due(now)
    subjects = [m["Subject"] for m in _mail_to(outbox, "minh@example.com")]
    assert any("You are in" in s and offer.code in s for s in subjects), subjects


def test_the_demo_has_a_full_session_with_a_waitlist(app, now):
    from loafy.demo import seed_demo

    result = seed_demo(now)
    full = ClubSession.get_by_id(result["full_session"])
    assert full.available_slots == 0
    entries = waitlist.list_entries_page(
        waitlist.User.get(waitlist.User.email == "organizer@loafy.local"), full.id, 1, 20
    ).items
    head = entries[0]
    assert (head.position, head.party_size, head.user.email) == (1, 2, "member@loafy.local")
    assert len(entries) == 3
    assert find_violations() == []


def test_cancelling_the_session_closes_its_waitlist(factory, now):
    from loafy.booking.staff import cancel_session

    club_session, _ = _full_session(factory, now, max_slots=2)
    entries = [_join(factory, club_session, now) for _ in range(2)]
    cancel_session(factory.user(role="admin"), club_session.id, now, reason="rain")
    assert [reload(e).status for e in entries] == ["left", "left"]
    assert Booking.select().where(Booking.source == "waitlist").count() == 0
    assert find_violations() == []


def test_a_refused_join_still_passes_a_lapsed_hold_to_those_ahead(factory, now):
    club_session = factory.club_session(max_slots=2)
    hold = book_session(factory.user(), club_session, 1, "bank_transfer", now)
    ahead = _join(factory, club_session, now, party=2)
    later = hold.payment_deadline + timedelta(seconds=1)
    with pytest.raises(waitlist.AlreadyListed):  # the same player again: refused...
        _join(factory, club_session, later, user=ahead.user)
    assert reload(ahead).status == "offered"  # ...but the lapsed hold went to them all the same
    assert find_violations(later) == []
