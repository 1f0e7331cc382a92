"""Python client for banditd (see the README's "Analyst guide: from idea to decision").

    from banditd_client import Client, Event
    client = Client("http://127.0.0.1:8080", key=None)
    client.assign("alice", ["homepage-headline"])["homepage-headline"].variant
    client.send_events([Event("homepage-headline", unit="alice")]).raise_for_rejections()
    client.export("homepage-headline", "assignments")   # a DataFrame with pandas installed
"""

from .client import MAX_EVENTS_BODY_BYTES, MAX_EVENTS_PER_REQUEST, Client
from .errors import ApiError, BanditdError, EventsRejected, Unavailable
from .types import (
    AssignError,
    Assignment,
    Assignments,
    Event,
    EventsResult,
    Fallback,
    Rejection,
)

__all__ = [
    "ApiError",
    "AssignError",
    "Assignment",
    "Assignments",
    "BanditdError",
    "Client",
    "Event",
    "EventsRejected",
    "EventsResult",
    "Fallback",
    "MAX_EVENTS_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "Rejection",
    "Unavailable",
]
