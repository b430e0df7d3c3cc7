"""CSV downloads stream after the view returned: on a connection of their own, on both databases."""

import csv
import io

import pytest

from admin import exports
from loafy.booking import bookings
from loafy.db import db
from tests.helpers import english, login


@pytest.fixture(autouse=True)
def _english_staff_area(client):
    """These tests read the staff area's English words (test_admin_vietnamese.py reads its Vietnamese)."""
    english(client)


@pytest.fixture
def staff_client(client, factory):
    return login(client, factory.user(role="admin"))


def served_like_a_server(client, path):
    """A request from a thread holding no connection (as a server's worker): the request opens
    one, its teardown closes it, and the body is read to the end afterwards."""
    db.close()
    response = client.get(path)
    body = response.get_data()  # the whole stream
    return response, list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.fixture
def booked(factory, now, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)  # several chunks from a few rows
    club_session = factory.club_session(title="Cầu lông", max_slots=10)
    made = [bookings.book_session(factory.user(), club_session, 0, "bank_transfer", now) for _ in range(5)]
    return club_session, made


def test_the_bookings_export_streams_every_row(staff_client, booked):
    _club_session, made = booked
    response, rows = served_like_a_server(staff_client, "/admin/bookings/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert rows[0] == exports.BOOKING_HEADER
    assert sorted(row[0] for row in rows[1:]) == sorted(b.code for b in made)
    assert {row[3] for row in rows[1:]} == {"Cầu lông"}
    assert db.is_closed()  # the stream gave its connection back


def test_the_roster_streams_every_row(staff_client, booked):
    club_session, made = booked
    response, rows = served_like_a_server(staff_client, f"/admin/sessions/{club_session.id}/roster.csv")
    assert response.status_code == 200
    assert rows[0] == exports.ROSTER_HEADER
    assert sorted(row[0] for row in rows[1:]) == sorted(b.code for b in made)
    assert db.is_closed()
