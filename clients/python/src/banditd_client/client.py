"""The HTTP client. Standard library only (``urllib``): a pipeline installs nothing else.

Retries are safe where the server makes them safe: reward events are idempotent by event id
(every retry resends the same ids), reads change nothing, and an assign request is retried
only when it cannot have been applied (a 503, or a refused connection).
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .errors import ApiError, Unavailable
from .types import AssignError, Assignment, Assignments, Event, EventsResult, Rejection, new_event_id

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: The server's limits for one ``POST /v1/events`` (README, "HTTP API").
MAX_EVENTS_PER_REQUEST = 10_000
MAX_EVENTS_BODY_BYTES = 8 * 1024 * 1024
#: Statuses after which the same request may succeed.
RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
EXPORTS = ("assignments", "events", "stats")

EventLike = Union[Event, Mapping[str, Any]]


class Client:
    """A banditd server at ``url``.

    ``key`` is sent on every request (the admin key opens every route; an assign key the
    assign routes). ``events_key``, when given, is sent instead on ``send_events`` and
    ``export``. ``timeout`` bounds each try in seconds; a failed try is retried up to
    ``retries`` times, after ``backoff * 2**n`` seconds (at most ``max_backoff``, jittered
    to between half and all of it, and never sooner than the server's ``Retry-After``).
    """

    def __init__(
        self,
        url: str,
        key: Optional[str] = None,
        events_key: Optional[str] = None,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.key = key
        self.events_key = events_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        #: Replaceable in tests.
        self._sleep = time.sleep
        self._random = random.random

    # ---- assignments ----------------------------------------------------------------------

    def assign(
        self, unit: str, experiments: Optional[Sequence[str]] = None, count: bool = True
    ) -> Assignments:
        """Which variant ``unit`` sees in each listed experiment (every served one when
        ``experiments`` is ``None``). ``count=False`` peeks without counting an exposure."""
        body: Dict[str, Any] = {"unit": unit}
        if experiments is not None:
            if isinstance(experiments, str):
                raise TypeError("experiments must be a list of ids, not a string")
            body["experiments"] = list(experiments)
        if not count:
            body["count"] = False
        answer = self._json("POST", "/v1/assign", body=body, idempotent=False)
        return Assignments(
            unit=answer["unit"],
            assignments=[Assignment.from_json(a) for a in answer["assignments"]],
            errors=[AssignError.from_json(e) for e in answer.get("errors", [])],
        )

    # ---- events ---------------------------------------------------------------------------

    def send_events(
        self,
        events: Iterable[EventLike],
        batch_size: int = 1000,
        max_batch_bytes: int = 4 * 1024 * 1024,
    ) -> EventsResult:
        """Posts reward events in batches (at most ``batch_size`` events and
        ``max_batch_bytes`` of JSON each, within the server's limits) and adds up the
        answers. An event without an id (a dict) gets one here, before the first try, so the
        retries of this call are idempotent; keep ids (or ``Event`` objects) to make your own
        re-runs idempotent too. Rejected events do not raise: they are in the result's
        ``rejections``, with their index in ``events`` (``result.raise_for_rejections()``
        raises ``EventsRejected`` when there are any)."""
        if not 1 <= batch_size <= MAX_EVENTS_PER_REQUEST:
            raise ValueError(f"batch_size must be 1 to {MAX_EVENTS_PER_REQUEST}")
        max_batch_bytes = min(max_batch_bytes, MAX_EVENTS_BODY_BYTES)
        result = EventsResult()
        for offset, encoded in _batches(
            (_event_json(e) for e in events), batch_size, max_batch_bytes
        ):
            report = self._json(
                "POST",
                "/v1/events",
                raw=b"[" + b",".join(encoded) + b"]",
                content_type="application/json",
                key=self.events_key or self.key,
                idempotent=True,
            )
            _add_report(result, report, offset)
        return result

    # ---- analysts -------------------------------------------------------------------------

    def experiment(
        self, experiment_id: str, revision: Optional[int] = None, level: Optional[float] = None
    ) -> Dict[str, Any]:
        """``GET /v1/experiments/{id}``: per-arm numbers, the stopping decision, the SRM
        check, as the API gives them."""
        query = _query(revision=revision, level=level)
        report: Dict[str, Any] = self._json(
            "GET", f"/v1/experiments/{_quote(experiment_id)}{query}"
        )
        return report

    def experiments(self) -> List[Dict[str, Any]]:
        """``GET /v1/experiments``: a summary of every loaded experiment."""
        answer = self._json("GET", "/v1/experiments")
        summaries: List[Dict[str, Any]] = answer["experiments"]
        return summaries

    def export(
        self,
        experiment_id: str,
        what: str = "assignments",
        revision: Optional[int] = None,
        level: Optional[float] = None,
        as_frame: Optional[bool] = None,
    ) -> Union["pandas.DataFrame", List[Dict[str, str]]]:
        """An export (``what``: ``assignments``, ``events`` or ``stats``) as a pandas
        DataFrame when pandas is installed (``as_frame=None``) or asked for
        (``as_frame=True``), else as a list of dicts of the CSV's text fields.

        Numbers are parsed with pandas' round-trip float parser, so every value equals the
        server's exactly."""
        if what not in EXPORTS:
            raise ValueError(f"what must be one of {', '.join(EXPORTS)}, got {what!r}")
        query = _query(what=what, format="csv", revision=revision, level=level)
        _, body = self._request(
            "GET",
            f"/v1/experiments/{_quote(experiment_id)}/export{query}",
            key=self.events_key or self.key,
        )
        pandas = _pandas(as_frame)
        if pandas is not None:
            return pandas.read_csv(io.BytesIO(body), **_exact_floats(pandas))
        return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))

    # ---- transport ------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: Optional[bytes] = None,
        content_type: Optional[str] = None,
        key: Optional[str] = None,
        idempotent: bool = True,
    ) -> Any:
        if body is not None:
            raw = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        _, answer = self._request(
            method,
            path,
            raw=raw,
            content_type=content_type,
            key=key if key is not None else self.key,
            idempotent=idempotent,
        )
        return json.loads(answer)

    def _delay(self, attempt: int, retry_after: float) -> float:
        step = min(self.max_backoff, self.backoff * float(2**attempt))
        return max(retry_after, step * (0.5 + self._random() / 2.0))

    def _request(
        self,
        method: str,
        path: str,
        raw: Optional[bytes] = None,
        content_type: Optional[str] = None,
        key: Optional[str] = None,
        idempotent: bool = True,
    ) -> Tuple[int, bytes]:
        """One request, retried as the class says. Returns the status and the body."""
        headers = {"accept": "application/json, text/csv, application/problem+json"}
        if content_type:
            headers["content-type"] = content_type
        if key:
            headers["authorization"] = f"Bearer {key}"
        attempt = 0
        while True:
            request = urllib.request.Request(
                self.url + path, data=raw, method=method, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                status = error.code
                problem = _problem(error)
                # A 503 applied nothing (the server says so for every route), so even a
                # non-idempotent request may be sent again.
                retriable = status in RETRIABLE_STATUSES and (idempotent or status == 503)
                if retriable and attempt < self.retries:
                    self._sleep(self._delay(attempt, _retry_after(error.headers)))
                    attempt += 1
                    continue
                if status == 503:
                    raise Unavailable(
                        f"{method} {path}: HTTP 503 after {attempt + 1} tries: "
                        f"{problem.get('detail', '')}",
                        status=503,
                    ) from error
                raise ApiError(status, problem) from error
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                # A refused connection never reached the server; anything later might have.
                retriable = idempotent or isinstance(reason, ConnectionRefusedError)
                if retriable and attempt < self.retries:
                    self._sleep(self._delay(attempt, 0.0))
                    attempt += 1
                    continue
                raise Unavailable(
                    f"{method} {path}: {reason} (after {attempt + 1} tries)"
                ) from error


def _event_json(event: EventLike) -> bytes:
    if isinstance(event, Event):
        body = event.to_json()
    elif isinstance(event, Mapping):
        body = dict(event)
        if "experiment" not in body:
            raise ValueError(f"an event needs its experiment: {body!r}")
        body.setdefault("id", new_event_id())
    else:
        raise TypeError(f"an event is an Event or a mapping, got {type(event).__name__}")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _batches(
    encoded: Iterable[bytes], batch_size: int, max_bytes: int
) -> Iterator[Tuple[int, List[bytes]]]:
    """Groups encoded events into batches, each with the index of its first event. Reads the
    events lazily (a generator of a million events is never held whole); each event is
    encoded, and given its id, before its batch's first try."""
    offset = 0
    batch: List[bytes] = []
    size = 0
    for event in encoded:
        index = offset + len(batch)
        if len(event) + 2 > max_bytes:
            raise ValueError(f"event {index} alone is larger than {max_bytes} bytes")
        if batch and (len(batch) >= batch_size or size + len(event) + 1 > max_bytes):
            yield offset, batch
            offset += len(batch)
            batch, size = [], 0
        size += len(event) + (1 if batch else 2)
        batch.append(event)
    if batch:
        yield offset, batch


def _add_report(result: EventsResult, report: Mapping[str, Any], offset: int) -> None:
    result.batches += 1
    for name in ("received", "applied", "duplicate", "already_rewarded", "rejected"):
        setattr(result, name, getattr(result, name) + int(report.get(name, 0)))
    for reason, n in report.get("rejected_by_reason", {}).items():
        result.rejected_by_reason[reason] = result.rejected_by_reason.get(reason, 0) + int(n)
    for r in report.get("rejections", []):
        result.rejections.append(
            Rejection(
                index=offset + int(r["index"]),
                id=r.get("id"),
                reason=r["reason"],
                detail=r.get("detail", ""),
            )
        )
    result.rejections_omitted += int(report.get("rejections_omitted", 0))


def _problem(error: urllib.error.HTTPError) -> Dict[str, Any]:
    try:
        body = json.loads(error.read() or b"{}")
        if isinstance(body, dict):
            return body
    except (ValueError, OSError):
        pass
    return {"title": error.reason, "detail": str(error.reason)}


def _retry_after(headers: Any) -> float:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def _query(**params: Any) -> str:
    present = {k: v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(present) if present else ""


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _exact_floats(pandas: Any) -> Dict[str, str]:
    """Before pandas 3.1 the default float parser could be one unit in the last place off;
    3.1 parses every float exactly and deprecates the choice."""
    try:
        major, minor = (int(part) for part in pandas.__version__.split(".")[:2])
    except ValueError:
        return {}
    return {} if (major, minor) >= (3, 1) else {"float_precision": "round_trip"}


def _pandas(as_frame: Optional[bool]) -> Any:
    if as_frame is False:
        return None
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise ImportError("as_frame=True needs pandas: pip install 'banditd-client[pandas]'")
        return None
    return pandas
