"""Every JSON API request and answer, declared once: the check, the 422 and /api/openapi.json all
come from these classes (pydantic 2 models; spectree wires them to the views, public/api_spec.py).

Adding an endpoint (a new area: a section at the end of this file, under `# --- <area> ---`):

1. Declare what it takes and what it answers here::

       class JoinWaitlist(Body):                     # a JSON body; `Query` for ?a=b parameters
           session_id: WholeNumber                   # no bool, no text; 3.0 is 3
           guest_count: whole_number(ge=0, le=3) = 0

       class WaitlistEntry(Answer):                  # read from the row's attributes
           id: int
           position: int
           joined_at: UtcTime                        # "...+00:00"; LocalTime for the club's zone
           session: SessionSummary = Field(validation_alias="club_session")

2. Decorate the view, under its route and guard, and answer through the model::

       @bp.post("/waitlist")
       @role_required()
       @endpoint("Join a full session's waiting list", SIGNED_IN, json=JoinWaitlist,
                 ok=WaitlistEntry, status=201, errors=(400, 401, 404, 409, 413, 415, 422))
       def join_waitlist_view():
           data = request.context.json               # a JoinWaitlist, already checked
           entry = waitlist.join(current_user, data.session_id, data.guest_count, utcnow())
           return answer(WaitlistEntry, entry, status=201)

3. Add the route to tests/test_access_matrix.py ROUTES. tests/test_api_openapi.py fails for an /api
   route without `@endpoint`, and Schemathesis then calls the new operation by itself.

Types: pydantic checks types and bounds and names the field in a sentence (`api_spec.describe`);
rules that need the database or the club's settings stay in the Core service, which raises its own
typed errors. A Core tuple of choices becomes a `Literal[...]` here, so both move together.
"""

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, computed_field
from pydantic_core import PydanticCustomError

from loafy.booking.club_sessions import MAX_PER_PAGE, MAX_PRICE, MAX_SLOTS_LIMIT
from loafy.door import tickets
from loafy.models import (
    BOOKING_PAYMENT_METHODS,
    BOOKING_SOURCES,
    BOOKING_STATUSES,
    CHECKIN_STATUSES,
    PASS_KINDS,
    PASS_PAYMENT_METHODS,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    ROLES,
    SESSION_STATUSES,
    WAITLIST_STATUSES,
)
from loafy.money import vietqr
from loafy.settings import recent_settings
from public.api_spec import (  # noqa: F401  (re-exported: views import everything from here)
    ADMIN,
    ANYONE,
    NO_AUTH,
    SIGNED_IN,
    STAFF,
    Answer,
    Blank,
    Body,
    DateTimeText,
    Error,
    LocalTime,
    Query,
    UtcTime,
    WholeNumber,
    answer,
    build_document,
    endpoint,
    endpoint_rows,
    including,
    whole_number,
)

VND = Annotated[int, Field(ge=0, description="Whole VND (no minor unit)")]
Currency = Literal["vnd"]

# --- paging ---------------------------------------------------------------------------------------


class Paging(Query):
    page: Annotated[int, Field(ge=1, le=1_000_000), Blank] = 1
    per_page: Annotated[int, Field(ge=1, le=MAX_PER_PAGE), Blank] = 20


class _Page(Answer):
    page: int = Field(ge=1)
    per_page: int = Field(ge=1, le=MAX_PER_PAGE)
    total: int = Field(ge=0)


# --- auth -----------------------------------------------------------------------------------------


class Membership(Answer):
    """From the user's period passes: ends_at is the end of the last pass in an unbroken run."""

    active: bool
    ends_at: UtcTime | None


class User(Answer):
    id: int
    email: str | None
    name: str
    avatar_url: str | None
    role: Literal[ROLES] = Field(validation_alias="role_id")
    membership: Membership

    @computed_field
    @property
    def roles(self) -> list[str]:
        return [self.role]


class Me(Answer):
    user: User
    csrf_token: str


class SignedOut(Answer):
    signed_out: Literal[True]


# --- sessions -------------------------------------------------------------------------------------


def _not_cancelled(value):
    if value == "cancelled":  # cancelling is its own action: bookings are cancelled and refunded
        raise PydanticCustomError(
            "loafy", "A session is cancelled with the cancel action (DELETE), not by setting its status."
        )
    return value


