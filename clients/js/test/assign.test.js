// assign(): the cache of sticky assignments, the timeout and the fallbacks.

import { test } from "node:test";
import assert from "node:assert/strict";

import { createClient } from "../src/banditd.js";
import { BrokenStorage, FakeClock, FakeStorage, fakeFetch, json, problem, settle } from "./fakes.js";

const DAY_MS = 24 * 3600 * 1000;

function assignment(clock, experiment, variant, { sticky = true, windowMs = 7 * DAY_MS } = {}) {
  return {
    experiment,
    variant,
    payload: { label: variant },
    token: `token-${experiment}-${variant}`,
    propensity: 0.5,
    counted: true,
    degraded: false,
    sticky,
    reward_until_ms: clock.now() + windowMs,
  };
}

function client(clock, fetch, options = {}) {
  return createClient({
    url: "https://bandit.example.com/",
    fetch,
    storage: options.storage ?? new FakeStorage(),
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    autoFlush: false,
    ...options,
  });
}

test("a sticky assignment is served from the cache until its reward window closes", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) =>
    json({ unit: "alice", assignments: [assignment(clock, "headline", "bold", { windowMs: DAY_MS })], errors: [] }),
  );
  const storage = new FakeStorage();
  const first = await client(clock, fetch, { storage }).assign("alice", ["headline"]);
  assert.equal(first.assignments.headline.variant, "bold");
  assert.equal(first.assignments.headline.source, "server");
  assert.equal(requests.length, 1);
  assert.equal(requests[0].url, "https://bandit.example.com/v1/assign");
  assert.deepEqual(requests[0].body, { unit: "alice", experiments: ["headline"] });

  // A new page (a new client on the same storage), within the window: no request.
  await clock.advance(DAY_MS - 1);
  const second = await client(clock, fetch, { storage }).assign("alice", ["headline"]);
  assert.equal(requests.length, 1);
  assert.equal(second.assignments.headline.source, "cache");
  assert.equal(second.assignments.headline.variant, "bold");
  assert.equal(second.assignments.headline.token, "token-headline-bold");
  assert.deepEqual(second.assignments.headline.payload, { label: "bold" });

  // Once the window has closed the token credits nothing: ask again.
  await clock.advance(1);
  const third = await client(clock, fetch, { storage }).assign("alice", ["headline"]);
  assert.equal(requests.length, 2);
  assert.equal(third.assignments.headline.source, "server");
});

test("the cache is per unit", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) =>
    json({ unit: request.body.unit, assignments: [assignment(clock, "headline", "bold")], errors: [] }),
  );
  const c = client(clock, fetch);
  await c.assign("alice", ["headline"]);
  await c.assign("bob", ["headline"]);
  assert.equal(requests.length, 2);
  await c.assign("alice", ["headline"]);
  assert.equal(requests.length, 2);
});

test("per-request assignments are never cached", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() =>
    json({ unit: "alice", assignments: [assignment(clock, "ranking", "b", { sticky: false })], errors: [] }),
  );
  const c = client(clock, fetch);
  await c.assign("alice", ["ranking"]);
  const again = await c.assign("alice", ["ranking"]);
  assert.equal(requests.length, 2);
  assert.equal(again.assignments.ranking.source, "server");
});

test("only the experiments missing from the cache are requested", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch((request) =>
    json({
      unit: "alice",
      assignments: request.body.experiments.map((id) => assignment(clock, id, "v")),
      errors: [],
    }),
  );
  const c = client(clock, fetch);
  await c.assign("alice", ["a"]);
  const both = await c.assign("alice", ["a", "b"]);
  assert.deepEqual(requests[1].body.experiments, ["b"]);
  assert.equal(both.assignments.a.source, "cache");
  assert.equal(both.assignments.b.source, "server");
});

test("without a list the server is always asked, since it alone knows what is served", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() =>
    json({ unit: "alice", assignments: [assignment(clock, "headline", "bold")], errors: [] }),
  );
  const c = client(clock, fetch);
  await c.assign("alice");
  await c.assign("alice");
  assert.equal(requests.length, 2);
  assert.equal(requests[0].body.experiments, undefined);
});

