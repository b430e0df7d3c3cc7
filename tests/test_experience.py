"""Issue 24's small things a new user hit: the favicon, one spots count, the dev sign-in page."""


def test_favicon_is_served_for_every_page(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    icon = client.get(answer.headers["Location"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)


def test_an_open_sessions_spots_are_said_once(client, factory):
    club_session = factory.club_session(max_slots=24)
    page = client.get(f"/sessions/{club_session.id}", headers={"Accept-Language": "vi"}).get_data(
        as_text=True
    )
    assert "Còn 24 chỗ" in page
    assert "Còn trống" not in page and "24/24" not in page


def test_the_dev_sign_in_page_exists_only_in_development(client):
    assert client.get("/auth/login/dev").status_code == 404


def test_the_guest_choice_offers_only_what_fits(client, factory):
    from tests.helpers import login

    club_session = factory.club_session(max_slots=10, available_slots=3)
    login(client, factory.user())
    page = client.get(f"/sessions/{club_session.id}", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "Me + 2 guests" in page and "Me + 3 guests" not in page  # 3 spots: me and two guests