EditableStatus = Annotated[Literal["draft", "published", "completed"], BeforeValidator(_not_cancelled)]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Slots = whole_number(ge=1, le=MAX_SLOTS_LIMIT)
Price = whole_number(ge=0, le=MAX_PRICE)


class SessionChange(Body):
    """Any subset of a session's fields (PUT). Times without an offset are UTC; status `cancelled`
    is refused: use DELETE."""

    title: Title = None
    description: Annotated[str, Field(max_length=5000)] = None
    location: Annotated[str, Field(max_length=300)] = None
    starts_at: DateTimeText = None
    ends_at: DateTimeText = None
    max_slots: Slots = None
    price: Price = None
    status: EditableStatus = None
    booking_opens_at: DateTimeText | None = None
    early_access_opens_at: DateTimeText | None = None
    allow_pay_at_door: bool = Field(None, strict=True)

    def fields(self):
        """The fields sent, for the service (which checks how they fit together)."""
        return self.model_dump(exclude_unset=True)


class NewSession(SessionChange):
    """A new session (POST): title, starts_at, ends_at and max_slots are required; a draft unless
    `status` says otherwise."""

    title: Title
    starts_at: DateTimeText
    ends_at: DateTimeText
    max_slots: Slots


class SessionFilter(Paging):
    starts_from: Annotated[str, Blank] = Field(
        None, alias="from", description="Sessions starting at or after: ISO date (club-local) or date-time"
    )
    starts_to: Annotated[str, Blank] = Field(
        None, alias="to", description="Sessions starting up to: ISO date (that whole day) or date-time"
    )
    status: Annotated[Literal[SESSION_STATUSES], Blank] = None


class SessionSummary(Answer):
    id: int
    title: str
    location: str
    status: Literal[SESSION_STATUSES]
    starts_at: UtcTime
    ends_at: UtcTime

    @computed_field
    @property
    def starts_at_local(self) -> LocalTime:
        return self.starts_at


class Session(SessionSummary):
    description: str
    max_slots: int = Field(ge=1)
    available_slots: int = Field(ge=0)
    price: VND
    currency: Currency = "vnd"
    booking_opens_at: UtcTime | None
    early_access_opens_at: UtcTime | None
    allow_pay_at_door: bool
    created_by: int | None = Field(validation_alias="created_by_id")
    created_at: UtcTime
    updated_at: UtcTime
    cancelled_at: UtcTime | None
    template_id: int | None  # calendar: the session template that generated it

    @computed_field
    @property
    def ends_at_local(self) -> LocalTime:
        return self.ends_at


class SessionPage(_Page):
    items: list[Session]


# --- bookings -------------------------------------------------------------------------------------


class NewBooking(Body):
    """Me and up to 3 guests (the club's setting may allow fewer)."""

    session_id: WholeNumber
    guest_count: whole_number(ge=0, le=3) = 0
    payment_method: Literal[BOOKING_PAYMENT_METHODS] = Field(
        description='"pass": one credit per spot from my pack that expires first'
    )


class BankDetails(Answer):
    bank_name: str
    bank_bin: str
    account_number: str
    account_name: str
    memo: str = Field(description="The transfer's note: the booking's code")


class Booking(Answer):
    id: int
    code: str = Field(pattern=r"^LB-[A-Z2-9]{5}$")
    user_id: int
    status: Literal[BOOKING_STATUSES]
    payment_status: Literal[PAYMENT_STATUSES]
    payment_method: Literal[BOOKING_PAYMENT_METHODS]
    payment_deadline: UtcTime | None
    guest_count: int = Field(ge=0, le=3)
    slots: int = Field(ge=1, le=4)
    unit_price: VND
    amount: VND
    currency: Currency = "vnd"
    created_at: UtcTime
    confirmed_at: UtcTime | None
    cancelled_at: UtcTime | None
    expired_at: UtcTime | None
    checked_in_at: UtcTime | None
    source: Literal[BOOKING_SOURCES] = Field("direct", description="direct, or an offer from the waitlist")
    attendance: Literal["attended", "no_show"] | None  # calendar: set after the session ends
    session: SessionSummary = Field(validation_alias="club_session")
    # door: only the owner and staff ever get a booking's JSON, so its ticket may be in it.
    checked_in_people: int = Field(0, ge=0, le=4, description="Of the party, checked in at the door")
    ticket_secret: str | None = Field(None, exclude=True)

    @computed_field(description="BASE_URL/t/<secret>: what the door's QR code holds")
    @property
    def ticket_url(self) -> str | None:
        return f"{tickets.base_url()}/t/{self.ticket_secret}" if self.ticket_secret else None

    @computed_field(description="Bank transfers only (else null): what the VietQR code holds")
    @property
    def bank(self) -> BankDetails | None:
        if self.payment_method != "bank_transfer":
            return None
        return BankDetails.model_validate(vietqr.bank_details(recent_settings(), self.code))


