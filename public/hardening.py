"""Security headers, the real client address behind a proxy, and a trivial endpoint.

CSP: scripts only from this site, Stripe.js (and localstripe's stand-in in dev/tests) and inline
scripts carrying this response's nonce (`{{ csp_nonce() }}` in templates). The staff area keeps
Flask-Admin's own inline scripts, so it gets 'unsafe-inline' for scripts — it is staff-only.
"""

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

bp = Blueprint("ops", __name__)

STRIPE_ORIGINS = ("https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com")


@bp.get("/ping")
def ping():
    """Answers without touching the database or Redis (the benchmarks' baseline)."""
    return "ok", 200, {"Content-Type": "text/plain"}


def csp_nonce():
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _origin(url):
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def init_app(app):
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        # Behind N proxies (Heroku's router is 1): take the client address from X-Forwarded-For,
        # so per-IP rate limits count phones, not the router.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    stripe = " ".join(filter(None, (*STRIPE_ORIGINS, _origin(app.config.get("STRIPE_API_BASE")))))
    hsts = app.config["LOAFY_ENV"] == "production"
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.register_blueprint(bp)

    @app.after_request
    def security_headers(response):
        if request.path.startswith("/admin"):
            scripts = "'self' 'unsafe-inline'"
        else:
            scripts = f"'self' 'nonce-{csp_nonce()}' {stripe}"
        response.headers.setdefault(
            "Content-Security-Policy",
            "; ".join(
                [
                    "default-src 'self'",
                    f"script-src {scripts}",
                    "style-src 'self' 'unsafe-inline'",
                    "img-src 'self' data: https:",
                    f"frame-src 'self' {stripe}",
                    f"connect-src 'self' {stripe}",
                    "frame-ancestors 'none'",
                    "base-uri 'self'",
                    "form-action 'self' https:",
                    "object-src 'none'",
                ]
            ),
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
