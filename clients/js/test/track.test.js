// track(): the outbox, idempotent ids, retries with backoff, beacons.

import { test } from "node:test";
import assert from "node:assert/strict";

import { createClient } from "../src/banditd.js";
import { FakeClock, FakeStorage, applied, fakeFetch, json, problem, settle } from "./fakes.js";

const OUTBOX = "banditd:outbox";

function client(clock, fetch, options = {}) {
  let ids = 0;
  return createClient({
    url: "https://bandit.example.com",
    fetch,
    storage: options.storage ?? new FakeStorage(),
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 1, // the top of the jitter range: delays are exactly the backoff step
    randomId: () => `evt-${++ids}`,
    autoFlush: false,
    ...options,
  });
}

test("an event is posted as text/plain with keepalive, with an id generated once", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => applied(request.body));
  const result = await client(clock, fetch).track({ experiment: "headline", unit: "alice" });
  assert.deepEqual(result, { id: "evt-1", status: "accepted", outcome: "applied" });
  assert.equal(requests.length, 1);
  assert.equal(requests[0].url, "https://bandit.example.com/v1/events");
  assert.equal(requests[0].headers["content-type"], "text/plain;charset=UTF-8");
  assert.equal(requests[0].keepalive, true);
  assert.deepEqual(requests[0].body, [{ id: "evt-1", experiment: "headline", unit: "alice" }]);
});

test("a guardrail event carries its metric", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => applied(request.body));
  const result = await client(clock, fetch).track({ experiment: "headline", unit: "alice", metric: "refunds" });
  assert.equal(result.status, "accepted");
  assert.deepEqual(requests[0].body, [
    { id: "evt-1", experiment: "headline", unit: "alice", metric: "refunds" },
  ]);
});

test("a failed post is retried with the same id, after exponentially growing delays", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  const { fetch, requests } = fakeFetch((request, n) => {
    if (n <= 3) throw new TypeError("Failed to fetch");
    return applied(request.body);
  });
  const c = client(clock, fetch, { storage, retry: { baseMs: 100, maxMs: 1000, attempts: 10 } });
  let result;
  c.track({ experiment: "headline", unit: "alice", reward: 0.5 }).then((r) => (result = r));
  await settle();
  assert.equal(requests.length, 1);
  // Persisted while unacknowledged: a reload would resend it with the same id.
  assert.equal(JSON.parse(storage.getItem(OUTBOX))[0].event.id, "evt-1");
  assert.deepEqual(clock.pendingDelays(), [100]);
  await clock.advance(100);
  assert.equal(requests.length, 2);
  assert.deepEqual(clock.pendingDelays(), [200]);
  await clock.advance(200);
  assert.equal(requests.length, 3);
  assert.deepEqual(clock.pendingDelays(), [400]);
  await clock.advance(399);
  assert.equal(requests.length, 3, "retried before its backoff");
  await clock.advance(1);
  assert.equal(requests.length, 4);
  assert.deepEqual(result, { id: "evt-1", status: "accepted", outcome: "applied" });
  assert.deepEqual(
    requests.map((r) => r.body[0].id),
    ["evt-1", "evt-1", "evt-1", "evt-1"],
  );
  assert.equal(requests[3].body[0].reward, 0.5);
  assert.equal(storage.getItem(OUTBOX), null, "acknowledged events leave the outbox");
});

test("the backoff is capped, jittered, and never shorter than Retry-After", async () => {
  const clock = new FakeClock();
  const { fetch } = fakeFetch(() => problem(503, "store failing", { "retry-after": "7" }));
  const c = client(clock, fetch, { random: () => 0, retry: { baseMs: 100, maxMs: 1000, attempts: 99 } });
  c.track({ experiment: "headline", unit: "alice" });
  await settle();
  assert.deepEqual(clock.pendingDelays(), [7000]);

  const clock2 = new FakeClock();
  const { fetch: failing } = fakeFetch(() => {
    throw new TypeError("offline");
  });
  const c2 = client(clock2, failing, { random: () => 0, retry: { baseMs: 100, maxMs: 1000, attempts: 99 } });
  c2.track({ experiment: "headline", unit: "alice" });
  const delays = [];
  for (let i = 0; i < 6; i++) {
    await settle();
    const [delay] = clock2.pendingDelays();
    delays.push(delay);
    await clock2.advance(delay);
  }
  // random() = 0 is the bottom of the jitter range: half of each step; steps cap at 1000.
  assert.deepEqual(delays, [50, 100, 200, 400, 500, 500]);
});