class BookingPage(_Page):
    items: list[Booking]


# --- payments -------------------------------------------------------------------------------------


class NewPaymentIntent(Body):
    """A booking's id, or a pass's (`pass_id`) to pay for a pass."""

    # Anything but one of my bookings' ids is a 404, as for a stranger's booking: no hint either way.
    booking_id: Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 1})] = None
    pass_id: Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 1})] = None


class PaymentIntent(Answer):
    client_secret: str
    payment_intent_id: str
    amount: VND
    currency: Currency = "vnd"


class StripeSignature(Body):
    stripe_signature: str = Field(alias="Stripe-Signature")


class StripeEvent(Body):
    """Stripe's event object (checked against its signature over the raw bytes, not here)."""

    model_config = {"extra": "allow"}


class WebhookReceived(Answer):
    received: Literal[True]
    outcome: str | None = None


# --- calendar -------------------------------------------------------------------------------------
# Session templates (recurring sessions). The rule, the time of day and how the fields fit together
# are checked by loafy.calendar.templates, which names the field at fault.

HoursBefore = whole_number(ge=0, le=24 * 90)


class TemplateChange(Body):
    """Any subset of a template's fields (PUT)."""

    title: Title = None
    description: Annotated[str, Field(max_length=5000)] = None
    location: Annotated[str, Field(max_length=300)] = None
    rrule: Annotated[str, Field(min_length=1, max_length=500)] = Field(
        None, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=TU,TH (at most daily)"
    )
    starts_on: Annotated[str, Field(description="The rule's first club-local date, YYYY-MM-DD")] = None
    start_time: Annotated[str, Field(description="HH:MM, club time", max_length=5)] = None
    duration_minutes: whole_number(ge=5, le=1440) = None
    max_slots: Slots = None
    price: Price = None
    weeks_ahead: whole_number(ge=1, le=26) = None
    booking_opens_hours_before: HoursBefore | None = None
    early_access_hours: HoursBefore | None = Field(
        None, description="Members book from this many hours before the start (≥ booking_opens_hours_before)"
    )
    allow_pay_at_door: bool = Field(None, strict=True)
    active: bool = Field(None, strict=True)

    def fields(self):
        return self.model_dump(exclude_unset=True)


class NewTemplate(TemplateChange):
    title: Title
    rrule: Annotated[str, Field(min_length=1, max_length=500)]
    start_time: Annotated[str, Field(description="HH:MM, club time", max_length=5)]
    duration_minutes: whole_number(ge=5, le=1440)
    max_slots: Slots


class SkipDate(Body):
    date: Annotated[str, Field(description="A club-local date, YYYY-MM-DD", max_length=10)]


class Template(Answer):
    id: int
    title: str
    description: str
    location: str
    rrule: str
    starts_on: str
    start_time: str
    duration_minutes: int
    max_slots: int
    price: VND
    currency: Currency = "vnd"
    weeks_ahead: int
    booking_opens_hours_before: int | None
    early_access_hours: int | None
    allow_pay_at_door: bool
    skipped_dates: list[str]
    active: bool
    created_at: UtcTime
    updated_at: UtcTime


class LeftAlone(Answer):
    session_id: int
    starts_at: UtcTime
    reason: str

    @computed_field
    @property
    def starts_at_local(self) -> LocalTime:
        return self.starts_at


