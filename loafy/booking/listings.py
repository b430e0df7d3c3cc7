"""Read side of the public pages: sessions and bookings as players see them.

Every function here is a constant number of queries however many sessions and bookings exist: the
viewer's own booking is joined in, never fetched per row. Nothing here writes.
"""

import operator
from dataclasses import dataclass
from datetime import datetime
from functools import reduce

from peewee import JOIN, Case

from loafy.booking.club_sessions import sees_drafts
from loafy.errors import NotFound, parse_id
from loafy.models import SESSION_STATUSES, Booking, ClubSession
from loafy.paging import Page, clamp_page

PUBLIC_LIST_STATUSES = ("published", "cancelled", "completed")


def _signed_in(viewer):
    return viewer is not None and getattr(viewer, "is_authenticated", False)


def _with_viewer_booking(query, viewer, now):
    """LEFT JOIN the viewer's own live booking (at most one per session: a unique index) as `my_booking`.

    A pending booking past its deadline is not live (invariant 2), even before the expiry job runs.
    """
    if not _signed_in(viewer):
        return query, False
    mine = Booking.alias("my_booking")
    on = (mine.club_session == ClubSession.id) & (mine.user == viewer.id) & Booking.live(now, of=mine)
    return query.select_extend(mine).join(mine, JOIN.LEFT_OUTER, on=on, attr="my_booking"), True


def _attach_booking(rows, joined):
    for row in rows:
        booking = getattr(row, "my_booking", None) if joined else None
        # A LEFT JOIN that matched nothing gives an empty instance: normalise it to None.
        row.my_booking = booking if booking is not None and booking.id is not None else None
    return rows


def list_sessions_page(viewer, filters, page, per_page, now):
    """Sessions for the public list, each with the viewer's live booking as `my_booking`. Two queries.

    `filters`: when ("upcoming" | "all"), starts_from / starts_before (naive UTC; the latter
    exclusive), status (honoured for staff only; nobody else ever sees drafts).
    """
    filters = filters or {}
    upcoming = filters.get("when") != "all"
    where = []
    status = filters.get("status")
    if sees_drafts(viewer) and status in SESSION_STATUSES:
        where.append(ClubSession.status == status)
    elif upcoming:
        where.append(ClubSession.status == "published")
    else:
        where.append(ClubSession.status.in_(PUBLIC_LIST_STATUSES))
    if upcoming:
        where.append(ClubSession.starts_at > now)
    if filters.get("starts_from"):
        where.append(ClubSession.starts_at >= filters["starts_from"])
    if filters.get("starts_before"):
        where.append(ClubSession.starts_at < filters["starts_before"])
    condition = reduce(operator.and_, where)

    total = ClubSession.select().where(condition).count()
    page = clamp_page(page, total, per_page)
    query, joined = _with_viewer_booking(ClubSession.select(ClubSession), viewer, now)
    if upcoming or filters.get("starts_from"):
        order = (ClubSession.starts_at, ClubSession.id)
    else:  # the whole history: newest first
        order = (ClubSession.starts_at.desc(), ClubSession.id.desc())
    rows = list(query.where(condition).order_by(*order).paginate(page, per_page))
    return Page(_attach_booking(rows, joined), total, page, per_page)


def get_session_for_viewer(session_id, viewer, now):
    """One session (drafts for staff only) with the viewer's live booking as `my_booking`. One query."""
    number = parse_id(session_id, "That session does not exist.")
    query, joined = _with_viewer_booking(ClubSession.select(ClubSession), viewer, now)
    club_session = query.where(ClubSession.id == number).first()
    if club_session is None or (club_session.status == "draft" and not sees_drafts(viewer)):
        raise NotFound("That session does not exist.")
    return _attach_booking([club_session], joined)[0]


def list_bookings_page(user, page, per_page, now, clamp=True):
    """The user's bookings and sessions: upcoming soonest first, then the past newest first. 2 queries.

    A page past the end shows the last page (`clamp`, for the HTML pager) or is empty.
    """
    condition = Booking.user == user.id
    total = Booking.select().where(condition).count()
    if clamp:
        page = clamp_page(page, total, per_page)
    ahead = ClubSession.starts_at > now
    rows = list(
        Booking.select(Booking, ClubSession)
        .join(ClubSession)
        .where(condition)
        .order_by(
            Case(None, [(ahead, 0)], 1),
            Case(None, [(ahead, ClubSession.starts_at)], None),
            ClubSession.starts_at.desc(),
            Booking.id.desc(),
        )
        .paginate(page, per_page)
    )
    return Page(rows, total, page, per_page)


@dataclass(frozen=True)
class Availability:
    """What a player can do with a session right now.

    state: open (`left` spots), full, opens (`at`: public opening), members_opens (`at`: early
    access), members_only (`at`: public opening; the viewer is not a member), started, cancelled,
    closed (draft or completed).
    """

    state: str
    left: int = 0
    at: datetime | None = None

    @property
    def bookable(self):
        return self.state == "open"


def bookable_guests(club_session, max_guests):
    """How many guests a player may bring now: the club's limit, and no more than the spots left
    beside their own (the booking service refuses more as "full"; the form offers only what fits)."""
    return max(0, min(max_guests, club_session.available_slots - 1))


def session_availability(club_session, viewer, now):
    """`bookings._check_open`'s rule, read-only, for labels and buttons (the service decides)."""
    if club_session.status == "cancelled":
        return Availability("cancelled")
    if club_session.status != "published":
        return Availability("closed")
    if club_session.starts_at <= now:
        return Availability("started")
    public, early = club_session.booking_opens_at, club_session.early_access_opens_at
    member = _signed_in(viewer) and viewer.is_member(now)
    if public is None:
        pass  # no public opening time: open to everyone (early access is a head start before it)
    elif early is not None and now < early and now < public:
        return Availability("members_opens", at=early)
    elif now < public:
        if early is None:
            return Availability("opens", at=public)
        if not member:
            return Availability("members_only", at=public)
    if club_session.available_slots <= 0:
        return Availability("full")
    return Availability("open", left=club_session.available_slots)
