"""Exceptions of the client. Every one is a ``BanditdError``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from .types import EventsResult


class BanditdError(Exception):
    """Anything that went wrong talking to banditd."""


class ApiError(BanditdError):
    """The server refused the request (a 4xx, or a 5xx after the retries); ``problem`` is its
    RFC 7807 body, whose ``detail`` says what was wrong."""

    def __init__(self, status: int, problem: Dict[str, Any]):
        self.status = status
        self.problem = problem
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        super().__init__(f"HTTP {status}: {self.detail or self.title}")


class Unavailable(BanditdError):
    """The server could not be reached, or answered 503, on every try."""

    def __init__(self, message: str, status: Optional[int] = None):
        self.status = status
        super().__init__(message)


class EventsRejected(BanditdError):
    """Some events were rejected (``EventsResult.raise_for_rejections``); ``result`` has the
    counts and each listed ``Rejection``."""

    def __init__(self, result: "EventsResult"):
        self.result = result
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(result.rejected_by_reason.items()))
        super().__init__(f"{result.rejected} of {result.received} events rejected ({reasons})")
