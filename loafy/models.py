"""The schema. Times are naive UTC; money is whole VND. The database enforces the invariants."""

import base64
import secrets

from flask_login import UserMixin
from peewee import (
    SQL,
    BooleanField,
    CharField,
    Check,
    DateField,
    DateTimeField,
    DeferredForeignKey,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from loafy.clock import utcnow
from loafy.db import db

ROLES = ("player", "organizer", "admin")
STAFF_ROLES = ("organizer", "admin")

SESSION_STATUSES = ("draft", "published", "cancelled", "completed")
BOOKING_STATUSES = ("pending_payment", "confirmed", "cancelled", "expired")
ACTIVE_BOOKING_STATUSES = ("pending_payment", "confirmed")
PAYMENT_STATUSES = ("unpaid", "paid", "refunded", "failed")
PAYMENT_METHODS = ("stripe", "bank_transfer", "cash")
# A booking may also be paid with a pack's credits (passes): no money moves, so no ledger provider.
BOOKING_PAYMENT_METHODS = (*PAYMENT_METHODS, "pass")
LEDGER_KINDS = ("intent", "payment", "refund")
BOOKING_SOURCES = ("direct", "waitlist")
WAITLIST_STATUSES = ("waiting", "offered", "booked", "lapsed", "left")
ACTIVE_WAITLIST_STATUSES = ("waiting", "offered")


def new_ticket_secret():
    """A door ticket's secret: 160 random bits as 32 lower-case base32 letters (no case to get wrong)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()


def _in(column, values):
    quoted = ", ".join(f"'{v}'" for v in values)
    return Check(f"{column} IN ({quoted})")


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class Role(BaseModel):
    name = CharField(primary_key=True, max_length=20)
    description = TextField(default="")

    class Meta:
        table_name = "roles"

    def __str__(self):
        return self.name


class User(UserMixin, BaseModel):
    email = CharField(max_length=254, null=True, unique=True)
    name = CharField(max_length=200)
    avatar_url = CharField(max_length=500, null=True)
    role = ForeignKeyField(Role, field=Role.name, column_name="role", default="player")
    locale = CharField(max_length=8, null=True)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)

    class Meta:
        table_name = "users"

    def __str__(self):
        return f"{self.name} <{self.email}>" if self.email else self.name

    @property
    def is_active(self):
        return self.active

    @property
    def is_staff(self):
        return self.role_id in STAFF_ROLES

    @property
    def is_admin(self):
        return self.role_id == "admin"

    def is_member(self, now):
        """Early access: an active pass whose product grants it (loafy.passes). Remembered on this
        object for the same `now` (one request asks several times)."""
        cached = getattr(self, "_early_access", None)
        if cached is None or cached[0] != now:
            cached = (now, Pass.grants_early_access(self.id, now))
            self._early_access = cached
        return cached[1]


class Identity(BaseModel):
    """One sign-in account at a provider (Google, Facebook, Apple, an OIDC issuer) for a user."""

    user = ForeignKeyField(User, backref="identities", on_delete="CASCADE")
    provider = CharField(max_length=50)
    subject = CharField(max_length=255)
    email = CharField(max_length=254, null=True)
    email_verified = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)

    class Meta:
        table_name = "identities"
        indexes = ((("provider", "subject"), True),)


class ApiToken(BaseModel):
    """A personal API token; only its SHA-256 is stored."""

    user = ForeignKeyField(User, backref="api_tokens", on_delete="CASCADE")
    name = CharField(max_length=100, default="API token")
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


class ClubSession(BaseModel):
    title = CharField(max_length=200)
    description = TextField(default="")
    location = CharField(max_length=300, default="")
    starts_at = DateTimeField()
    ends_at = DateTimeField()
    max_slots = IntegerField(constraints=[Check("max_slots >= 1")])
    available_slots = IntegerField(
        constraints=[Check("available_slots >= 0"), Check("available_slots <= max_slots")]
    )
    price = IntegerField(default=0, constraints=[Check("price >= 0")])
    status = CharField(max_length=20, default="draft", constraints=[_in("status", SESSION_STATUSES)])
    booking_opens_at = DateTimeField(null=True)
    early_access_opens_at = DateTimeField(null=True)
    allow_pay_at_door = BooleanField(default=False)
    created_by = ForeignKeyField(User, backref="created_sessions", null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    cancelled_at = DateTimeField(null=True)
    # calendar: the template that generated it (unique with starts_at), and the revision calendar
    # feeds send as SEQUENCE (bumped when its time, place, title or status changes).
    template_id = IntegerField(null=True)
    revision = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])

    class Meta:
        table_name = "club_sessions"
        constraints = [
            Check("ends_at > starts_at"),
            Check(
                "early_access_opens_at IS NULL OR booking_opens_at IS NULL"
                " OR early_access_opens_at <= booking_opens_at"
            ),
        ]

    def __str__(self):
        return f"{self.title} ({self.starts_at:%Y-%m-%d %H:%M} UTC)"

    @classmethod
    def upcoming(cls, now):
        """Published sessions that have not started, soonest first."""
        return (
            cls.select()
            .where((cls.status == "published") & (cls.starts_at > now))
            .order_by(cls.starts_at, cls.id)
        )


class Booking(BaseModel):
    code = CharField(max_length=8, unique=True)
    user = ForeignKeyField(User, backref="bookings", on_delete="RESTRICT")
    club_session = ForeignKeyField(ClubSession, backref="bookings", on_delete="RESTRICT")
    guest_count = IntegerField(default=0, constraints=[Check("guest_count BETWEEN 0 AND 3")])
    slots = IntegerField(constraints=[Check("slots = 1 + guest_count")])
    unit_price = IntegerField(constraints=[Check("unit_price >= 0")])
    amount = IntegerField(constraints=[Check("amount = slots * unit_price")])
    payment_method = CharField(max_length=20, constraints=[_in("payment_method", BOOKING_PAYMENT_METHODS)])
    status = CharField(
        max_length=20, default="pending_payment", constraints=[_in("status", BOOKING_STATUSES)]
    )
    payment_status = CharField(
        max_length=20, default="unpaid", constraints=[_in("payment_status", PAYMENT_STATUSES)]
    )
    payment_deadline = DateTimeField(null=True)
    stripe_payment_intent_id = CharField(max_length=100, null=True, unique=True)
    checked_in_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField(null=True)
    cancelled_at = DateTimeField(null=True)
    expired_at = DateTimeField(null=True)
    # Set when a paid booking is cancelled and its money must go back; cleared by the refund.
    refund_due_at = DateTimeField(null=True)
    # door: the ticket's secret (its QR holds BASE_URL/t/<secret>) and how many of the party are in.
    ticket_secret = CharField(max_length=64, null=True, unique=True, default=new_ticket_secret)
    checked_in_people = IntegerField(
        default=0, constraints=[SQL("DEFAULT 0"), Check("checked_in_people BETWEEN 0 AND slots")]
    )
    # passes: the pack whose credits paid this booking (payment_method "pass")
    club_pass = DeferredForeignKey(
        "Pass", null=True, column_name="pass_id", object_id_name="club_pass_id", on_delete="RESTRICT"
    )
    # waitlist: how the booking came about; the database default keeps hand-written INSERTs direct.
    source = CharField(
        max_length=10,
        default="direct",
        constraints=[SQL("DEFAULT 'direct'"), _in("source", BOOKING_SOURCES)],
    )
    # calendar: attended | no_show, set after the session ends (loafy.calendar.attendance).
    attendance = CharField(max_length=20, null=True, constraints=[_in("attendance", ("attended", "no_show"))])

    class Meta:
        table_name = "bookings"

    def __str__(self):
        return self.code

    @property
    def is_active(self):
        return self.status in ACTIVE_BOOKING_STATUSES

    # The deadline rule, once: an unpaid booking past its payment deadline has expired for everyone
    # (invariant 2), whether or not the expiry job has run yet. Spelled three ways -- Python, a
    # peewee expression, hand-written SQL for the hot path -- kept side by side here and checked
    # against each other on both databases (tests/test_one_rule.py).
    def is_overdue(self, now):
        """Pending payment with a deadline that has passed."""
        return (
            self.status == "pending_payment"
            and self.payment_deadline is not None
            and self.payment_deadline <= now
        )

    def is_live(self, now):
        """Active and not overdue: it holds its slots and blocks a second booking."""
        return self.is_active and not self.is_overdue(now)

    def shown_status(self, now):
        """The status a person is shown: an overdue booking is expired."""
        return "expired" if self.is_overdue(now) else self.status

    @classmethod
    def overdue(cls, now, of=None):
        """is_overdue as a condition on `of` (Booking or an alias of it)."""
        b = cls if of is None else of
        return (
            (b.status == "pending_payment") & b.payment_deadline.is_null(False) & (b.payment_deadline <= now)
        )

    @classmethod
    def live(cls, now, of=None):
        """is_live as a condition on `of` (Booking or an alias of it)."""
        b = cls if of is None else of
        return b.status.in_(ACTIVE_BOOKING_STATUSES) & ~cls.overdue(now, of=b)


# The same conditions in SQL text, for `.format(b=<the bookings table's alias>)`; each `?` is `now`.
OVERDUE_SQL = (
    "({b}.status = 'pending_payment' AND {b}.payment_deadline IS NOT NULL AND {b}.payment_deadline <= ?)"
)
LIVE_SQL = "({b}.status IN ('pending_payment', 'confirmed') AND NOT " + OVERDUE_SQL + ")"


# A player holds at most one active booking per session: a partial unique index (SQLite and PG).
Booking.add_index(
    Booking.index(
        Booking.user,
        Booking.club_session,
        unique=True,
        where=Booking.status.in_(ACTIVE_BOOKING_STATUSES),
        name="bookings_one_active_per_user_session",
    )
)
# The expiry sweep and invariant 2 look up pending bookings by deadline.
Booking.add_index(
    Booking.index(
        Booking.payment_deadline,
        Booking.club_session,
        where=Booking.status == "pending_payment",
        name="bookings_pending_by_deadline",
    )
)
Booking.add_index(Booking.index(Booking.club_session, Booking.status, name="bookings_by_session"))
Booking.add_index(Booking.index(Booking.user, Booking.created_at, name="bookings_by_user"))
# The staff list: newest bookings first, one page at a time.
Booking.add_index(Booking.index(Booking.created_at, name="bookings_by_created"))
# The public list: upcoming published sessions by start time.
ClubSession.add_index(
    ClubSession.index(ClubSession.status, ClubSession.starts_at, name="club_sessions_by_start")
)


class Setting(BaseModel):
    """The seed's `config` table: one JSON value per key (see loafy.settings for the keys)."""

    key = CharField(primary_key=True, max_length=100)
    value = TextField()
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "settings"


class LedgerEntry(BaseModel):
    """Every money movement, once, keyed by its provider id (invariant 3)."""

    booking = ForeignKeyField(Booking, backref="ledger_entries", null=True, on_delete="RESTRICT")
    kind = CharField(max_length=20, constraints=[_in("kind", LEDGER_KINDS)])
    provider = CharField(max_length=20, constraints=[_in("provider", PAYMENT_METHODS)])
    provider_id = CharField(max_length=255)
    amount = IntegerField(constraints=[Check("amount >= 0")])
    currency = CharField(max_length=3, default="vnd")
    status = CharField(max_length=30, default="")
    note = TextField(default="")
    recorded_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    # passes: the pass this money is for (booking is then empty)
    club_pass = DeferredForeignKey(
        "Pass", null=True, column_name="pass_id", object_id_name="club_pass_id", on_delete="RESTRICT"
    )

    class Meta:
        table_name = "payment_ledger"
        indexes = ((("provider", "kind", "provider_id"), True),)


# The dashboard's revenue: sums this month's rows from the index alone (covering), not the table.
LedgerEntry.add_index(
    LedgerEntry.index(
        LedgerEntry.created_at,
        LedgerEntry.kind,
        LedgerEntry.status,
        LedgerEntry.amount,
        name="payment_ledger_revenue",
    )
)


class WebhookEvent(BaseModel):
    """A provider event seen once, by its id: redelivery changes nothing."""

    event_id = CharField(max_length=255, primary_key=True)
    provider = CharField(max_length=20, default="stripe")
    type = CharField(max_length=100)
    received_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhook_events"


class Notification(BaseModel):
    """An e-mail to send, written in the same transaction as the change it reports (outbox)."""

    user = ForeignKeyField(User, backref="notifications", on_delete="CASCADE")
    booking = ForeignKeyField(Booking, backref="notifications", null=True, on_delete="CASCADE")
    kind = CharField(max_length=50)
    dedupe_key = CharField(max_length=200, unique=True)
    to_email = CharField(max_length=254, null=True)
    subject = CharField(max_length=300, default="")
    body = TextField(default="")
    send_after = DateTimeField(default=utcnow)
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    claimed_at = DateTimeField(null=True)  # a sender is working on it (stale after a few minutes)
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)

    class Meta:
        table_name = "notifications"