test("a slow server costs the page at most the timeout, then the defaults are rendered", async () => {
  const clock = new FakeClock();
  let answer;
  const { fetch } = fakeFetch(() => new Promise((resolve) => (answer = resolve)));
  const storage = new FakeStorage();
  const c = client(clock, fetch, {
    storage,
    timeoutMs: 300,
    defaults: { headline: { variant: "control", payload: { label: "control" } } },
  });
  let result;
  c.assign("alice", ["headline", "unknown-here"]).then((r) => (result = r));
  await clock.advance(299);
  assert.equal(result, undefined, "resolved before the timeout");
  await clock.advance(1);
  assert.ok(result, "not resolved at the timeout");
  assert.equal(result.timedOut, true);
  assert.deepEqual(result.assignments.headline, {
    experiment: "headline",
    variant: "control",
    payload: { label: "control" },
    token: null,
    sticky: false,
    rewardUntilMs: null,
    source: "fallback",
  });
  assert.equal(result.assignments["unknown-here"].variant, null);
  assert.equal(result.errors[0].error, "timeout");

  // The late answer still lands in the cache: the next view shows the counted variant.
  answer(json({ unit: "alice", assignments: [assignment(clock, "headline", "bold")], errors: [] }));
  await settle();
  const next = await client(clock, fetch, { storage }).assign("alice", ["headline"]);
  assert.equal(next.assignments.headline.source, "cache");
  assert.equal(next.assignments.headline.variant, "bold");
});

test("a network failure falls back to cached entries and defaults", async () => {
  const clock = new FakeClock();
  let fail = false;
  const { fetch } = fakeFetch((request) => {
    if (fail) throw new TypeError("Failed to fetch");
    return json({ unit: "alice", assignments: [assignment(clock, "a", "cached-variant")], errors: [] });
  });
  const c = client(clock, fetch, { defaults: { b: { variant: "b-default" } } });
  await c.assign("alice", ["a"]);
  fail = true;
  const result = await c.assign("alice");
  assert.equal(result.timedOut, false);
  assert.equal(result.errors[0].error, "network");
  assert.equal(result.assignments.a.variant, "cached-variant");
  assert.equal(result.assignments.a.source, "cache");
  assert.equal(result.assignments.b.variant, "b-default");
});

test("an error status falls back too, and says which", async () => {
  const clock = new FakeClock();
  const { fetch } = fakeFetch(() => problem(503, "the store cannot be read", { "retry-after": "1" }));
  const result = await client(clock, fetch, { defaults: { a: { variant: "control" } } }).assign("alice", ["a"]);
  assert.equal(result.assignments.a.variant, "control");
  assert.deepEqual(result.errors[0], { experiment: null, error: "http_503", detail: "the store cannot be read" });
});

test("the server's per-experiment errors come with its fallback and are not cached", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() =>
    json({
      unit: "alice",
      assignments: [assignment(clock, "a", "bold")],
      errors: [
        {
          experiment: "draft-one",
          error: "experiment_not_served",
          detail: "draft",
          fallback: { variant: "control", payload: { x: 1 } },
        },
        { experiment: "nope", error: "unknown_experiment", detail: "unknown", fallback: null },
      ],
    }),
  );
  const c = client(clock, fetch, { defaults: { nope: { variant: "page-default" } } });
  const result = await c.assign("alice", ["a", "draft-one", "nope"]);
  assert.equal(result.assignments["draft-one"].variant, "control");
  assert.deepEqual(result.assignments["draft-one"].payload, { x: 1 });
  assert.equal(result.assignments["draft-one"].source, "fallback");
  assert.equal(result.assignments.nope.variant, "page-default");
  assert.equal(result.errors.length, 2);
  await c.assign("alice", ["a", "draft-one"]);
  assert.deepEqual(requests[1].body.experiments, ["draft-one"]);
});

test("degraded answers and answers without a token are not cached", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() =>
    json({
      unit: "alice",
      assignments: [{ ...assignment(clock, "a", "control"), token: null, reward_until_ms: null, degraded: true }],
      errors: [],
    }),
  );
  const c = client(clock, fetch);
  const first = await c.assign("alice", ["a"]);
  assert.equal(first.assignments.a.degraded, true);
  await c.assign("alice", ["a"]);
  assert.equal(requests.length, 2);
});

