"""A real localstripe and the test app served over real HTTP, so Stripe's signed webhooks reach it.

localstripe runs once per test session (`python -m loafy.dev.localstripe_launcher`, loopback only,
store in memory) and is wiped between tests. The app under test is served by a werkzeug server in a
thread; a small dispatcher forwards to the current test's app and can hold webhook deliveries (answer
503 and keep the signed body) so a test can deliver them late, twice or out of order.
"""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
import stripe
from werkzeug.serving import make_server

SECRET_KEY = "sk_test_loafy_tests"
PUBLISHABLE_KEY = "pk_test_loafy_tests"
WEBHOOK_SECRET = "whsec_loafy_tests"
WEBHOOK_PATH = "/api/webhooks/stripe"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll until `predicate()` is truthy (returns its value); fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def localstripe_url():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loafy.dev.localstripe_launcher", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{url}/js.stripe.com/v3/", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("localstripe did not start")
            time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


class Dispatcher:
    """WSGI app forwarding to the current test's Flask app; can hold webhook deliveries."""

    def __init__(self):
        self.app = None
        self.hold = False
        self.held = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self.hold and environ.get("PATH_INFO") == WEBHOOK_PATH:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            with self.lock:
                self.held.append((body, environ.get("HTTP_STRIPE_SIGNATURE")))
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"held by the test"]
        app = self.app
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no test app"]
        return app(environ, start_response)


@pytest.fixture(scope="session")
def served(localstripe_url):
    """(dispatcher, base URL): one HTTP server for the session, registered as localstripe's webhook."""
    dispatcher = Dispatcher()
    server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    response = requests.post(
        f"{localstripe_url}/_config/webhooks/loafy-test",
        data={"url": base + WEBHOOK_PATH, "secret": WEBHOOK_SECRET},
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
        timeout=5,
    )
    response.raise_for_status()
    yield dispatcher, base
    server.shutdown()
    thread.join(timeout=5)


def stripe_settings(api_base):
    return {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": api_base,
    }


@pytest.fixture
def stripe_live(app, served, localstripe_url):
    """This test's app behind the HTTP server, on an empty localstripe. Yields a helper object."""
    dispatcher, base = served
    requests.delete(f"{localstripe_url}/_config/data", timeout=5).raise_for_status()
    dispatcher.held.clear()
    dispatcher.hold = False
    dispatcher.app = app
    yield StripeHelper(localstripe_url, base, dispatcher)
    dispatcher.hold = False
    dispatcher.app = None


class StripeHelper:
    """What a test does on Stripe's side: play the card step, sign and deliver events."""

    def __init__(self, api_base, app_base, dispatcher):
        self.api_base = api_base
        self.app_base = app_base
        self.dispatcher = dispatcher
        self.client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": api_base})

    # The card step, as Stripe.js would do it (localstripe cannot confirm with a payment method).
    def pay(self, intent_id, payment_method="pm_card_visa"):
        self.client.v1.payment_intents.update(intent_id, params={"payment_method": payment_method})
        return self.client.v1.payment_intents.confirm(intent_id)

    def decline(self, intent_id):
        with pytest.raises(stripe.CardError):
            self.pay(intent_id, "pm_card_chargeCustomerFail")

    def intent(self, intent_id):
        return self.client.v1.payment_intents.retrieve(intent_id).to_dict()

    def charge_id(self, intent_id):
        latest = self.intent(intent_id)["latest_charge"]
        return latest["id"] if isinstance(latest, dict) else latest

    def charge(self, intent_id):
        return self.client.v1.charges.retrieve(self.charge_id(intent_id)).to_dict()

    def events(self, type=None):
        listing = self.client.v1.events.list(params={"limit": 100})
        return [e.to_dict() for e in listing.data if type is None or e.type == type]

    def all_intents(self):
        return [pi.to_dict() for pi in self.client.v1.payment_intents.list(params={"limit": 100}).data]

    # Webhooks
    def sign(self, body, secret=WEBHOOK_SECRET, timestamp=None):
        timestamp = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    def deliver(self, body, signature=None, secret=WEBHOOK_SECRET):
        """POST a webhook over real HTTP; signs `body` unless a signature is given."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        headers["Stripe-Signature"] = signature or self.sign(body, secret)
        return requests.post(self.app_base + WEBHOOK_PATH, data=body, headers=headers, timeout=30)

    def event(self, event_id, type, obj):
        return {
            "id": event_id,
            "object": "event",
            "type": type,
            "created": int(time.time()),
            "api_version": "2017-08-15",
            "data": {"object": obj},
        }

    def wait_held(self, count=1):
        """Wait for `count` deliveries to be held, then let later ones through again."""
        wait_for(lambda: len(self.dispatcher.held) >= count, message=f"{count} held webhook(s)")
        self.dispatcher.hold = False
        return list(self.dispatcher.held)
