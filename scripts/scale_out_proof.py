#!/usr/bin/env python3
"""The checks scripts/scale_out_local.sh runs against the scale-out profile once it is up.

Every request goes through the load balancer (nginx, http://127.0.0.1:8081 unless $LB_URL),
as a client's would; the containers are read and killed with the docker CLI. Exits 1 on the
first failed check, with what was expected and what was seen. Standard library only.

Checks, in order:
  spread    300 new units, each requested 3 times at once: one variant per unit, every request
            200 and not degraded, every replica served a share, exposures counted once
  events    one event per unit posted twice (split into batches): applied once, rewards once
  kill      `docker kill` of one replica under assign + event load: no assign fails once nginx
            routes around it; every acknowledged unit keeps its variant, every acknowledged
            event id is kept (posting it again is a duplicate); the replica restarted serves
  audit     `banditd audit` inside a replica (its BANDITD_REDIS): exit 0
  config    GET /v1/admin/config lists the three replicas, all on one version
  all down  every replica stopped: nginx answers problem+json 503s; started again: served
"""

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

LB = os.environ.get("LB_URL", "http://127.0.0.1:8081")
PROJECT = os.environ.get("SCALE_OUT_PROJECT", "banditd-scaleout")
EVENTS_KEY = os.environ.get("BANDITD_EVENTS_KEY", "")
ADMIN_KEY = os.environ.get("BANDITD_ADMIN_KEY", "")
EXPERIMENT = "homepage-headline"
RUN = os.environ.get("PROOF_RUN", str(int(time.time())))
# Assigns may fail only while nginx has not yet learnt the killed replica is gone.
ROUTE_AROUND_S = float(os.environ.get("ROUTE_AROUND_S", "2"))


def fail(what):
    print(f"FAIL: {what}", file=sys.stderr)
    sys.exit(1)


def ok(what):
    print(f"ok: {what}", flush=True)


def request(method, path, body=None, key="", timeout=30):
    """(status, parsed body or text); status 0 when no HTTP answer came at all."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(LB + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def assign(unit):
    return request("GET", f"/v1/experiments/{EXPERIMENT}/assign?unit={unit}")


def post_events(events):
    return request("POST", "/v1/events", events, key=EVENTS_KEY)


def totals():
    """(exposures, rewards) summed over the experiment's arms."""
    status, body = request("GET", f"/v1/experiments/{EXPERIMENT}")
    if status != 200:
        fail(f"GET /v1/experiments/{EXPERIMENT}: {status} {body}")
    arms = body["arms"]
    return sum(a["exposures"] for a in arms), sum(a["rewards"] for a in arms)


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def replicas():
    out = docker("ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--filter", "label=com.docker.compose.service=banditd-replica")
    return sorted(out.split())


def served(container):
    """Requests this replica has answered on the assign route (its own /metrics)."""
    text = docker("exec", container, "curl", "-fsS", "-H", f"authorization: Bearer {ADMIN_KEY}",
                  "http://127.0.0.1:8080/metrics")
    total = 0
    for line in text.splitlines():
        if line.startswith("banditd_http_requests_total{") and "assign" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def settle():
    time.sleep(0.5)  # past the posterior refresh (100 ms) and the exposure flush (50 ms)


def check_spread(units):
    containers = replicas()
    if len(containers) != 3:
        fail(f"expected 3 running replicas, found {len(containers)}")
    before = {c: served(c) for c in containers}
    exposures0, _ = totals()
    calls = [u for u in units for _ in range(3)]
    random.Random(7).shuffle(calls)
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda u: (u, assign(u)), calls))
    variants = {}
    for unit, (status, body) in answers:
        if status != 200 or body.get("degraded"):
            fail(f"assign {unit}: {status} {body}")
        variants.setdefault(unit, set()).add(body["variant"])
    split = [u for u, v in variants.items() if len(v) != 1]
    if split:
        fail(f"{len(split)} units got more than one variant, e.g. {split[0]}: {variants[split[0]]}")
    shares = {c[:12]: served(c) - before[c] for c in containers}
    if min(shares.values()) < len(calls) // 10:
        fail(f"requests were not spread over the replicas: {shares}")
    settle()
    exposures1, _ = totals()
    if exposures1 - exposures0 != len(units):
        fail(f"exposures grew by {exposures1 - exposures0}, expected {len(units)}")
    ok(f"{len(units)} new units x 3 concurrent requests through nginx: one variant each, "
       f"exposures +{len(units)}, requests per replica {shares}")
    return {u: next(iter(v)) for u, v in variants.items()}


