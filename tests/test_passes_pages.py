"""The passes pages: what the club sells, buying, paying by transfer, the profile's passes and the
booking form's "use my pack" in Vietnamese and English."""

import re

from loafy.models import Booking, Pass
from tests.helpers import login, reload

EN = {"Accept-Language": "en"}


def csrf(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_passes_page_sells_and_a_bought_pass_waits_for_its_transfer(client, factory, now):
    product = factory.product("pack", name="Gói 10 buổi", price=900_000, credits=10, validity_days=90)
    anonymous = client.get("/passes").get_data(as_text=True)
    assert "Gói 10 buổi" in anonymous and "900.000" in anonymous and "Đăng nhập để mua" in anonymous
    player = factory.user()
    login(client, player)
    response = client.post(
        "/passes/buy",
        data={
            "product_id": product.id,
            "payment_method": "bank_transfer",
            "csrf_token": csrf(client, "/passes"),
        },
    )
    club_pass = Pass.get(Pass.user == player.id)
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/passes/{club_pass.id}/pay"
    )
    pay = client.get(f"/passes/{club_pass.id}/pay").get_data(as_text=True)
    assert club_pass.code in pay and "<svg" in pay and "Thẻ được kích hoạt khi tiền chuyển khoản đến." in pay
    english = client.get("/passes", headers=EN).get_data(as_text=True)
    assert club_pass.code in english and "Awaiting payment" in english
    assert client.get(f"/passes/{club_pass.id}/status.json").get_json() == {"status": "pending_payment"}


def test_a_pack_holder_books_with_it_from_the_session_page(client, factory, now):
    player = factory.user()
    pack = factory.paid_pass(player, "pack", credits=3)
    club_session = factory.club_session()
    login(client, player)
    page = client.get(f"/sessions/{club_session.id}").get_data(as_text=True)
    assert "Dùng gói của tôi (còn 3 buổi)" in page
    assert "Use my pack (3 credits left)" in client.get(f"/sessions/{club_session.id}", headers=EN).get_data(
        as_text=True
    )
    token = csrf(client, f"/sessions/{club_session.id}")
    response = client.post(
        f"/sessions/{club_session.id}/book",
        data={"guest_count": "1", "payment_method": "pass", "csrf_token": token},
    )
    assert response.status_code == 302
    booking = Booking.get(Booking.user == player.id)
    assert (booking.status, booking.payment_status, booking.club_pass_id) == ("confirmed", "paid", pack.id)
    profile = client.get("/profile").get_data(as_text=True)
    assert "Còn 1 buổi" in profile and pack.code in profile
    other = factory.club_session()
    token = csrf(client, f"/sessions/{other.id}")
    refused = client.post(
        f"/sessions/{other.id}/book", data={"guest_count": "2", "payment_method": "pass", "csrf_token": token}
    )
    assert refused.status_code == 409
    assert "Bạn không có gói nào còn đủ buổi" in refused.get_data(as_text=True)
    assert reload(other).available_slots == other.max_slots
