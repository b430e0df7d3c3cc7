"""Pass products: what the club sells. Admins create and edit them; players see the active ones."""

import logging

from loafy import audit
from loafy.db import db
from loafy.errors import NotFound, PermissionDenied, ValidationError, parse_id
from loafy.models import PASS_KINDS, PassProduct

log = logging.getLogger(__name__)

MAX_PRICE = 99_999_999
FIELDS = (
    "name",
    "kind",
    "price",
    "duration_days",
    "credits",
    "validity_days",
    "early_access",
    "active",
    "renewable",
)


def _whole(data, name, low, high, required=True):
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{name} is required.", field=name)
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{name} must be a whole number from {low} to {high}.", field=name)
    return value


def _flag(data, name, default):
    value = data.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
        "y",
        "0",
        "false",
        "no",
        "off",
        "n",
        "",
    ):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    raise ValidationError(f"{name} must be true or false.", field=name)


def clean_product(data, current=None):
    """Validate a product's fields (a full object, or changes to `current`); returns the values."""
    if not isinstance(data, dict):
        raise ValidationError("Send the product as a JSON object.")
    merged = {}
    if current is not None:
        merged = {name: getattr(current, name) for name in FIELDS}
    merged.update({k: v for k, v in data.items() if k in FIELDS})
    name = str(merged.get("name") or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("Give the product a name (up to 200 characters).", field="name")
    kind = merged.get("kind")
    if kind not in PASS_KINDS:
        raise ValidationError('kind must be "period" or "pack".', field="kind")
    values = {
        "name": name,
        "kind": kind,
        "price": _whole(merged, "price", 0, MAX_PRICE),
        "early_access": _flag(merged, "early_access", True),
        "active": _flag(merged, "active", True),
        "renewable": _flag(merged, "renewable", False),
    }
    if kind == "period":
        values.update(
            duration_days=_whole(merged, "duration_days", 1, 3660), credits=None, validity_days=None
        )
    else:
        values.update(
            duration_days=None,
            credits=_whole(merged, "credits", 1, 1000),
            validity_days=_whole(merged, "validity_days", 1, 3660),
            renewable=False,  # auto-renew is for period memberships
        )
    return values


def _require_admin(actor):
    if actor is None or not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can change what the club sells.")


def list_products(include_inactive=False):
    query = PassProduct.select().order_by(PassProduct.kind.desc(), PassProduct.price, PassProduct.id)
    if not include_inactive:
        query = query.where(PassProduct.active == True)  # noqa: E712
    return list(query)


def get_product(product_id, include_inactive=False):
    number = parse_id(product_id, "That pass product does not exist.")
    product = PassProduct.get_or_none(PassProduct.id == number)
    if product is None or (not product.active and not include_inactive):
        raise NotFound("That pass product does not exist.")
    return product


def create_product(actor, data, now):
    _require_admin(actor)
    values = clean_product(data)
    with db.atomic():
        product = PassProduct.create(**values, created_at=now, updated_at=now)
        audit.record(actor, "pass_product.create", "pass_product", product.id, values, now)
    log.info("pass product %s created by user %s", product.id, actor.id)
    return product


def update_product(actor, product_id, data, now):
    _require_admin(actor)
    product = get_product(product_id, include_inactive=True)
    values = clean_product(data, current=product)
    changed = {k: [getattr(product, k), v] for k, v in values.items() if getattr(product, k) != v}
    if not changed:
        return product
    with db.atomic():
        PassProduct.update(**values, updated_at=now).where(PassProduct.id == product.id).execute()
        audit.record(actor, "pass_product.update", "pass_product", product.id, changed, now)
    return PassProduct.get_by_id(product.id)
