"""The JSON API (DESIGN.md's table). Thin: parse, call one service, serialize."""

from flask import Blueprint, jsonify
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf

from loafy.models import utcnow

bp = Blueprint("api", __name__, url_prefix="/api")


def user_json(user):
    now = utcnow()
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "avatar_url": user.avatar_url,
        "role": user.role_id,
        "roles": [user.role_id],
        "membership": {
            "active": user.is_member(now),
            "until": user.membership_until.isoformat() + "Z" if user.membership_until else None,
        },
    }


@bp.get("/auth/me")
@login_required
def me():
    return jsonify({"user": user_json(current_user), "csrf_token": generate_csrf()})
