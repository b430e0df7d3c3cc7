"""The floor (issue 23): the booking transaction in ~40 lines of Flask + psycopg2, on the app's tables.

    DATABASE_URL=postgresql://... gunicorn --config loafy/gunicorn_conf.py bench.floor:app

Token lookup, conditional decrement of the session's slots, insert the booking, commit: what
straightforward code does, with no rules beyond those (bench/floor_vs_app.py compares the app to it).
"""

import hashlib
import os
import secrets
import threading
from datetime import datetime, timedelta

import psycopg2
from flask import Flask, jsonify, request

app = Flask(__name__)
_local = threading.local()  # one connection per gunicorn thread


def connection():
    if getattr(_local, "conn", None) is None:
        _local.conn = psycopg2.connect(os.environ["DATABASE_URL"])
    return _local.conn


@app.post("/api/bookings")
def book():
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    data = request.get_json()
    slots, now = 1 + int(data.get("guest_count", 0)), datetime.utcnow()
    conn = connection()
    with conn, conn.cursor() as cur:  # commits on success, rolls back on any exception
        cur.execute(
            "SELECT u.id FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.active",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
        user = cur.fetchone()
        if user is None:
            return jsonify(error={"code": "unauthorized"}), 401
        cur.execute(
            "UPDATE club_sessions SET available_slots = available_slots - %s, updated_at = %s"
            " WHERE id = %s AND status = 'published' AND available_slots >= %s RETURNING price",
            (slots, now, data["session_id"], slots),
        )
        session = cur.fetchone()
        if session is None:
            return jsonify(error={"code": "full"}), 409
        code = "LB-" + "".join(secrets.choice("ABCDEFGHJKMNPQRSTUVWXYZ23456789") for _ in range(5))
        cur.execute(
            "INSERT INTO bookings (code, user_id, club_session_id, guest_count, slots, unit_price, amount,"
            " payment_method, status, payment_status, payment_deadline, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending_payment', 'unpaid', %s, %s, %s) RETURNING id",
            (code, user[0], data["session_id"], slots - 1, slots, session[0], slots * session[0],
             data["payment_method"], now + timedelta(minutes=30), now, now),
        )  # fmt: skip
        booking_id = cur.fetchone()[0]
    return jsonify(id=booking_id, code=code, status="pending_payment"), 201