test("storage that throws (private mode, quota) still caches for the page", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() =>
    json({ unit: "alice", assignments: [assignment(clock, "a", "bold")], errors: [] }),
  );
  const c = client(clock, fetch, { storage: new BrokenStorage() });
  await c.assign("alice", ["a"]);
  const again = await c.assign("alice", ["a"]);
  assert.equal(requests.length, 1);
  assert.equal(again.assignments.a.source, "cache");
});

test("the assign key, when given, is sent as a bearer token", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() => json({ unit: "u", assignments: [], errors: [] }));
  await client(clock, fetch, { key: "k1" }).assign("u", ["a"]);
  assert.equal(requests[0].headers.authorization, "Bearer k1");
  assert.equal(requests[0].headers["content-type"], "application/json");
});

test("bad arguments are refused before any request", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() => json({}));
  const c = client(clock, fetch);
  await assert.rejects(c.assign(""), TypeError);
  await assert.rejects(c.assign("u", "headline"), TypeError);
  assert.throws(() => createClient({}), TypeError);
  assert.equal(requests.length, 0);
});

test("rendered() confirms an on_render assignment by beacon with its token, and nothing else", async () => {
  const clock = new FakeClock();
  const beacons = [];
  const { fetch, requests } = fakeFetch(() =>
    json({
      unit: "u1",
      assignments: [
        { ...assignment(clock, "hero", "bold"), confirm: true, counted: false },
        assignment(clock, "footer", "plain"),
      ],
      errors: [],
    }),
  );
  const c = client(clock, fetch, {
    sendBeacon: (url, body) => {
      beacons.push({ url, body });
      return true;
    },
  });
  const result = await c.assign("u1", ["hero", "footer"]);
  assert.equal(result.assignments.hero.confirm, true);
  assert.equal(await c.rendered(result.assignments.hero), true);
  assert.equal(await c.rendered(result.assignments.footer), false);
  assert.deepEqual(beacons, [
    {
      url: "https://bandit.example.com/v1/exposures",
      body: JSON.stringify({ experiment: "hero", token: "token-hero-bold" }),
    },
  ]);
  // A later page view answers from the cache, which remembers that the render must be
  // confirmed (the server counts one confirmation per assignment).
  const again = await c.assign("u1", ["hero"]);
  assert.equal(again.assignments.hero.source, "cache");
  assert.equal(again.assignments.hero.confirm, true);
  assert.equal(requests.length, 1);
});

test("rendered() confirms each per-request on_render draw with its own token, never from the cache", async () => {
  const clock = new FakeClock();
  const beacons = [];
  let draw = 0;
  const { fetch, requests } = fakeFetch(() => {
    draw += 1;
    return json({
      unit: "u1",
      assignments: [
        {
          ...assignment(clock, "hero", draw % 2 ? "bold" : "plain", { sticky: false }),
          token: `token-hero-draw-${draw}`,
          confirm: true,
          counted: false,
        },
      ],
      errors: [],
    });
  });
  const c = client(clock, fetch, {
    sendBeacon: (url, body) => {
      beacons.push({ url, body });
      return true;
    },
  });
  const first = await c.assign("u1", ["hero"]);
  const second = await c.assign("u1", ["hero"]);
  // A per-request draw is never cached: each page view asks afresh and gets its own token.
  assert.equal(requests.length, 2);
  assert.equal(first.assignments.hero.sticky, false);
  assert.equal(second.assignments.hero.source, "server");
  assert.equal(await c.rendered(first.assignments.hero), true);
  assert.equal(await c.rendered(second.assignments.hero), true);
  assert.deepEqual(
    beacons.map((b) => JSON.parse(b.body)),
    [
      { experiment: "hero", token: "token-hero-draw-1" },
      { experiment: "hero", token: "token-hero-draw-2" },
    ],
  );
});

test("rendered() falls back to a keepalive text/plain fetch without a beacon", async () => {
  const clock = new FakeClock();
  const { fetch, requests } = fakeFetch(() => json({ received: 1, applied: 1 }));
  const c = client(clock, fetch, { sendBeacon: undefined });
  c.sendBeacon = undefined;
  const ok = await c.rendered({ experiment: "hero", token: "t", confirm: true });
  assert.equal(ok, true);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].url, "https://bandit.example.com/v1/exposures");
  assert.equal(requests[0].keepalive, true);
  assert.equal(requests[0].headers["content-type"], "text/plain");
  assert.deepEqual(requests[0].body, { experiment: "hero", token: "t" });
});
