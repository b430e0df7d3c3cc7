"""The OpenAPI description matches the app's /api routes (both ways, methods too) and is served."""

import re

import pytest

from public.openapi import PAYMENTS_OPERATIONS, build_document

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
    documented = documented_operations(build_document())
    undocumented = sorted(set(served) - documented)
    assert not undocumented, f"add these to public/openapi.py: {undocumented}"
    # The payment routes belong to public/payments.py: documented even before it serves them.
    phantom = sorted(documented - set(served) - PAYMENTS_OPERATIONS)
    assert not phantom, f"documented but not served: {phantom}"
    pending = sorted(PAYMENTS_OPERATIONS - set(served))
    if pending:
        pytest.skip(f"documented, not yet served by public/payments.py: {pending}")


def test_path_parameters_match_the_rules(app):
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
    assert body == build_document()
    import schemathesis

    schema = schemathesis.openapi.from_dict(body)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(documented_operations(body))


def test_every_operation_documents_its_errors_with_the_error_shape():
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
    for path, ops in build_document()["paths"].items():
        assert path in page
        for method in ops:
            assert f"<code>{method.upper()}</code>" in page
    assert "organizer, admin" in page