def check_events_once(units):
    events = [{"id": f"{RUN}-ev-{i}", "experiment": EXPERIMENT, "unit": u}
              for i, u in enumerate(units)]
    batches = [events[i:i + 25] for i in range(0, len(events), 25)]
    _, rewards0 = totals()
    for round_, (want_applied, want_dup) in enumerate([(len(events), 0), (0, len(events))]):
        with ThreadPoolExecutor(6) as pool:
            reports = list(pool.map(post_events, batches))
        applied = duplicate = 0
        for status, body in reports:
            if status != 200:
                fail(f"POST /v1/events (round {round_ + 1}): {status} {body}")
            applied += body["applied"]
            duplicate += body["duplicate"]
        if (applied, duplicate) != (want_applied, want_dup):
            fail(f"round {round_ + 1}: applied {applied}, duplicate {duplicate}; "
                 f"expected {want_applied}, {want_dup}")
    settle()
    _, rewards1 = totals()
    if rewards1 - rewards0 != len(events):
        fail(f"rewards grew by {rewards1 - rewards0}, expected {len(events)}")
    ok(f"{len(events)} events posted twice through nginx in batches of 25: applied once, "
       f"duplicates {len(events)}, rewards +{len(events)}")


class Load:
    """Assign and event traffic through nginx, recording what was acknowledged: half the
    assigns for known units, half for new ones, and one event for each new unit acknowledged
    (so an event that was lost would be applied when posted again, not refused)."""

    def __init__(self, known):
        self.known = list(known)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked_units = {}
        self.acked_events = []
        self.fresh = []  # acknowledged new units no event has named yet
        self.failed_posts = []
        self.failures = []  # (time, what)
        self.slowest = 0.0
        self.count = 0

    def assigner(self, worker):
        rng = random.Random(worker)
        i = 0
        while not self.stop.is_set():
            i += 1
            unit = rng.choice(self.known) if i % 2 else f"{RUN}-load-{worker}-{i}"
            start = time.monotonic()
            status, body = assign(unit)
            took = time.monotonic() - start
            with self.lock:
                self.count += 1
                self.slowest = max(self.slowest, took)
                if status != 200 or body.get("degraded"):
                    self.failures.append((start, f"assign {unit}: {status} {str(body)[:200]}"))
                else:
                    self.acked_units[unit] = body["variant"]
                    if "-load-" in unit:
                        self.fresh.append(unit)

    def poster(self, worker):
        i = 0
        while not self.stop.is_set():
            i += 1
            with self.lock:
                units, self.fresh = self.fresh[:50], self.fresh[50:]
            if not units:
                time.sleep(0.05)
                continue
            batch = [{"id": f"{RUN}-load-ev-{worker}-{i}-{j}", "experiment": EXPERIMENT,
                      "unit": u} for j, u in enumerate(units)]
            status, body = post_events(batch)
            with self.lock:
                if status == 200:
                    self.acked_events.extend(batch)
                else:
                    # Not acknowledged, so the client would retry it: allowed, but reported.
                    self.failed_posts.append(f"{status} {str(body)[:120]}")
                    self.fresh.extend(u["unit"] for u in batch)


