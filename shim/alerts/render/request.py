"""The request an HTTP channel's renderer produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class HttpRequest:
    """A JSON POST: where to, the body's bytes (exactly what is sent, and signed) and headers."""

    url: str = field(repr=False)  # may hold the channel's secret
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, url: str, document: Any, headers: dict[str, str] | None = None
             ) -> HttpRequest:
        return cls(url, orjson.dumps(document),
                   {"Content-Type": "application/json", **(headers or {})})
