"""One exception tree. Every error carries an HTTP status and a stable code.

Responses follow OpenAI's error shape::

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}
"""

from __future__ import annotations

from typing import Any


class AerodromeError(Exception):
    """Base of every error the platform raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(AerodromeError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class Unauthorized(AerodromeError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class Forbidden(AerodromeError):
    status = 403
    code = "permission_denied"
    type = "permission_error"


class NotFound(AerodromeError):
    status = 404
    code = "not_found"
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(AerodromeError):
    status = 409
    code = "conflict"
    type = "invalid_request_error"


class PayloadTooLarge(AerodromeError):
    status = 413
    code = "payload_too_large"
    type = "invalid_request_error"


class UnprocessableInput(AerodromeError):
    status = 422
    code = "invalid_input"
    type = "invalid_request_error"


class TooManyRequests(AerodromeError):
    status = 429
    code = "rate_limited"
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class BudgetExceeded(TooManyRequests):
    code = "budget_exceeded"
    type = "insufficient_quota"


class UpstreamError(AerodromeError):
    """The provider failed: 5xx, connection reset, malformed response.

    ``retryable`` tells the router whether another attempt (or the next deployment)
    may succeed; ``upstream_status`` is the provider's HTTP status when it sent one.
    """

    status = 502
    code = "upstream_error"
    type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = True,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.upstream_status = upstream_status


class UpstreamRejected(UpstreamError):
    """The provider refused the request as invalid (4xx): the caller's fault, not retried."""

    status = 400
    code = "upstream_rejected"
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, retryable=retryable, upstream_status=upstream_status)


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ServiceUnavailable(AerodromeError):
    status = 503
    code = "service_unavailable"
    type = "api_error"


class ConfigError(AerodromeError):
    """The platform configuration is invalid; raised at load time, never per request."""

    status = 500
    code = "config_error"


class SchemaOutOfDate(AerodromeError):
    """The database schema is older than this code; the server refuses to start."""

    status = 503
    code = "schema_out_of_date"


__all__ = [
    "AerodromeError",
    "BadRequest",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidJSON",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "SchemaOutOfDate",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableInput",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
]
