"""What the banditd API answers, as typed values (the README's "HTTP API" section)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union


@dataclass(frozen=True)
class Assignment:
    """One experiment's answer to ``assign``."""

    experiment: str
    variant: str
    payload: Any
    #: Pass back with reward events; ``None`` for peeks, paused experiments, degraded answers.
    token: Optional[str]
    propensity: float
    counted: bool
    degraded: bool
    #: The unit keeps this variant on later calls (``assignment: sticky``).
    sticky: bool
    #: Unix ms when the token's reward window closes; ``None`` exactly when ``token`` is.
    reward_until_ms: Optional[int]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Assignment":
        return cls(
            experiment=value["experiment"],
            variant=value["variant"],
            payload=value.get("payload"),
            token=value.get("token"),
            propensity=float(value["propensity"]),
            counted=bool(value["counted"]),
            degraded=bool(value["degraded"]),
            sticky=bool(value.get("sticky", False)),
            reward_until_ms=value.get("reward_until_ms"),
        )


@dataclass(frozen=True)
class Fallback:
    """What to render for an experiment that could not be assigned."""

    variant: str
    payload: Any


@dataclass(frozen=True)
class AssignError:
    """A listed experiment the server could not assign (unknown, draft, not live here)."""

    experiment: str
    #: ``unknown_experiment``, ``experiment_not_served`` or ``not_in_environment``.
    error: str
    detail: str
    #: The experiment's default variant, or ``None`` when the server knows nothing of it.
    fallback: Optional[Fallback]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "AssignError":
        fallback = value.get("fallback")
        return cls(
            experiment=value["experiment"],
            error=value["error"],
            detail=value["detail"],
            fallback=Fallback(fallback["variant"], fallback.get("payload"))
            if fallback
            else None,
        )


@dataclass(frozen=True)
class Assignments:
    """The answer of ``assign``: assignments in the order listed, and the refusals."""

    unit: str
    assignments: List[Assignment]
    errors: List[AssignError]

    def __getitem__(self, experiment: str) -> Assignment:
        for assignment in self.assignments:
            if assignment.experiment == experiment:
                return assignment
        raise KeyError(experiment)

    def get(self, experiment: str) -> Optional[Assignment]:
        try:
            return self[experiment]
        except KeyError:
            return None


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Event:
    """A reward event. Its ``id`` is made once, when the event is made, so sending the same
    ``Event`` again (a retry, a re-run of a pipeline step that kept it) is applied once."""

    experiment: str
    #: Sticky experiments: the unit whose assignment converted.
    unit: Optional[str] = None
    #: The token from ``assign``; required for per-request experiments.
    token: Optional[str] = None
    #: In [0, 1]; the server counts 1 when absent.
    reward: Optional[float] = None
    #: One of the experiment's ``guardrails:`` metrics (refunds, errors); ``None``: the
    #: primary reward.
    metric: Optional[str] = None
    #: Unix ms or an RFC 3339 string.
    timestamp: Union[int, str, None] = None
    id: str = field(default_factory=new_event_id)

    def to_json(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"id": self.id, "experiment": self.experiment}
        for name in ("unit", "token", "metric", "reward", "timestamp"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True)
class Rejection:
    """One event the server refused, and why (``reason`` is a stable code such as
    ``outside_window``, ``unit_not_assigned``, ``bad_token``)."""

    #: Position in the events given to ``send_events`` (0-based), across batches.
    index: int
    id: Optional[str]
    reason: str
    detail: str


@dataclass
class EventsResult:
    """The counts of every batch of one ``send_events`` call, added up."""

    received: int = 0
    applied: int = 0
    #: Ids applied before: retries, acknowledged and not applied again.
    duplicate: int = 0
    #: Another event id already converted the same assignment: harmless.
    already_rewarded: int = 0
    #: Events that are wrong; see ``rejections``.
    rejected: int = 0
    rejected_by_reason: Dict[str, int] = field(default_factory=dict)
    #: The rejections the server listed (at most 100 per batch), in order.
    rejections: List[Rejection] = field(default_factory=list)
    #: Rejections counted but not listed by the server.
    rejections_omitted: int = 0
    batches: int = 0

    @property
    def all_rejected(self) -> bool:
        return self.received > 0 and self.rejected == self.received

    def raise_for_rejections(self) -> "EventsResult":
        """Raises ``EventsRejected`` when any event was rejected; returns ``self`` otherwise."""
        if self.rejected:
            from .errors import EventsRejected

            raise EventsRejected(self)
        return self
