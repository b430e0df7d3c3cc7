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

    def policy(scripts):
        return "; ".join(
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
        )

    # Built once: every answer carries these, and werkzeug's header lookups are linear scans.
    admin_policy = policy("'self' 'unsafe-inline'")
    page_policy = policy(f"'self' 'nonce-{{nonce}}' {stripe}")
    fixed = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if hsts:
        fixed.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))

    @app.after_request
    def security_headers(response):
        headers = response.headers
        present = {key.lower() for key, _value in headers}  # a view's own header wins
        if "content-security-policy" not in present:
            admin = request.path.startswith("/admin")
            headers["Content-Security-Policy"] = (
                admin_policy if admin else page_policy.replace("{nonce}", csp_nonce())
            )
        for key, value in fixed:
            if key.lower() not in present:
                headers.add(key, value)
        return response
