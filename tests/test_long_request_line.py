"""Through gunicorn (the Procfile's web process): a 5,000-digit query is the app's JSON answer,
not gunicorn's HTML 414."""

import requests

from tests.fault_fixtures import production_env, start_gunicorn, stop_gunicorn, wait_until
from tests.stripe_fixtures import free_port


def test_a_5000_digit_per_page_is_a_json_422(database_url, redis_url, tmp_path):
    port = free_port()
    web = start_gunicorn(production_env(database_url, redis_url, port, tmp_path), port, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base + "/ping"), 60, "gunicorn to answer /ping")
        response = requests.get(base + "/api/sessions?per_page=" + "9" * 5000, timeout=20)
        assert response.status_code == 422, response.text[:300]
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["field"] == "per_page"
    finally:
        stop_gunicorn(web)


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