Notification.add_index(
    Notification.index(
        Notification.send_after, where=Notification.sent_at.is_null(), name="notifications_unsent"
    )
)


class AuditLog(BaseModel):
    """Who changed what and when, for every staff action."""

    actor = ForeignKeyField(User, null=True, on_delete="SET NULL")
    action = CharField(max_length=100)
    object_type = CharField(max_length=50)
    object_id = CharField(max_length=50, null=True)
    details = TextField(default="{}")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "audit_log"


ALL_MODELS = [
    Role,
    User,
    Identity,
    ApiToken,
    ClubSession,
    Booking,
    Setting,
    LedgerEntry,
    WebhookEvent,
    Notification,
    AuditLog,
]


class WebSession(BaseModel):
    """A signed-in browser. Its cookie carries a random key; only the key's SHA-256 is stored, and
    deleting the row signs that browser out, wherever its cookie has been copied to."""

    user = ForeignKeyField(User, backref="web_sessions", on_delete="CASCADE")
    key_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "web_sessions"


ALL_MODELS.append(WebSession)


# --- calendar: recurring sessions, calendar feeds, the attendance policy -------------------------


class SessionTemplate(BaseModel):
    """A weekly (or any RFC 5545) slot: the sessions it generates carry its id."""

    title = CharField(max_length=200)
    description = TextField(default="")
    location = CharField(max_length=300, default="")
    rrule = CharField(max_length=500)
    starts_on = DateField()  # the rule's first club-local date (DTSTART's date)
    start_time = CharField(max_length=5)  # "HH:MM", club time
    duration_minutes = IntegerField(constraints=[Check("duration_minutes BETWEEN 5 AND 1440")])
    max_slots = IntegerField(constraints=[Check("max_slots >= 1")])
    price = IntegerField(default=0, constraints=[Check("price >= 0")])
    weeks_ahead = IntegerField(default=4, constraints=[Check("weeks_ahead BETWEEN 1 AND 26")])
    booking_opens_hours_before = IntegerField(null=True)
    early_access_hours = IntegerField(null=True)
    allow_pay_at_door = BooleanField(default=False)
    skipped_dates = TextField(default="[]")  # JSON list of club-local "YYYY-MM-DD"
    active = BooleanField(default=True)
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    deleted_at = DateTimeField(null=True)

    class Meta:
        table_name = "session_templates"
        constraints = [
            Check(
                "early_access_hours IS NULL OR (booking_opens_hours_before IS NOT NULL"
                " AND early_access_hours >= booking_opens_hours_before)"
            )
        ]

    def __str__(self):
        return self.title