test("after the page's tries the event resolves queued and stays for the next page", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  let up = false;
  const { fetch, requests } = fakeFetch((request) => {
    if (!up) throw new TypeError("offline");
    return applied(request.body);
  });
  const c = client(clock, fetch, { storage, retry: { baseMs: 10, maxMs: 10, attempts: 2 } });
  let result;
  c.track({ experiment: "headline", unit: "alice" }).then((r) => (result = r));
  await clock.advance(10);
  assert.equal(result.status, "queued");
  assert.equal(requests.length, 2);

  // The next page load: a new client flushes the outbox on creation, with the same id.
  up = true;
  const next = createClient({
    url: "https://bandit.example.com",
    fetch,
    storage,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    randomId: () => "never-used",
  });
  await settle();
  assert.equal(requests.length, 2, "this page parked it: no timer retries it");
  // The stored backoff still holds on the new page: it is sent when due.
  await clock.advance(10);
  assert.equal(requests.length, 3);
  assert.deepEqual(requests[2].body, [{ id: "evt-1", experiment: "headline", unit: "alice" }]);
  assert.equal(storage.getItem(OUTBOX), null);
  assert.ok(next);
});

test("a caller's own id is kept, and tracking it twice sends it once", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => applied(request.body));
  const c = client(clock, fetch);
  const [a, b] = await Promise.all([
    c.track({ id: "signup-1", experiment: "headline", unit: "alice" }),
    c.track({ id: "signup-1", experiment: "headline", unit: "alice" }),
  ]);
  assert.equal(a.id, "signup-1");
  assert.equal(b.id, "signup-1");
  const sent = requests.flatMap((r) => r.body.map((e) => e.id));
  assert.deepEqual(sent, ["signup-1"]);
});

test("the cached token of the unit is sent instead of the unit", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => {
    if (request.url.endsWith("/v1/assign")) {
      return json({
        unit: "alice",
        assignments: [
          {
            experiment: "headline",
            variant: "bold",
            payload: null,
            token: "signed-token",
            propensity: 0.5,
            counted: true,
            degraded: false,
            sticky: true,
            reward_until_ms: clock.now() + 1000,
          },
        ],
        errors: [],
      });
    }
    return applied(request.body);
  });
  const c = client(clock, fetch);
  await c.assign("alice", ["headline"]);
  await c.track({ experiment: "headline", unit: "alice" });
  assert.deepEqual(requests[1].body, [{ id: "evt-1", experiment: "headline", token: "signed-token" }]);
});

test("a rejected event resolves with its reason and a stale cached assignment is forgotten", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  storage.setItem(
    "banditd:assign:alice",
    JSON.stringify({ headline: { variant: "bold", payload: null, token: "old", rewardUntilMs: clock.now() + 1e6 } }),
  );
  const { fetch } = fakeFetch(() =>
    json({
      received: 1,
      applied: 0,
      duplicate: 0,
      already_rewarded: 0,
      rejected: 1,
      all_rejected: true,
      rejected_by_reason: { stale_revision: 1 },
      rejections: [{ index: 0, id: "evt-1", reason: "stale_revision", detail: "revision 1 ended" }],
      rejections_omitted: 0,
    }),
  );
  const result = await client(clock, fetch, { storage }).track({ experiment: "headline", unit: "alice" });
  assert.deepEqual(result, { id: "evt-1", status: "rejected", reason: "stale_revision", detail: "revision 1 ended" });
  assert.equal(storage.getItem("banditd:assign:alice"), null);
  assert.equal(storage.getItem(OUTBOX), null, "a rejection is final: not retried");
});

test("a batch refused as a whole is split so that the other events still land", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => {
    if (request.body.some((e) => e.unit)) return problem(401, "this event needs the events key");
    return applied(request.body);
  });
  const c = client(clock, fetch);
  // Queued while offline, then sent together.
  c.flush = () => Promise.resolve();
  const good = c.track({ experiment: "a", token: "t" });
  const bad = c.track({ experiment: "a", unit: "alice" });
  delete c.flush;
  await c.flush();
  await settle();
  assert.equal(requests[0].body.length, 2);
  assert.deepEqual(await good, { id: "evt-1", status: "accepted", outcome: "applied" });
  assert.deepEqual(await bad, {
    id: "evt-2",
    status: "failed",
    httpStatus: 401,
    detail: "this event needs the events key",
  });
});

test("many events go out in batches under the keepalive size limit", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) => applied(request.body));
  const c = client(clock, fetch);
  c.flush = () => Promise.resolve();
  const all = [];
  for (let i = 0; i < 120; i++) all.push(c.track({ experiment: "a", token: "x".repeat(600) }));
  delete c.flush;
  await c.flush();
  const results = await Promise.all(all);
  assert.ok(results.every((r) => r.status === "accepted"));
  assert.ok(requests.length >= 3);
  for (const r of requests) {
    assert.ok(r.body.length <= 50);
    assert.ok(JSON.stringify(r.body).length <= 48 * 1024);
  }
  assert.equal(requests.reduce((n, r) => n + r.body.length, 0), 120);
});