class TemplateSessions(Answer):
    """What a change did to the template's future sessions: the booked ones are left alone."""

    updated: list[int]
    created: list[int]
    removed: list[int]
    left_alone: list[LeftAlone]


class CreatedTemplate(Template):
    sessions_created: list[int]


class ChangedTemplate(Template):
    sessions: TemplateSessions


class DeletedTemplate(Answer):
    id: int
    deleted: Literal[True]
    sessions: TemplateSessions


class TemplatePage(_Page):
    items: list[Template]


# --- bank transfers -------------------------------------------------------------------------------


class SepayAuthorization(Body):
    authorization: str = Field(alias="Authorization", description="Apikey <SEPAY_API_KEY>")


class CassoSignature(Body):
    casso_signature: str = Field(
        alias="X-Casso-Signature", description="t=<unix ms>,v1=<hex HMAC-SHA512>, see DESIGN.md"
    )


class SepayTransaction(Body):
    """SePay's transaction (verified by its key; checked by loafy.money.bank_feeds, not here)."""

    model_config = {"extra": "allow"}


class CassoDelivery(Body):
    """Casso v2: {"error": 0, "data": {...}} (signature over the body; checked by the view)."""

    model_config = {"extra": "allow"}


class BankFeedReceived(Answer):
    success: Literal[True]


# --- passes ---------------------------------------------------------------------------------------

PassDays = whole_number(ge=1, le=3660)


class PassProductChange(Body):
    """Any subset of a product's fields (PUT); how they fit together (a period's days, a pack's
    credits and validity) is checked by the products service."""

    name: Annotated[str, Field(min_length=1, max_length=200)] = None
    kind: Literal[PASS_KINDS] = None
    price: Price = None
    duration_days: PassDays | None = None
    credits: whole_number(ge=1, le=1000) | None = None
    validity_days: PassDays | None = None
    early_access: bool = Field(None, strict=True)
    active: bool = Field(None, strict=True)
    renewable: bool = Field(None, strict=True)

    def fields(self):
        return self.model_dump(exclude_unset=True)


