#!/usr/bin/env python3
"""A fixed number of durable write requests over C concurrent keep-alive connections
(benches/load/assign_write_cost.sh).

    assign_write_requests.py PORT SCENARIO FIRST COUNT CONNECTIONS

SCENARIO is one of
  assign_new    GET /v1/experiments/load-sticky/assign?unit=w-<i>: a new sticky unit each
  event_single  POST /v1/events of one event {"id":"s-<i>","experiment":"load-sticky",
                "unit":"w-<i>"}: credits unit w-<i>, which assign_new made (never rewarded)
  baseline      GET of the assign_new path shape (banditd-baseline answers any id and unit)

for i in FIRST .. FIRST+COUNT-1, handed out in order to CONNECTIONS threads, each with its own
keep-alive connection that sends its next request when its last one is answered (the shape of
wrk's load, so the store's group commit gathers what many connections have in flight). Each
request is written in one `send`, head and body together, as wrk writes it (`wrk.format` in
benches/load/lua/load.lua): http.client writes a POST's body apart from its head, and when the
two arrive apart the server makes a pass over the connection more for the body, so the count
per request moved between runs with how many were split
(benches/load/results/single18-2026-12-02-s18.md). Every
answer must be 200, and an event must be `applied`; anything else stops the run with exit
status 1. The server sees exactly COUNT requests, whatever the machine's speed.
"""

import http.client
import json
import sys
import threading


def request(scenario, i):
    """(method, path, body) of request i."""
    if scenario in ("assign_new", "baseline"):
        return "GET", f"/v1/experiments/load-sticky/assign?unit=w-{i}", None
    if scenario == "event_single":
        body = f'[{{"id":"s-{i}","experiment":"load-sticky","unit":"w-{i}"}}]'
        return "POST", "/v1/events", body.encode()
    raise SystemExit(f"unknown scenario {scenario!r}")


class OneWrite(http.client.HTTPConnection):
    """Writes a request's head and a bytes body in one `send` (http.client writes them in two)."""

    def _send_output(self, message_body=None, encode_chunked=False):
        if not isinstance(message_body, bytes):
            return super()._send_output(message_body, encode_chunked)
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + message_body)
        return None


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    first, count, connections = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    next_index = [first]
    lock = threading.Lock()
    failures = []

    def worker():
        conn = OneWrite("127.0.0.1", port, timeout=300)
        headers = {"Content-Type": "application/json"}
        while not failures:
            with lock:
                i = next_index[0]
                if i >= first + count:
                    break
                next_index[0] = i + 1
            method, path, body = request(scenario, i)
            conn.request(method, path, body=body, headers=headers if body else {})
            answer = conn.getresponse()
            text = answer.read()
            if answer.status != 200:
                failures.append(f"{path} #{i}: {answer.status} {text[:300]!r}")
                break
            if scenario == "event_single" and json.loads(text).get("applied") != 1:
                failures.append(f"event #{i} not applied: {text[:300]!r}")
                break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        print(failures[0], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