# One session per template and start, whoever generates it and however often (the generator's
# INSERT ... ON CONFLICT DO NOTHING relies on it).
ClubSession.add_index(
    ClubSession.index(
        ClubSession.template_id,
        ClubSession.starts_at,
        unique=True,
        name="club_sessions_one_per_template_start",
    )
)


class CalendarToken(BaseModel):
    """A player's private calendar feed URL; only its SHA-256 is stored. One live token per player."""

    user = ForeignKeyField(User, backref="calendar_tokens", on_delete="CASCADE")
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)
    revoked_at = DateTimeField(null=True)

    class Meta:
        table_name = "calendar_tokens"


CalendarToken.add_index(
    CalendarToken.index(
        CalendarToken.user,
        unique=True,
        where=CalendarToken.revoked_at.is_null(),
        name="calendar_tokens_one_live",
    )
)

STRIKE_KINDS = ("no_show", "late_cancel")


class Strike(BaseModel):
    """A no-show or a late cancel, once per booking; forgiven strikes no longer count."""

    user = ForeignKeyField(User, backref="strikes", on_delete="CASCADE")
    booking = ForeignKeyField(Booking, backref="strikes", unique=True, on_delete="CASCADE")
    kind = CharField(max_length=20, constraints=[_in("kind", STRIKE_KINDS)])
    occurred_at = DateTimeField()
    forgiven_at = DateTimeField(null=True)
    forgiven_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    forgive_reason = TextField(default="")

    class Meta:
        table_name = "strikes"


