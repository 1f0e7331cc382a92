"""Retries, backoff and idempotency, against a scripted stand-in server: the failures a live
banditd cannot be made to produce on cue (503s, resets, refused connections)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from banditd_client import ApiError, Client, Event, Unavailable

REPORT = {
    "received": 2,
    "applied": 2,
    "duplicate": 0,
    "already_rewarded": 0,
    "rejected": 0,
    "all_rejected": False,
    "rejected_by_reason": {},
    "rejections": [],
    "rejections_omitted": 0,
}


class Script:
    """Answers, in order, `(status, headers, body)`; the last one repeats."""

    def __init__(self, answers: List[Tuple[int, Dict[str, str], Any]]):
        self.answers = answers
        self.requests: List[Dict[str, Any]] = []

    def next(self) -> Tuple[int, Dict[str, str], Any]:
        n = len(self.requests) - 1
        return self.answers[min(n, len(self.answers) - 1)]


@pytest.fixture
def stub() -> Iterator[Tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length) if length else b""
            script.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            status, headers, answer = script.next()
            data = json.dumps(answer).encode()
            self.send_response(status)
            kind = "application/json" if status < 400 else "application/problem+json"
            self.send_header("content-type", kind)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def quiet(client: Client) -> List[float]:
    """Records the client's sleeps instead of sleeping; jitter at the top of its range."""
    sleeps: List[float] = []
    client._sleep = sleeps.append
    client._random = lambda: 1.0
    return sleeps


def test_a_503_is_retried_with_the_same_event_ids_after_retry_after(stub):
    url, script = stub
    problem = {"title": "Service Unavailable", "status": 503, "detail": "store failing"}
    script.answers = [(503, {"retry-after": "3"}, problem)] * 2 + [(200, {}, REPORT)]
    client = Client(url, backoff=0.1)
    sleeps = quiet(client)
    events = [{"experiment": "headline", "unit": "a"}, {"experiment": "headline", "unit": "b"}]
    result = client.send_events(events)
    assert result.applied == 2
    assert len(script.requests) == 3
    bodies = [json.loads(r["body"]) for r in script.requests]
    assert bodies[0] == bodies[1] == bodies[2], "every retry resends the same ids"
    assert all(len(e["id"]) == 32 for e in bodies[0])
    assert sleeps == [3.0, 3.0], "never sooner than Retry-After"
    assert "id" not in events[0], "the caller's dicts are not changed"


def test_the_backoff_doubles_up_to_its_cap_and_then_gives_up(stub):
    url, script = stub
    problem = {"title": "Service Unavailable", "status": 503, "detail": "store failing"}
    script.answers = [(503, {}, problem)]
    client = Client(url, retries=6, backoff=0.5, max_backoff=4)
    sleeps = quiet(client)
    with pytest.raises(Unavailable, match="store failing") as caught:
        client.send_events([Event("headline", unit="a")])
    assert caught.value.status == 503
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(script.requests) == 7


def test_the_jitter_stays_between_half_and_all_of_the_step(stub):
    client = Client("http://127.0.0.1:9", backoff=1.0, max_backoff=100)
    client._random = lambda: 0.0
    assert client._delay(3, 0.0) == 4.0
    client._random = lambda: 1.0
    assert client._delay(3, 0.0) == 8.0
    assert client._delay(3, 20.0) == 20.0


def test_a_refused_connection_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now.
    client = Client(f"http://127.0.0.1:{port}", retries=3, backoff=0.01)
    sleeps = quiet(client)
    with pytest.raises(Unavailable, match="after 4 tries"):
        client.send_events([Event("headline", unit="a")])
    assert sleeps == [0.01, 0.02, 0.04]
    # Assign may be retried too: a refused connection never reached the server.
    sleeps.clear()
    with pytest.raises(Unavailable):
        client.assign("alice", ["headline"])
    assert len(sleeps) == 3


def test_assign_is_not_retried_after_an_error_that_may_have_counted(stub):
    url, script = stub
    script.answers = [(500, {}, {"title": "Internal", "status": 500, "detail": "boom"})]
    client = Client(url)
    quiet(client)
    with pytest.raises(ApiError) as caught:
        client.assign("alice", ["headline"])
    assert caught.value.status == 500
    assert len(script.requests) == 1
    # ... but after a 503, which applied nothing, it is.
    script.requests.clear()
    script.answers = [
        (503, {"retry-after": "1"}, {"title": "Unavailable", "status": 503, "detail": "x"}),
        (200, {}, {"unit": "alice", "assignments": [], "errors": []}),
    ]
    assert client.assign("alice", ["headline"]).assignments == []
    assert len(script.requests) == 2


def test_a_client_error_is_not_retried_and_carries_the_problem(stub):
    url, script = stub
    problem = {"title": "Bad Request", "status": 400, "detail": "`unit`: must not be empty"}
    script.answers = [(400, {}, problem)]
    client = Client(url)
    sleeps = quiet(client)
    with pytest.raises(ApiError) as caught:
        client.send_events([Event("headline", unit="")])
    assert caught.value.status == 400
    assert caught.value.detail == "`unit`: must not be empty"
    assert caught.value.problem == problem
    assert sleeps == []


def test_batches_respect_the_count_and_byte_limits(stub):
    url, script = stub
    script.answers = [(200, {}, REPORT)]
    client = Client(url)
    events = [Event("headline", token="t" * 100) for _ in range(10)]
    result = client.send_events(events, batch_size=4, max_batch_bytes=600)
    sizes = [len(json.loads(r["body"])) for r in script.requests]
    assert sum(sizes) == 10
    assert max(sizes) <= 4
    assert all(len(r["body"]) <= 600 for r in script.requests)
    assert result.batches == len(script.requests)
    sent = [e["id"] for r in script.requests for e in json.loads(r["body"])]
    assert sent == [e.id for e in events]
    with pytest.raises(ValueError):
        client.send_events(events, batch_size=0)
    with pytest.raises(ValueError, match="larger than"):
        client.send_events(events, max_batch_bytes=50)


def test_keys_are_sent_as_bearer_tokens(stub):
    url, script = stub
    script.answers = [(200, {}, REPORT)]
    Client(url, key="k", events_key="ek").send_events([Event("headline", unit="a")])
    assert script.requests[-1]["headers"]["authorization"] == "Bearer ek"
    script.answers = [(200, {}, {"unit": "a", "assignments": [], "errors": []})]
    Client(url, key="k", events_key="ek").assign("a")
    assert script.requests[-1]["headers"]["authorization"] == "Bearer k"
    Client(url).assign("a")
    assert "authorization" not in script.requests[-1]["headers"]


def test_a_generator_of_events_is_read_batch_by_batch(stub):
    url, script = stub
    script.answers = [(200, {}, REPORT)]
    sent_before: List[int] = []

    def events() -> Iterator[Event]:
        for i in range(6):
            sent_before.append(len(script.requests))
            yield Event("headline", unit=f"u{i}")

    result = Client(url).send_events(events(), batch_size=2)
    assert result.batches == 3
    # Event 2 is read before batch 0 goes out (it is what closes that batch), event 3 after.
    assert sent_before == [0, 0, 0, 1, 1, 2]


def test_a_guardrail_event_carries_its_metric(stub):
    url, script = stub
    script.answers = [(200, {}, REPORT)]
    Client(url).send_events([Event("headline", unit="u1", metric="refunds")])
    sent = json.loads(script.requests[0]["body"])
    assert sent[0]["metric"] == "refunds"
    assert sent[0]["unit"] == "u1"
