"""Passes on the web: the JSON API (products, buying, my passes) and the /passes page."""

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from loafy.errors import LoafyError, NotFound
from loafy.models import utcnow
from loafy.money import stripe_client as payments
from loafy.passes import credits, passes, products
from loafy.settings import get_settings
from loafy.web.guards import role_required
from public.api_schemas import (
    ADMIN,
    ANYONE,
    SIGNED_IN,
    AutoRenew,
    NewPass,
    NewPassProduct,
    Pass,
    PassFilter,
    PassPage,
    PassProduct,
    PassProductChange,
    PassProductPage,
    answer,
    endpoint,
    including,
)
from public.i18n import error_text

bp = Blueprint("passes", __name__)


def _pass_answer(club_pass, now):
    """A pass as the API shows it: its status at `now` and its credits left (counted)."""
    left = getattr(club_pass, "credits_left", None)
    if club_pass.kind == "pack" and left is None:
        left = credits.credits_left(club_pass)
    return including(club_pass, status=club_pass.status_at(now), credits_left=left)


# --- JSON API ------------------------------------------------------------------------------------


@bp.get("/api/pass-products")
@endpoint("What the club sells (active products)", ANYONE, ok=PassProductPage)
def list_products_view():
    items = products.list_products()
    return answer(
        PassProductPage, {"items": items, "page": 1, "per_page": max(1, len(items)), "total": len(items)}
    )


@bp.post("/api/pass-products")
@role_required("admin")
@endpoint(
    "Create a pass product (period membership or pack)",
    ADMIN,
    ok=PassProduct,
    status=201,
    json=NewPassProduct,
    errors=(400, 401, 403, 413, 415, 422),
)
def create_product_view():
    product = products.create_product(current_user, request.context.json.fields(), utcnow())
    return answer(PassProduct, product, status=201)


@bp.put("/api/pass-products/<int:product_id>")
@role_required("admin")
@endpoint(
    "Change a pass product (sold passes keep what they were sold with)",
    ADMIN,
    ok=PassProduct,
    json=PassProductChange,
    errors=(400, 401, 403, 404, 413, 415, 422),
)
def update_product_view(product_id):
    product = products.update_product(current_user, product_id, request.context.json.fields(), utcnow())
    return answer(PassProduct, product)


@bp.post("/api/passes")
@role_required()
@endpoint(
    "Buy a pass: pending until paid (card, bank transfer with its LP- code, or cash at the desk)",
    SIGNED_IN,
    ok=Pass,
    status=201,
    json=NewPass,
    errors=(400, 401, 404, 409, 413, 415, 422),
)
def buy_pass_view():
    data = request.context.json
    now = utcnow()
    club_pass = passes.buy_pass(
        current_user,
        data.product_id,
        data.payment_method,
        now,
        card_available=bool(payments.publishable_key()),
    )
    response = answer(Pass, _pass_answer(passes.get_pass(club_pass.id, current_user), now), status=201)
    response.headers["Location"] = url_for("passes.get_pass_view", pass_id=club_pass.id)
    return response


@bp.get("/api/passes")
@role_required()
@endpoint(
    "My passes, newest first (staff: a player's, with user_id)",
    SIGNED_IN,
    ok=PassPage,
    query=PassFilter,
    errors=(401, 403, 404, 422),
)
def list_passes_view():
    q = request.context.query
    now = utcnow()
    items = passes.list_passes(current_user, q.user_id, now)
    start = (q.page - 1) * q.per_page
    page = [_pass_answer(p, now) for p in items[start : start + q.per_page]]
    return answer(PassPage, {"items": page, "page": q.page, "per_page": q.per_page, "total": len(items)})


@bp.get("/api/passes/<int:pass_id>")
@role_required()
@endpoint("One pass (its holder, staff)", SIGNED_IN, ok=Pass, errors=(401, 404))
def get_pass_view(pass_id):
    return answer(Pass, _pass_answer(passes.get_pass(pass_id, current_user), utcnow()))


@bp.post("/api/passes/<int:pass_id>/auto-renew")
@role_required()
@endpoint(
    "Renew my running membership by card (a Stripe subscription on the product's Plan)",
    SIGNED_IN,
    ok=Pass,
    json=AutoRenew,
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
)
def auto_renew_on_view(pass_id):
    from loafy.passes import renewal

    now = utcnow()
    club_pass = renewal.turn_on(current_user, pass_id, request.context.json.payment_method, now)
    return answer(Pass, _pass_answer(passes.get_pass(club_pass.id, current_user), now))


@bp.delete("/api/passes/<int:pass_id>/auto-renew")
@role_required()
@endpoint("Stop renewing my membership (it runs to its end)", SIGNED_IN, ok=Pass, errors=(400, 401, 403, 404))
def auto_renew_off_view(pass_id):
    from loafy.passes import renewal

    now = utcnow()
    club_pass = renewal.turn_off(current_user, pass_id, now)
    return answer(Pass, _pass_answer(passes.get_pass(club_pass.id, current_user), now))


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
    from loafy.money import vietqr

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
        vietqr=vietqr.qr_svg(settings, club_pass.amount, club_pass.code)
        if club_pass.payment_method == "bank_transfer"
        else None,
        now=now,
    )


@bp.get("/passes/<int:pass_id>/status.json")
@role_required()
def pass_status(pass_id):
    club_pass = passes.get_pass(pass_id, current_user)
    return jsonify({"status": club_pass.status_at(utcnow())})
