#!/usr/bin/env python3
"""A fixed number of assign requests over one keep-alive connection (benches/load/assign_cost.sh).

    assign_requests.py PORT SCENARIO COUNT [KNOWN]

SCENARIO is one of
  warm          GET .../load-sticky/assign?unit=k-<i> for i in 0..COUNT (makes the known units)
  assign_known  COUNT GETs of random known units k-0 .. k-(KNOWN-1) (seed 1)
  per_request   COUNT GETs of load-per-request for random units p-<0..999999> (seed 2)
  baseline      COUNT GETs of the same path shape (banditd-baseline answers any id and unit)

The requests are those of benches/load/lua/load.lua. Every answer must be 200; anything else
stops the run with exit status 1. Only the server is measured, so the client's speed does not
matter, but it is sequential and deterministic: the server sees exactly COUNT requests.
"""

import http.client
import random
import sys


def paths(scenario, count, known):
    if scenario == "warm":
        for i in range(count):
            yield f"/v1/experiments/load-sticky/assign?unit=k-{i}"
    elif scenario in ("assign_known", "baseline"):
        # The bare handler answers the known-unit requests, the same sequence.
        rng = random.Random(1)
        for _ in range(count):
            yield f"/v1/experiments/load-sticky/assign?unit=k-{rng.randrange(known)}"
    elif scenario == "per_request":
        rng = random.Random(2)
        for _ in range(count):
            yield f"/v1/experiments/load-per-request/assign?unit=p-{rng.randrange(1_000_000)}"
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


def main():
    port, scenario, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    known = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for path in paths(scenario, count, known):
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            print(f"{path}: {answer.status} {body[:300]!r}", file=sys.stderr)
            sys.exit(1)
    conn.close()


if __name__ == "__main__":
    main()
