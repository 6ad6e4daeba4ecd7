"""The exceptions a request can end in, each carrying its HTTP status and a stable code.

Endpoints and the pure core raise these; one handler in the app renders them all into the same JSON
shape (``{"detail": ..., "code": ...}``, plus optional extras), so no route builds errors by hand.
"""

from __future__ import annotations

from typing import Any


class ShimError(Exception):
    """Base of every error that is answered to a client."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


class BadRequest(ShimError):
    status = 400
    code = "bad_request"


class InvalidEnvelope(BadRequest):
    code = "invalid_envelope"


class InvalidEvent(BadRequest):
    code = "invalid_event"


class UnsupportedEncoding(BadRequest):
    code = "unsupported_encoding"


class BadCompression(BadRequest):
    code = "bad_compression"


class Unauthorized(ShimError):
    status = 401
    code = "unauthorized"


class Forbidden(ShimError):
    status = 403
    code = "forbidden"


class NotFound(ShimError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ShimError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ShimError):
    """The body did not arrive in time (a client trickling bytes holds a connection open)."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(ShimError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(ShimError):
    """The server cannot take the event durably right now; the client should retry later."""

    status = 503
    code = "unavailable"

    def __init__(self, detail: str, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Retry-After"] = str(retry_after)


class ItemsRejected(ShimError):
    """Some items of an envelope could not be used; the good ones were stored.

    The status is that of the first problem (400 or 413), so the SDK records the loss; the body
    lists every skipped item and carries the event ``id`` when an event was stored.
    """

    code = "items_rejected"

    def __init__(self, detail: str, status: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.status = status