Strike.add_index(Strike.index(Strike.user, Strike.occurred_at, name="strikes_by_user"))

ALL_MODELS += [SessionTemplate, CalendarToken, Strike]

# --- passes: memberships (period) and session packs (credits) -------------------------------------

PASS_KINDS = ("period", "pack")
# Stored states. What a player sees (scheduled | active | expired) follows from a paid pass's
# starts_at/ends_at and the time (Pass.status_at): no job has to flip them at the exact instant.
PASS_STATUSES = ("pending_payment", "paid", "expired", "cancelled")
# How a pass was paid: the money paths, or granted by staff (no money; the old membership dates).
PASS_PAYMENT_METHODS = (*PAYMENT_METHODS, "grant")


class PassProduct(BaseModel):
    """What the club sells: a period membership (duration_days) or a pack of credits (validity_days)."""

    name = CharField(max_length=200)
    kind = CharField(max_length=10, constraints=[_in("kind", PASS_KINDS)])
    price = IntegerField(constraints=[Check("price >= 0")])
    duration_days = IntegerField(null=True)
    credits = IntegerField(null=True)
    validity_days = IntegerField(null=True)
    early_access = BooleanField(default=True)
    active = BooleanField(default=True)
    # Auto-renew by card: a Stripe Plan for this product (period products the club marks renewable).
    renewable = BooleanField(default=False)
    stripe_plan_id = CharField(max_length=100, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "pass_products"
        constraints = [
            Check(
                "(kind = 'period' AND duration_days BETWEEN 1 AND 3660 AND credits IS NULL)"
                " OR (kind = 'pack' AND credits BETWEEN 1 AND 1000 AND validity_days BETWEEN 1 AND 3660)"
            )
        ]

    def __str__(self):
        return self.name


class Pass(BaseModel):
    """One pass a player bought (or was granted). Credits left are counted from its bookings."""

    code = CharField(max_length=8, unique=True)
    user = ForeignKeyField(User, backref="passes", on_delete="RESTRICT")
    product = ForeignKeyField(PassProduct, backref="passes", on_delete="RESTRICT")
    # Copied from the product at purchase: editing a product never changes a pass already sold.
    kind = CharField(max_length=10, constraints=[_in("kind", PASS_KINDS)])
    days = IntegerField(constraints=[Check("days >= 1")])  # duration (period) or validity (pack)
    credits_total = IntegerField(null=True, constraints=[Check("credits_total >= 1")])
    early_access = BooleanField(default=True)
    amount = IntegerField(constraints=[Check("amount >= 0")])
    payment_method = CharField(max_length=20, constraints=[_in("payment_method", PASS_PAYMENT_METHODS)])
    status = CharField(max_length=20, default="pending_payment", constraints=[_in("status", PASS_STATUSES)])
    payment_deadline = DateTimeField(null=True)
    starts_at = DateTimeField(null=True)
    ends_at = DateTimeField(null=True)
    stripe_payment_intent_id = CharField(max_length=100, null=True, unique=True)
    auto_renew = BooleanField(default=False)
    stripe_subscription_id = CharField(max_length=100, null=True, unique=True)
    note = TextField(default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")  # staff who sold or granted it
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    paid_at = DateTimeField(null=True)
    cancelled_at = DateTimeField(null=True)
    expired_at = DateTimeField(null=True)
    refund_due_at = DateTimeField(null=True)

    class Meta:
        table_name = "passes"
        constraints = [
            Check("(kind = 'pack') = (credits_total IS NOT NULL)"),
            Check("status <> 'paid' OR (starts_at IS NOT NULL AND ends_at > starts_at)"),
        ]

    def __str__(self):
        return self.code

    def status_at(self, now):
        """pending_payment | scheduled | active | expired | cancelled, as the contract names them."""
        if self.status == "pending_payment" and self.payment_deadline and self.payment_deadline <= now:
            return "expired"  # past its deadline it blocks nothing, job or not
        if self.status != "paid":
            return self.status
        if now < self.starts_at:
            return "scheduled"
        return "active" if now < self.ends_at else "expired"

    @classmethod
    def active(cls, user_id, now):
        """The user's paid passes running at `now`."""
        return cls.select().where(
            (cls.user == user_id) & (cls.status == "paid") & (cls.starts_at <= now) & (cls.ends_at > now)
        )

    @classmethod
    def grants_early_access(cls, user_id, now):
        return cls.active(user_id, now).where(cls.early_access == True).exists()  # noqa: E712


Pass.add_index(Pass.index(Pass.user, Pass.status, Pass.ends_at, name="passes_by_user"))
Pass.add_index(
    Pass.index(
        Pass.payment_deadline, where=Pass.status == "pending_payment", name="passes_pending_by_deadline"
    )
)
# bookings.pass_id and payment_ledger.pass_id are indexed as foreign keys (credits count by them).

# Before the bookings and the ledger that point at them (tests empty tables in reverse order).
ALL_MODELS[ALL_MODELS.index(Booking) : ALL_MODELS.index(Booking)] = [PassProduct, Pass]


class WaitlistEntry(BaseModel):
    """A player (and their party) waiting for a full session. An offer is a pending booking
    (`booking`, source "waitlist") of min(party_size, free) >= min_party slots."""

    user = ForeignKeyField(User, backref="waitlist_entries", on_delete="RESTRICT")
    club_session = ForeignKeyField(ClubSession, backref="waitlist_entries", on_delete="RESTRICT")
    party_size = IntegerField(constraints=[Check("party_size BETWEEN 1 AND 4")])
    min_party = IntegerField(constraints=[Check("min_party >= 1"), Check("min_party <= party_size")])
    payment_method = CharField(max_length=20, constraints=[_in("payment_method", PAYMENT_METHODS)])
    status = CharField(max_length=10, default="waiting", constraints=[_in("status", WAITLIST_STATUSES)])
    booking = ForeignKeyField(Booking, backref="waitlist_entries", null=True, on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    offered_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)  # booked, lapsed or left

    class Meta:
        table_name = "waitlist_entries"
        constraints = [Check("status = 'waiting' OR status = 'left' OR booking_id IS NOT NULL")]


# One live entry per player and session (a double click, two tabs: the database settles it).
WaitlistEntry.add_index(
    WaitlistEntry.index(
        WaitlistEntry.user,
        WaitlistEntry.club_session,
        unique=True,
        where=WaitlistEntry.status.in_(ACTIVE_WAITLIST_STATUSES),
        name="waitlist_one_live_per_user_session",
    )
)
# The offer walk: a session's waiting entries in (created, id) order; the hot path's NOT EXISTS.
WaitlistEntry.add_index(
    WaitlistEntry.index(
        WaitlistEntry.club_session,
        WaitlistEntry.status,
        WaitlistEntry.created_at,
        WaitlistEntry.id,
        name="waitlist_by_session",
    )
)
WaitlistEntry.add_index(WaitlistEntry.index(WaitlistEntry.booking, name="waitlist_by_booking"))
WaitlistEntry.add_index(
    WaitlistEntry.index(WaitlistEntry.user, WaitlistEntry.created_at, name="waitlist_by_user")
)

ALL_MODELS.append(WaitlistEntry)


# bank ------------------------------------------------------------------------------------------
BANK_PROVIDERS = ("sepay", "casso", "manual")
# What matching made of a transaction: "received" until the match job has run; the flagged ones wait
# for staff in the admin's bank queue until resolved.
BANK_STATUSES = (
    "received",
    "matched",
    "underpaid",
    "overpaid",
    "duplicate",
    "refund_due",
    "unmatched",
    "ignored",
)
BANK_FLAGGED_STATUSES = ("underpaid", "overpaid", "duplicate", "refund_due", "unmatched")


class BankTransaction(BaseModel):
    """One transfer reported by a bank feed (SePay, Casso), stored once by (provider, provider id)
    with its raw payload; the match job decides what it pays."""

    provider = CharField(max_length=20, constraints=[_in("provider", BANK_PROVIDERS)])
    provider_id = CharField(max_length=100)
    direction = CharField(max_length=3, default="in", constraints=[_in("direction", ("in", "out"))])
    account_number = CharField(max_length=40, default="")
    amount = IntegerField(constraints=[Check("amount >= 0")])
    memo = TextField(default="")
    bank_reference = CharField(max_length=100, default="")
    payer_name = CharField(max_length=200, default="")
    payer_account = CharField(max_length=60, default="")
    payer_bank = CharField(max_length=100, default="")
    transacted_at = DateTimeField(null=True)
    raw = TextField(default="{}")
    received_at = DateTimeField(default=utcnow)
    status = CharField(max_length=20, default="received", constraints=[_in("status", BANK_STATUSES)])
    code = CharField(max_length=20, null=True)  # the booking or pass code found in the memo
    target_kind = CharField(max_length=20, null=True)  # "booking", "pass", ... (see loafy.money.bank)
    target_id = IntegerField(null=True)
    outcome = CharField(max_length=30, default="")  # what the payment did: confirmed, reconfirmed, ...
    matched_at = DateTimeField(null=True)
    resolved_at = DateTimeField(null=True)  # staff dealt with a flagged one
    resolved_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    resolution = TextField(default="")

    class Meta:
        table_name = "bank_transactions"
        indexes = ((("provider", "provider_id"), True),)


# The staff queue and the backstop sweep read by status.
BankTransaction.add_index(
    BankTransaction.index(
        BankTransaction.status, BankTransaction.received_at, name="bank_transactions_by_status"
    )
)
BankTransaction.add_index(
    BankTransaction.index(
        BankTransaction.target_kind, BankTransaction.target_id, name="bank_transactions_by_target"
    )
)
ALL_MODELS.append(BankTransaction)


# money: a card refund is recorded before Stripe is called and finished after, never inside one
# transaction with the call.
REFUND_REQUEST_STATUSES = ("requested", "sent", "failed")


class RefundRequest(BaseModel):
    """A card refund asked for (by staff, or owed back automatically), written and committed before
    Stripe is called. Its result is recorded after the call; a crash between leaves it `requested`,
    and the sweep sends it again with the same idempotency key (and finds it at Stripe by the
    request id in the refund's metadata), so the money goes back once."""

    booking = ForeignKeyField(Booking, backref="refund_requests", on_delete="RESTRICT")
    payment_intent_id = CharField(max_length=255)
    amount = IntegerField(constraints=[Check("amount > 0")])
    idempotency_key = CharField(max_length=255, unique=True)
    reason = CharField(max_length=50, default="")
    status = CharField(
        max_length=20, default="requested", constraints=[_in("status", REFUND_REQUEST_STATUSES)]
    )
    stripe_refund_id = CharField(max_length=255, null=True)
    error = TextField(default="")
    requested_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    class Meta:
        table_name = "refund_requests"
        indexes = ((("status", "booking"), False),)


ALL_MODELS.append(RefundRequest)


CHECKIN_STATUSES = ("ok", "already", "unpaid", "wrong_session", "wrong_time", "cancelled", "invalid")


class Checkin(BaseModel):
    """One answer at the door (a scan, a typed code, a name picked), kept under its nonce: the same
    nonce gets this answer again and checks no one in twice (the unique index decides)."""

    nonce = CharField(max_length=100, unique=True)
    actor = ForeignKeyField(User, null=True, on_delete="SET NULL")
    code_hash = CharField(max_length=64)  # SHA-256 of what was scanned: a replay must be the same code
    booking = ForeignKeyField(Booking, backref="checkins", null=True, on_delete="CASCADE")
    club_session = ForeignKeyField(ClubSession, null=True, on_delete="CASCADE")
    status = CharField(max_length=20, constraints=[_in("status", CHECKIN_STATUSES)])
    people = IntegerField(default=0, constraints=[Check("people >= 0")])  # checked in by this answer
    answer = TextField(default="{}")
    created_at = DateTimeField(default=utcnow)
    undone_at = DateTimeField(null=True)
    undone_by = ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        table_name = "checkins"


Checkin.add_index(Checkin.index(Checkin.booking, Checkin.created_at, name="checkins_by_booking"))
ALL_MODELS.append(Checkin)
