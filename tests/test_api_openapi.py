"""The OpenAPI description, derived from public/api_schemas.py, covers every /api route (both ways,
methods too), is served, and says what each operation answers."""

import re

import pytest

from public.api_schemas import build_document
from tests.test_api import bearer

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def app_operations(app):
    """{(openapi path, method)} for every /api rule of the app."""
    operations = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - IGNORED_METHODS:
            operations[(path, method.lower())] = rule.endpoint
    return operations


def documented_operations(document):
    return {(path, method) for path, ops in document["paths"].items() for method in ops}


def test_every_api_route_is_documented_and_back(app):
    served = app_operations(app)
    with app.test_request_context():
        documented = documented_operations(build_document())
    undocumented = sorted(set(served) - documented)
    assert not undocumented, f"declare these views with @endpoint (public/api_schemas.py): {undocumented}"
    assert documented == set(served)


def test_path_parameters_match_the_rules(app):
    with app.test_request_context():
        document = build_document()
    for (path, method), _endpoint in app_operations(app).items():
        names = set(re.findall(r"{([^}]+)}", path))
        params = document["paths"][path][method].get("parameters", [])
        assert names == {p["name"] for p in params if p["in"] == "path"}, (path, method)


def test_the_description_is_served_and_loads_as_openapi_3_1(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["openapi"] == "3.1.0"
    with client.application.test_request_context():
        assert body == build_document()
    import schemathesis

    schema = schemathesis.openapi.from_dict(body)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(documented_operations(body))


def test_every_operation_documents_its_errors_with_the_error_shape(app):
    with app.test_request_context():
        document = build_document()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op.get("x-loafy-who"), (path, method)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


@pytest.mark.parametrize("role", ["anonymous", "player"])
def test_the_docs_page_lists_every_operation(client, factory, role):
    from tests.helpers import login

    if role != "anonymous":
        login(client, factory.user())
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page), "no external JS"
    with client.application.test_request_context():
        document = build_document()
    for path, ops in document["paths"].items():
        assert path in page
        for method in ops:
            assert f"<code>{method.upper()}</code>" in page
    assert "organizer, admin" in page


def _walk(value):
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk(inner)


def test_the_document_uses_json_schema_words_only(app):
    """Bounds are `minimum`/`maximum` (pydantic's `ge`/`le` leak through when a validator comes
    first: then no client, and not Schemathesis, would know them); every $ref resolves."""
    with app.test_request_context():
        document = build_document()
    schemas = document["components"]["schemas"]
    for schema in _walk(document):
        assert not {"ge", "le", "gt", "lt"} & set(schema), schema
        ref = schema.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
    booking = schemas["NewBooking"]["properties"]["guest_count"]
    assert (booking["minimum"], booking["maximum"]) == (0, 3)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"max_slots": 0}, "max_slots", "max_slots must be at least 1."),
        ({"max_slots": "lots"}, "max_slots", "max_slots must be a whole number."),
        ({"price": 100_000_000}, "price", "price must be at most 99,999,999."),
        ({"title": "x" * 201}, "title", "title must be at most 200 characters."),
        ({"title": None}, "title", "title must be text."),
        ({"allow_pay_at_door": "yes"}, "allow_pay_at_door", "allow_pay_at_door must be true or false."),
        ({"status": "open"}, "status", "status must be one of: draft, published, completed."),
        ({"status": "cancelled"}, "status", "A session is cancelled with the cancel action (DELETE)"),
        ({"starts_at": "next Tuesday"}, "starts_at", "starts_at must be an ISO-8601 date and time."),
    ],
)
def test_a_refused_field_is_named_in_a_sentence(client, factory, body, field, message):
    club_session = factory.club_session()
    response = client.put(
        f"/api/sessions/{club_session.id}", json=body, headers=bearer(factory.user(role="admin"))
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["message"].startswith(message)


def test_a_missing_field_and_a_bad_query_are_named(client, factory):
    response = client.post("/api/bookings", json={"session_id": 1}, headers=bearer(factory.user()))
    assert response.get_json()["error"] == {
        "code": "invalid",
        "field": "payment_method",
        "message": "payment_method is required.",
    }
    error = client.get("/api/sessions?per_page=" + "9" * 5000).get_json()["error"]
    assert (error["field"], error["message"]) == ("per_page", "per_page must be a whole number.")
    assert client.get("/api/sessions?per_page=&status=").status_code == 200  # blank: not sent
