"""Passes on the web: the JSON API (products, buying, my passes) and the /passes page."""

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from loafy.errors import LoafyError, NotFound, ValidationError
from loafy.models import utcnow
from loafy.money import payments
from loafy.passes import credits, passes, products
from loafy.settings import get_settings
from loafy.web.formatting import iso_utc
from loafy.web.guards import role_required
from public.api import json_body, page_json
from public.i18n import error_text

bp = Blueprint("passes", __name__)


def product_json(product):
    return {
        "id": product.id,
        "name": product.name,
        "kind": product.kind,
        "price": product.price,
        "currency": "vnd",
        "duration_days": product.duration_days,
        "credits": product.credits,
        "validity_days": product.validity_days,
        "early_access": product.early_access,
        "active": product.active,
        "renewable": product.renewable,
    }


def pass_json(club_pass, now=None):
    now = now or utcnow()
    left = getattr(club_pass, "credits_left", "unset")
    if left == "unset":
        left = credits.credits_left(club_pass)
    return {
        "id": club_pass.id,
        "code": club_pass.code,
        "kind": club_pass.kind,
        "status": club_pass.status_at(now),
        "product": product_json(club_pass.product),
        "user_id": club_pass.user_id,
        "amount": club_pass.amount,
        "currency": "vnd",
        "payment_method": club_pass.payment_method,
        "payment_deadline": iso_utc(club_pass.payment_deadline),
        "starts_at": iso_utc(club_pass.starts_at),
        "ends_at": iso_utc(club_pass.ends_at),
        "credits_total": club_pass.credits_total,
        "credits_left": left,
        "early_access": club_pass.early_access,
        "auto_renew": club_pass.auto_renew,
        "created_at": iso_utc(club_pass.created_at),
    }


def membership_json(user, now):
    state = passes.membership(user.id, now)
    return {"active": state["active"], "ends_at": iso_utc(state["ends_at"])}


# --- JSON API ------------------------------------------------------------------------------------


@bp.get("/api/pass-products")
def list_products_view():
    items = products.list_products()
    return jsonify(
        {"items": [product_json(p) for p in items], "page": 1, "per_page": len(items), "total": len(items)}
    )


@bp.post("/api/pass-products")
@role_required("admin")
def create_product_view():
    product = products.create_product(current_user, json_body(), utcnow())
    return jsonify(product_json(product)), 201


@bp.put("/api/pass-products/<int:product_id>")
@role_required("admin")
def update_product_view(product_id):
    return jsonify(product_json(products.update_product(current_user, product_id, json_body(), utcnow())))


@bp.post("/api/passes")
@role_required()
def buy_pass_view():
    data = json_body()
    if "product_id" not in data:
        raise ValidationError(
            'Send JSON like {"product_id": 1, "payment_method": "stripe"}.', field="product_id"
        )
    club_pass = passes.buy_pass(
        current_user,
        data.get("product_id"),
        data.get("payment_method"),
        utcnow(),
        card_available=bool(payments.publishable_key()),
    )
    response = jsonify(pass_json(passes.get_pass(club_pass.id, current_user)))
    response.headers["Location"] = url_for("passes.get_pass_view", pass_id=club_pass.id)
    return response, 201


@bp.get("/api/passes")
@role_required()
def list_passes_view():
    now = utcnow()
    items = passes.list_passes(current_user, request.args.get("user_id"), now)
    result = type(
        "Page", (), {"items": items, "page": 1, "per_page": max(len(items), 1), "total": len(items)}
    )
    return jsonify(page_json(result, lambda p: pass_json(p, now)))


@bp.get("/api/passes/<int:pass_id>")
@role_required()
def get_pass_view(pass_id):
    return jsonify(pass_json(passes.get_pass(pass_id, current_user)))


# --- pages ---------------------------------------------------------------------------------------


def _buy_methods(settings):
    methods = [m for m in passes.BUY_METHODS if m in settings["payment_methods"]]
    if "stripe" in methods and not payments.publishable_key():
        methods.remove("stripe")
    return methods


@bp.get("/passes")
def passes_page():
    now = utcnow()
    signed_in = current_user.is_authenticated
    mine = passes.list_passes(current_user, None, now) if signed_in else []
    return render_template(
        "public/passes.html",
        products=products.list_products(),
        mine=mine,
        membership=passes.membership(current_user.id, now) if signed_in else None,
        methods=_buy_methods(get_settings()),
        now=now,
    )


@bp.post("/passes/buy")
@role_required()
def buy_pass_page():
    now = utcnow()
    try:
        club_pass = passes.buy_pass(
            current_user,
            request.form.get("product_id"),
            (request.form.get("payment_method") or "")[:20],
            now,
            card_available=bool(payments.publishable_key()),
        )
    except LoafyError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("passes.passes_page"))
    flash(_("Your pass %(code)s is reserved.", code=club_pass.code), "success")
    if club_pass.status == "pending_payment" and club_pass.payment_method in ("stripe", "bank_transfer"):
        return redirect(url_for("passes.pay_pass_page", pass_id=club_pass.id))
    return redirect(url_for("passes.passes_page"))


@bp.get("/passes/<int:pass_id>/pay")
@role_required()
def pay_pass_page(pass_id):
    from public.payments import pass_vietqr_svg

    now = utcnow()
    club_pass = passes.get_pass(pass_id, current_user)
    if club_pass.user_id != current_user.id:
        raise NotFound("That pass does not exist.")
    settings = get_settings()
    return render_template(
        "public/pass_pay.html",
        club_pass=club_pass,
        status=club_pass.status_at(now),
        settings=settings,
        publishable_key=payments.publishable_key(),
        stripe_js_url=payments.stripe_js_url(),
        vietqr=pass_vietqr_svg(club_pass, settings) if club_pass.payment_method == "bank_transfer" else None,
        now=now,
    )


@bp.get("/passes/<int:pass_id>/status.json")
@role_required()
def pass_status(pass_id):
    club_pass = passes.get_pass(pass_id, current_user)
    return jsonify({"status": club_pass.status_at(utcnow())})