def check_kill(known):
    containers = replicas()
    victim = containers[1]
    load = Load(known)
    threads = [threading.Thread(target=load.assigner, args=(w,)) for w in range(8)]
    threads += [threading.Thread(target=load.poster, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    killed_at = time.monotonic()
    docker("kill", victim)
    time.sleep(8)
    docker("start", victim)
    deadline = time.monotonic() + 60
    while docker("inspect", "--format", "{{.State.Health.Status}}", victim).strip() != "healthy":
        if time.monotonic() > deadline:
            load.stop.set()
            fail(f"replica {victim[:12]} not healthy 60 s after docker start")
        time.sleep(0.5)
    before = served(victim)
    time.sleep(4)
    after = served(victim)
    load.stop.set()
    for t in threads:
        t.join()
    late = [w for t, w in load.failures if t > killed_at + ROUTE_AROUND_S]
    early = [w for t, w in load.failures if t <= killed_at + ROUTE_AROUND_S]
    print(f"   load: {load.count} assigns, {len(load.failures)} failed "
          f"({len(early)} within {ROUTE_AROUND_S:g} s of the kill), slowest {load.slowest:.2f} s, "
          f"{len(load.acked_events)} events acknowledged, {len(load.failed_posts)} event posts "
          f"not acknowledged {load.failed_posts[:3]}", flush=True)
    if early or late:
        for what in (early + late)[:5]:
            print(f"   {what}", flush=True)
    if late:
        fail(f"{len(late)} assigns failed more than {ROUTE_AROUND_S:g} s after the kill")
    if load.failed_posts:
        # An event post is safe to retry (idempotent by id), so nginx must retry one that the
        # killed replica was serving on another replica instead of answering 502.
        fail(f"{len(load.failed_posts)} event posts failed: {load.failed_posts[:3]}")
    if after <= before:
        fail(f"the restarted replica {victim[:12]} served no assign through nginx")
    lost = {u: v for u, v in load.acked_units.items() if assign(u)[1].get("variant") != v}
    if lost:
        unit = next(iter(lost))
        fail(f"{len(lost)} acknowledged units changed variant, e.g. {unit}: was {lost[unit]}, "
             f"now {assign(unit)[1]}")
    events = load.acked_events
    duplicate = 0
    for i in range(0, len(events), 500):
        status, body = post_events(events[i:i + 500])
        if status != 200:
            fail(f"POST /v1/events (re-post): {status} {body}")
        duplicate += body["duplicate"] + body["already_rewarded"]
        if body["applied"]:
            fail(f"{body['applied']} acknowledged events were applied again: they were lost")
    ok(f"docker kill of replica {victim[:12]} under load: no assign failed "
       f"{ROUTE_AROUND_S:g} s after the kill ({len(early)} before), "
       f"{len(load.acked_units)} acknowledged units kept their variant, {len(events)} "
       f"acknowledged events kept (re-posted: {duplicate} duplicates), restarted replica "
       f"served {after - before} assigns")


def check_audit():
    container = replicas()[0]
    run = subprocess.run(["docker", "exec", container, "banditd", "audit"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"banditd audit exited {run.returncode}: {run.stdout}{run.stderr}")
    ok(f"banditd audit (Redis): clean: {run.stdout.strip().splitlines()[-1:]}")


def check_config():
    deadline = time.monotonic() + 15
    while True:
        status, body = request("GET", "/v1/admin/config", key=ADMIN_KEY)
        if status != 200:
            fail(f"GET /v1/admin/config: {status} {body}")
        live = body["replicas"]["live"]
        if len(live) == 3 or time.monotonic() > deadline:
            break
        time.sleep(1)  # a killed replica's report lasts 10 s
    versions = body["replicas"]["versions"]
    if len(live) != 3 or not body["replicas"]["agree"] or len(versions) != 1:
        fail(f"expected 3 live replicas on one version: {json.dumps(body['replicas'])}")
    ok(f"GET /v1/admin/config: {len(live)} live replicas, agree, version "
       f"{json.dumps(versions)[:160]}")


def wait_healthy(containers, seconds=60):
    deadline = time.monotonic() + seconds
    for c in containers:
        while docker("inspect", "--format", "{{.State.Health.Status}}", c).strip() != "healthy":
            if time.monotonic() > deadline:
                fail(f"replica {c[:12]} not healthy {seconds} s after docker start")
            time.sleep(0.5)


def check_all_down():
    containers = replicas()
    docker("stop", "--time", "5", *containers)
    start = time.monotonic()
    status, body = assign(f"{RUN}-while-down")
    took = time.monotonic() - start
    events_status, _ = post_events([{"id": f"{RUN}-down", "experiment": EXPERIMENT,
                                     "unit": f"{RUN}-u0"}])
    docker("start", *containers)
    wait_healthy(containers)
    if status != 503 or events_status != 503 or not isinstance(body, dict) \
            or body.get("status") != 503 or took > 10:
        fail(f"with every replica stopped: assign {status} {body} after {took:.1f} s, events "
             f"{events_status}; expected problem+json 503s within 10 s")
    time.sleep(2)
    status, body = assign(f"{RUN}-u0")
    if status != 200 or body.get("degraded"):
        fail(f"after the replicas came back: assign {status} {body}")
    ok(f"every replica stopped: nginx answers problem+json 503 (Retry-After) in {took:.1f} s; "
       "started again: served")


def main():
    units = [f"{RUN}-u{i}" for i in range(300)]
    known = check_spread(units)
    check_events_once(units)
    check_kill(known)
    check_audit()
    check_config()
    check_all_down()
    print("scale-out proof: all checks passed")


if __name__ == "__main__":
    main()
