"""One place mapping errors to HTTP: JSON for /api, friendly pages elsewhere. Never a stack trace."""

import logging

from flask import jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from peewee import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from loafy.errors import LoafyError
from public.limits import RateLimited

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please sign in first.",
    403: "You are not allowed to see this page.",
    404: "We could not find that page.",
    405: "That action is not allowed here.",
    409: "That cannot be done right now.",
    413: "The request is too large.",
    422: "Some of the details are not valid.",
    429: "Too many requests. Please wait a moment and try again.",
    500: "Something went wrong on our side. Nothing was changed; please try again.",
    503: "Loafy is temporarily unavailable. Please try again in a minute.",
}
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def wants_json():
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status, code, message, field=None):
    if wants_json():
        body = {"error": {"code": code, "message": message}}
        if field:
            body["error"]["field"] = field
        return jsonify(body), status
    return render_template("public/error.html", status=status, message=message, code=code), status


def init_app(app):
    @app.errorhandler(LoafyError)
    def loafy_error(exc):
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return error_response(400, "csrf", "Your form expired or was sent from elsewhere. Please try again.")

    @app.errorhandler(RateLimited)
    def rate_limited(exc):
        response, status = error_response(429, CODES[429], MESSAGES[429])
        response = make_response(response, status)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc):
        status = exc.code or 500
        message = MESSAGES.get(status, exc.description)
        response = make_response(*error_response(status, CODES.get(status, "error"), message))
        allowed = getattr(exc, "valid_methods", None)  # a 405 must say what is allowed (RFC 9110)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_down(exc):
        log.error(
            "database unavailable: %s",
            str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
        )
        return error_response(503, "unavailable", MESSAGES[503])

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "server_error", MESSAGES[500])
