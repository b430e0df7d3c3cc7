"""Public pages: the session list and detail, and the health check."""

from flask import Blueprint, jsonify, render_template
from flask_login import current_user

from loafy import queue
from loafy.club_sessions import get_session
from loafy.db import db
from loafy.models import ClubSession, utcnow

bp = Blueprint("pages", __name__)

PAGE_SIZE = 20


@bp.get("/")
def home():
    sessions = list(ClubSession.upcoming(utcnow()).limit(PAGE_SIZE))
    return render_template("public/home.html", sessions=sessions)


@bp.get("/sessions")
def session_list():
    sessions = list(ClubSession.upcoming(utcnow()).limit(PAGE_SIZE))
    return render_template("public/home.html", sessions=sessions)


@bp.get("/sessions/<int:session_id>")
def session_detail(session_id):
    viewer = current_user if current_user.is_authenticated else None
    return render_template("public/session.html", club_session=get_session(session_id, viewer))


@bp.get("/healthz")
def healthz():
    """Database and Redis reachability; 503 only when the database is down (Redis is optional)."""
    try:
        db.execute_sql("SELECT 1")
        database = "ok"
    except Exception:  # any driver error means "down" here
        database = "down"
    redis = "ok" if queue.redis_ok() else "down"
    status = "ok" if database == redis == "ok" else ("degraded" if database == "ok" else "down")
    return jsonify({"status": status, "database": database, "redis": redis}), 200 if database == "ok" else 503