class NewPassProduct(PassProductChange):
    """A product: a period membership (duration_days) or a pack (credits, validity_days)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal[PASS_KINDS]
    price: Price


class PassProduct(Answer):
    id: int
    name: str
    kind: Literal[PASS_KINDS]
    price: VND
    currency: Currency = "vnd"
    duration_days: int | None
    credits: int | None
    validity_days: int | None
    early_access: bool
    active: bool
    renewable: bool


class PassProductPage(_Page):
    items: list[PassProduct]


class NewPass(Body):
    # An unknown or withdrawn product is a 404.
    product_id: Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 1})]
    payment_method: Literal["stripe", "bank_transfer", "cash"]


class PassFilter(Paging):
    user_id: Annotated[int, Field(ge=1, le=2**31 - 1), Blank] = Field(
        None, description="Staff: a player's passes"
    )


class Pass(Answer):
    id: int
    code: str = Field(pattern=r"^LP-[A-Z2-9]{5}$")
    kind: Literal[PASS_KINDS]
    status: Literal["pending_payment", "scheduled", "active", "expired", "cancelled"]
    product: PassProduct
    user_id: int
    amount: VND
    currency: Currency = "vnd"
    payment_method: Literal[PASS_PAYMENT_METHODS]
    payment_deadline: UtcTime | None
    starts_at: UtcTime | None
    ends_at: UtcTime | None
    credits_total: int | None
    credits_left: int | None
    early_access: bool
    auto_renew: bool
    created_at: UtcTime

    @computed_field(description="Bank transfers only (else null): what the VietQR code holds")
    @property
    def bank(self) -> BankDetails | None:
        if self.payment_method != "bank_transfer" or self.status != "pending_payment":
            return None
        return BankDetails.model_validate(vietqr.bank_details(recent_settings(), self.code))


class PassPage(_Page):
    items: list[Pass]


class AutoRenew(Body):
    """Renew this membership by card from its end on: the card saved by Stripe.js (pm_...)."""

    payment_method: Annotated[str, Field(min_length=4, max_length=100, pattern=r"^pm_[A-Za-z0-9_]+$")]


# --- waitlist -------------------------------------------------------------------------------------

PartySize = whole_number(ge=1, le=4)


class JoinWaitlist(Body):
    """My party (me and up to 3 guests; the club's setting may allow fewer) and the smallest offer
    I would take (default: the whole party)."""

    party_size: PartySize
    min_party: PartySize | None = None
    payment_method: Literal[PAYMENT_METHODS] | None = Field(
        None, description="How the offer is paid (default: the first online method the session takes)"
    )


class WaitlistQuery(Paging):
    session_id: Annotated[int, Blank] = Field(
        None, description="Staff: that session's whole waitlist, in order (organizers: their own sessions)"
    )


class WaitlistOffer(Answer):
    id: int = Field(description="The offer's booking id: pay it like any booking")
    code: str = Field(pattern=r"^LB-[A-Z2-9]{5}$")
    status: Literal[BOOKING_STATUSES]
    payment_status: Literal[PAYMENT_STATUSES]
    payment_method: Literal[PAYMENT_METHODS]
    payment_deadline: UtcTime | None
    slots: int = Field(ge=1, le=4)
    amount: VND
    currency: Currency = "vnd"


class WaitlistPlayer(Answer):
    id: int
    name: str
    email: str | None


class WaitlistEntry(Answer):
    id: int
    session_id: int = Field(validation_alias="club_session_id")
    party_size: int = Field(ge=1, le=4)
    min_party: int = Field(ge=1, le=4)
    status: Literal[WAITLIST_STATUSES]
    position: int | None = Field(ge=1, description="1 + the waiting entries ahead (waiting entries only)")
    booking_id: int | None = Field(description="The offer, once made")
    payment_method: Literal[PAYMENT_METHODS]
    created_at: UtcTime
    offered_at: UtcTime | None
    closed_at: UtcTime | None
    offer: WaitlistOffer | None
    session: SessionSummary = Field(validation_alias="club_session")
    user: WaitlistPlayer | None = Field(None, description="Staff views only")


class WaitlistPage(_Page):
    items: list[WaitlistEntry]


# --- door -----------------------------------------------------------------------------------------


class CheckinRequest(Body):
    """One scan at the door. `code`: the ticket URL, its secret, or a booking code typed by staff."""

    code: Annotated[str, Field(min_length=1, max_length=500)]
    nonce: Annotated[
        str, Field(min_length=1, max_length=100, description="One per scan; a retry resends it")
    ] = None
    session_id: WholeNumber = Field(None, description="The session at this door")
    collect: Literal["cash"] = Field(
        None, description="Take an unpaid booking's money in cash, then check in"
    )
    people: whole_number(ge=1, le=4) = Field(None, description="Of the party, arriving now (default: all)")


class Person(Answer):
    id: int
    name: str


class PlayerName(Answer):
    name: str


class SessionPeople(Answer):
    people_in: int = Field(ge=0)
    people_total: int = Field(ge=0)


class CheckinAnswer(Answer):
    status: Literal[CHECKIN_STATUSES]
    message: str
    reason: str | None = Field(None, description="wrong_time: not_open_yet or ended")
    booking: Booking | None
    player: PlayerName | None = None
    session: SessionSummary | None = None
    session_people: SessionPeople | None = None
    checked_in_at: str | None = Field(description="ISO-8601 with offset (UTC)")
    checked_in_by: Person | None
    amount_due: VND
    collected: VND = 0
    people: int = Field(ge=0, description="Checked in by this answer")
    people_in: int = Field(ge=0)
    people_total: int = Field(ge=0)
    nonce: str


class CheckinUndone(Answer):
    status: Literal["undone"]
    booking: Booking


class DoorSearch(Query):
    q: Annotated[str, Field(max_length=100), Blank] = Field(None, description="A name, from 3 letters")


class Expected(Answer):
    booking_id: int
    code: str
    name: str
    status: Literal[BOOKING_STATUSES]
    payment_status: Literal[PAYMENT_STATUSES]
    amount: VND
    slots: int
    people_in: int
    checked_in_at: UtcTime | None


class DoorRoster(Answer):
    session: SessionSummary
    people_in: int | None = None
    people_total: int | None = None
    expected: list[Expected] | None = Field(None, description="Who is still expected (without ?q=)")
    items: list[Expected] | None = Field(None, description="The names found (with ?q=)")