test("on pagehide unsent events go out by beacon and stay in the outbox until acknowledged", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  const beacons = [];
  const { fetch } = fakeFetch(() => {
    throw new TypeError("offline");
  });
  const c = client(clock, fetch, {
    storage,
    sendBeacon: (url, body) => {
      beacons.push({ url, body });
      return true;
    },
  });
  c.track({ experiment: "a", token: "t" });
  await settle();
  assert.equal(c.flushBeacon(), true);
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, "https://bandit.example.com/v1/events");
  assert.equal(typeof beacons[0].body, "string", "a string beacon is text/plain: no preflight");
  assert.deepEqual(JSON.parse(beacons[0].body), [{ id: "evt-1", experiment: "a", token: "t" }]);
  assert.equal(JSON.parse(storage.getItem(OUTBOX)).length, 1);
});

test("an event without its experiment is refused at once", () => {
  const clock = new FakeClock();
  const { fetch } = fakeFetch(() => json({}));
  assert.throws(() => client(clock, fetch).track({ unit: "alice" }), TypeError);
});

function notConfirmed(id) {
  return json({
    received: 1,
    applied: 0,
    duplicate: 0,
    already_rewarded: 0,
    rejected: 1,
    all_rejected: true,
    rejected_by_reason: { not_confirmed: 1 },
    rejections: [{ index: 0, id, reason: "not_confirmed", detail: "the assignment is not confirmed yet" }],
    rejections_omitted: 0,
  });
}

test("an event that outran its on_render confirmation is sent again with its id, after the backoff", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  const { fetch, requests } = fakeFetch((request, n) => (n === 1 ? notConfirmed("evt-1") : applied(request.body)));
  const c = client(clock, fetch, { storage, retry: { baseMs: 100, maxMs: 1000, attempts: 4 } });
  let result;
  c.track({ experiment: "hero", token: "t1" }).then((r) => (result = r));
  await settle();
  assert.equal(requests.length, 1);
  assert.equal(result, undefined, "not settled while it waits for the confirmation");
  assert.equal(JSON.parse(storage.getItem(OUTBOX))[0].event.id, "evt-1", "kept in the outbox");
  assert.deepEqual(clock.pendingDelays(), [100]);
  await clock.advance(100);
  assert.equal(requests.length, 2);
  assert.deepEqual(requests[1].body, [{ id: "evt-1", experiment: "hero", token: "t1" }]);
  assert.deepEqual(result, { id: "evt-1", status: "accepted", outcome: "applied" });
  assert.equal(storage.getItem(OUTBOX), null);
});

test("an event whose assignment is never confirmed is rejected after the tries and leaves the outbox", async () => {
  const clock = new FakeClock();
  const storage = new FakeStorage();
  const { fetch, requests } = fakeFetch(() => notConfirmed("evt-1"));
  const c = client(clock, fetch, { storage, retry: { baseMs: 100, maxMs: 1000, attempts: 3 } });
  let result;
  c.track({ experiment: "hero", token: "t1" }).then((r) => (result = r));
  await settle();
  await clock.advance(100);
  await clock.advance(200);
  assert.equal(requests.length, 3);
  assert.deepEqual(result, {
    id: "evt-1",
    status: "rejected",
    reason: "not_confirmed",
    detail: "the assignment is not confirmed yet",
  });
  assert.equal(storage.getItem(OUTBOX), null, "not kept forever");
  await clock.advance(10_000);
  assert.equal(requests.length, 3);
});

test("a confirmation acknowledged by fetch sends the waiting event at once", async () => {
  const clock = new FakeClock();
  let confirmed = false;
  const { fetch, requests } = fakeFetch((request) => {
    if (request.url.endsWith("/v1/exposures")) {
      confirmed = true;
      return json({ confirmed: 1 });
    }
    return confirmed ? applied(request.body) : notConfirmed("evt-1");
  });
  const c = client(clock, fetch, { sendBeacon: undefined, retry: { baseMs: 5000, maxMs: 5000, attempts: 4 } });
  c.sendBeacon = undefined;
  let result;
  c.track({ experiment: "hero", token: "t1" }).then((r) => (result = r));
  await settle();
  assert.equal(result, undefined);
  assert.equal(await c.rendered({ experiment: "hero", token: "t1", confirm: true }), true);
  await settle();
  assert.deepEqual(result, { id: "evt-1", status: "accepted", outcome: "applied" });
  assert.equal(requests.filter((r) => r.url.endsWith("/v1/events")).length, 2);
});
