#!/usr/bin/env python3
"""A fixed sequence of bulk event POSTs over one keep-alive connection (benches/load/bulk_cost.sh).

    bulk_requests.py PORT RUN FIRST COUNT [BATCH] [DUPLICATES]

POSTs number FIRST .. FIRST+COUNT-1 of BATCH (1,000) events each, as NDJSON, the bodies of
benches/load/lua/load.lua's `events` scenario (`batch=BATCH format=ndjson run=RUN`, one wrk
thread, ev_base 0): POST k credits the pre-filled units ev-<k·BATCH> .. ev-<k·BATCH+BATCH-1>
(`banditd-fill --prefix ev-`), each event with its own id `eRUN-1-k-j`. DUPLICATES (0) in
[0, 0.5): that share of each POST's lines (⌊BATCH × DUPLICATES⌋ of them, spread evenly) re-send
a line POST k-1 sent instead (`body`), which the store finds applied (`duplicate`); POST 0
re-sends nothing, so a counted run with duplicates starts at FIRST ≥ 1.

Every answer must be 200 with exactly the expected `applied` and `duplicate` counts and no
rejection; anything else stops the run with exit status 1. Sequential and deterministic: the
server sees exactly these bytes, whatever the machine's speed.
"""

import http.client
import json
import sys


def line(run, k, j, batch):
    return (f'{{"id":"e{run}-1-{k}-{j}","experiment":"load-sticky",'
            f'"unit":"ev-{k * batch + j}"}}')


def resends(j, duplicates):
    """Whether line j of a POST after the first re-sends a line: when the running share crosses
    a whole line, exactly round(batch × duplicates) of them, spread evenly through the body."""
    return int((j + 1) * duplicates) > int(j * duplicates)


def body(run, k, batch, duplicates):
    """POST k's NDJSON body and how many of its lines are re-sent (duplicates). A re-sent line
    is one POST k-1 sent: its line j, or, from POST 2 on (where line j of POST k-1 was itself a
    re-send, never sent as its own), its nearest line before j that it sent (DUPLICATES below
    0.5 leaves one)."""
    lines, resent = [], 0
    for j in range(batch):
        if k > 0 and resends(j, duplicates):
            earlier = j
            if k > 1:
                while earlier > 0 and resends(earlier, duplicates):
                    earlier -= 1
            lines.append(line(run, k - 1, earlier, batch))
            resent += 1
        else:
            lines.append(line(run, k, j, batch))
    return ("\n".join(lines) + "\n").encode(), resent


def main():
    port, run = int(sys.argv[1]), sys.argv[2]
    first, count = int(sys.argv[3]), int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    duplicates = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": "application/x-ndjson"}
    for k in range(first, first + count):
        payload, resent = body(run, k, batch, duplicates)
        conn.request("POST", "/v1/events", body=payload, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            print(f"POST {k}: {answer.status} {text[:300]!r}", file=sys.stderr)
            sys.exit(1)
        report = json.loads(text)
        expected = {"applied": batch - resent, "duplicate": resent, "rejected": 0}
        got = {key: report.get(key) for key in expected}
        if got != expected:
            print(f"POST {k}: expected {expected}, got {text[:300]!r}", file=sys.stderr)
            sys.exit(1)
    conn.close()


if __name__ == "__main__":
    main()
