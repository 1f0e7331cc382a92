// banditd browser client: assignments cached per unit until their reward window closes, and
// reward events kept in an outbox until the server acknowledges them.
//
// One file, plain ES2020 JavaScript with no imports, so that the very file of the npm package
// is what the server serves at GET /v1/sdk.js and what the tests load, with no build step.
// The types are in banditd.d.ts beside it. The HTTP API it speaks is the README's
// "HTTP API" section.

const DEFAULT_TIMEOUT_MS = 800;
const DEFAULT_RETRY = { baseMs: 500, maxMs: 30000, attempts: 8 };
/** Events per request: well under the server's 10,000, and a body that stays inside the
 * 64 KiB a browser allows for keepalive requests in flight. */
const MAX_BATCH_EVENTS = 50;
const MAX_BATCH_BYTES = 48 * 1024;
/** Oldest events are dropped beyond this many unacknowledged ones (a page offline for days). */
const MAX_OUTBOX_EVENTS = 1000;
/** HTTP statuses worth retrying: the server or a proxy will answer differently later. */
const RETRIABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** Storage that never throws: localStorage when it works, else memory for this page. A
 * browser with storage disabled, full, or in a private mode still gets assignments. */
class SafeStorage {
  constructor(backing) {
    this.backing = backing;
    this.memory = new Map();
  }

  get(key) {
    try {
      if (this.backing) {
        const text = this.backing.getItem(key);
        return text === null ? undefined : JSON.parse(text);
      }
    } catch (_) {
      // Unreadable or not JSON: fall through to what this page remembers.
    }
    return this.memory.get(key);
  }

  set(key, value) {
    this.memory.set(key, value);
    try {
      if (this.backing) this.backing.setItem(key, JSON.stringify(value));
    } catch (_) {
      // Quota or disabled storage: the memory copy serves this page.
    }
  }

  remove(key) {
    this.memory.delete(key);
    try {
      if (this.backing) this.backing.removeItem(key);
    } catch (_) {
      // As above.
    }
  }
}

function defaultStorage() {
  try {
    return globalThis.localStorage;
  } catch (_) {
    return undefined; // Accessing it throws when storage is blocked.
  }
}

function defaultRandomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The `Retry-After` of a response in milliseconds (seconds or an HTTP date), if any. */
function retryAfterMs(response, nowMs) {
  const value = response && response.headers && response.headers.get("retry-after");
  if (!value) return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - nowMs) : 0;
}

export class BanditdClient {
  /** @param {import("./banditd").ClientOptions} options */
  constructor(options) {
    if (!options || typeof options.url !== "string" || options.url === "") {
      throw new TypeError("banditd: `url` is required, e.g. https://bandit.example.com");
    }
    this.url = options.url.replace(/\/+$/, "");
    this.key = options.key;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.defaults = options.defaults ?? {};
    this.retry = { ...DEFAULT_RETRY, ...(options.retry ?? {}) };
    this.prefix = options.prefix ?? "banditd:";
    this.storage = new SafeStorage(
      options.storage === undefined ? defaultStorage() : options.storage,
    );
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.now = options.now ?? (() => Date.now());
    this.random = options.random ?? Math.random;
    this.randomId = options.randomId ?? defaultRandomId;
    this.setTimer = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.clearTimer = options.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this.sendBeacon =
      options.sendBeacon ??
      (globalThis.navigator && typeof globalThis.navigator.sendBeacon === "function"
        ? (url, body) => globalThis.navigator.sendBeacon(url, body)
        : undefined);
    /** Event ids of this page's `track` calls, with the resolver of their promise. */
    this.waiting = new Map();
    /** Event ids on their way to the server right now. */
    this.inFlight = new Set();
    /** Failed tries of each event in this page; at `retry.attempts` the event is parked: no
     * timer retries it in this page, the next `track` or `flush` (or page) does. */
    this.tries = new Map();
    this.parked = new Set();
    this.flushTimer = undefined;
    this.flushAt = Infinity;
    if (options.autoFlush !== false) {
      // Events an earlier page left unacknowledged go out now; retries keep their ids.
      this.flush();
      const w = globalThis.window;
      if (w && typeof w.addEventListener === "function") {
        w.addEventListener("pagehide", () => this.flushBeacon());
      }
    }
  }

  // ---- assignments ---------------------------------------------------------------------

  cacheKey(unit) {
    return `${this.prefix}assign:${unit}`;
  }

  /** This unit's cached assignments whose reward window is still open (expired ones are
   * dropped from storage as a side effect). */
  cached(unit) {
    const stored = this.storage.get(this.cacheKey(unit));
    const now = this.now();
    const live = {};
    let pruned = false;
    if (stored && typeof stored === "object") {
      for (const [id, entry] of Object.entries(stored)) {
        if (entry && typeof entry.rewardUntilMs === "number" && entry.rewardUntilMs > now) {
          live[id] = entry;
        } else {
          pruned = true;
        }
      }
    }
    if (pruned) this.writeCache(unit, live);
    return live;
  }

  writeCache(unit, entries) {
    if (Object.keys(entries).length === 0) this.storage.remove(this.cacheKey(unit));
    else this.storage.set(this.cacheKey(unit), entries);
  }

  /** Forgets a unit's cached assignment (all of them without `experiment`). */
  forget(unit, experiment) {
    if (experiment === undefined) {
      this.storage.remove(this.cacheKey(unit));
      return;
    }
    const entries = this.cached(unit);
    delete entries[experiment];
    this.writeCache(unit, entries);
  }

  /**
   * Which variant `unit` sees in each experiment. With a list, experiments cached for the
   * unit are answered from the cache and only the others are asked for (none: no request).
   * Never takes longer than `timeoutMs`: an unanswered experiment gets its fallback.
   */
  async assign(unit, experiments) {
    if (typeof unit !== "string" || unit === "") {
      throw new TypeError("banditd: `unit` must be a non-empty string");
    }
    if (experiments !== undefined && !Array.isArray(experiments)) {
      throw new TypeError("banditd: `experiments` must be an array of experiment ids");
    }
    const listed = experiments === undefined ? undefined : [...new Set(experiments)];
    const cache = this.cached(unit);
    const result = { unit, assignments: {}, errors: [], timedOut: false };
    const missing = [];
    for (const id of listed ?? []) {
      if (cache[id]) result.assignments[id] = { ...fromCache(id, cache[id]) };
      else missing.push(id);
    }
    if (listed !== undefined && missing.length === 0) return result;

    const answer = await this.requestAssignments(unit, listed === undefined ? undefined : missing);
    if (answer.ok) {
      for (const a of answer.body.assignments ?? []) {
        result.assignments[a.experiment] = fromServer(a);
      }
      for (const e of answer.body.errors ?? []) {
        result.errors.push(e);
        result.assignments[e.experiment] = this.fallback(e.experiment, e.fallback);
      }
      return result;
    }
    result.timedOut = answer.timedOut === true;
    if (answer.error) result.errors.push(answer.error);
    // Everything the page could not get from the server: what this browser already knows.
    const wanted = listed === undefined ? [...Object.keys(cache), ...Object.keys(this.defaults)] : missing;
    for (const id of wanted) {
      if (result.assignments[id]) continue;
      result.assignments[id] = cache[id] ? fromCache(id, cache[id]) : this.fallback(id, null);
    }
    return result;
  }

  /** What a page renders for an experiment it could not be assigned in: the server's
   * fallback when it sent one, else the `defaults` option, else `variant: null` (the page's
   * own built-in default). */
  fallback(id, serverFallback) {
    const known = serverFallback ?? this.defaults[id] ?? null;
    return {
      experiment: id,
      variant: known ? known.variant : null,
      payload: known ? (known.payload ?? null) : null,
      token: null,
      sticky: false,
      rewardUntilMs: null,
      source: "fallback",
    };
  }

  /** POST /v1/assign, raced against the timeout. A late answer still fills the cache, so
   * the unit's next page view shows the variant the server counted. */
  requestAssignments(unit, experiments) {
    const body = { unit };
    if (experiments !== undefined) body.experiments = experiments;
    const headers = { "content-type": "application/json" };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    const request = Promise.resolve()
      .then(() =>
        this.fetch(`${this.url}/v1/assign`, {
          method: "POST",
          headers,
          body: JSON.stringify(body),
          credentials: "omit",
          cache: "no-store",
        }),
      )
      .then(async (response) => {
        if (!response.ok) {
          return {
            ok: false,
            error: { experiment: null, error: `http_${response.status}`, detail: await problemDetail(response) },
          };
        }
        const parsed = await response.json();
        this.remember(unit, parsed);
        return { ok: true, body: parsed };
      })
      .catch((err) => ({
        ok: false,
        error: { experiment: null, error: "network", detail: String(err && err.message ? err.message : err) },
      }));
    return new Promise((resolve) => {
      const timer = this.setTimer(
        () =>
          resolve({
            ok: false,
            timedOut: true,
            error: { experiment: null, error: "timeout", detail: `no answer within ${this.timeoutMs} ms` },
          }),
        this.timeoutMs,
      );
      request.then((answer) => {
        this.clearTimer(timer);
        resolve(answer);
      });
    });
  }

  /** Caches the sticky assignments of an answer (with a token, until their window closes). */
  remember(unit, body) {
    const now = this.now();
    const entries = this.cached(unit);
    let changed = false;
    for (const a of (body && body.assignments) ?? []) {
      if (a.sticky && a.token && typeof a.reward_until_ms === "number" && a.reward_until_ms > now) {
        entries[a.experiment] = {
          variant: a.variant,
          payload: a.payload ?? null,
          token: a.token,
          rewardUntilMs: a.reward_until_ms,
          confirm: Boolean(a.confirm),
        };
        changed = true;
      }
    }
    if (changed) this.writeCache(unit, entries);
  }

  /**
   * Tells the server the page has shown `assignment` (`exposure: on_render` experiments,
   * whose assign answer says `confirm: true`; for others it does nothing and resolves
   * false). Call it once the variant is on screen. The confirmation carries the token, so it
   * needs no key, and goes as a `text/plain` beacon (no preflight; it survives the page
   * closing), or by `fetch` with `keepalive` where there is no beacon. The server counts
   * one confirmation per assignment, so calling it on every render (a cached assignment
   * included) is safe.
   */
  rendered(assignment) {
    if (!assignment || !assignment.confirm || !assignment.token) return Promise.resolve(false);
    const body = JSON.stringify({ experiment: assignment.experiment, token: assignment.token });
    const url = `${this.url}/v1/exposures`;
    if (this.sendBeacon && this.sendBeacon(url, body)) return Promise.resolve(true);
    return Promise.resolve()
      .then(() =>
        this.fetch(url, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body,
          keepalive: true,
          credentials: "omit",
        }),
      )
      .then((response) => {
        // Acknowledged: the events that were refused for want of this confirmation go now
        // instead of after their backoff.
        if (response.ok) this.resendUnconfirmed(assignment.experiment);
        return response.ok;
      })
      .catch(() => false);
  }

  resendUnconfirmed(experiment) {
    const now = this.now();
    let changed = false;
    const items = this.outbox().map((item) => {
      if (!item.unconfirmed || item.event.experiment !== experiment || this.inFlight.has(item.event.id)) return item;
      changed = true;
      return { ...item, dueMs: now };
    });
    if (!changed) return;
    this.saveOutbox(items);
    this.flush();
  }

  // ---- events --------------------------------------------------------------------------

  outboxKey() {
    return `${this.prefix}outbox`;
  }

  outbox() {
    const stored = this.storage.get(this.outboxKey());
    return Array.isArray(stored) ? stored : [];
  }

  saveOutbox(items) {
    if (items.length === 0) this.storage.remove(this.outboxKey());
    else this.storage.set(this.outboxKey(), items.slice(-MAX_OUTBOX_EVENTS));
  }

  /**
   * Records a reward event and sends it. The event gets an id once (unless it has one) and
   * stays in the outbox (in localStorage) until the server acknowledges it, so every retry,
   * in this page or a later one, carries the same id and the server applies it once.
   * With a `unit` and a cached token for it, the token is sent instead of the unit: a token
   * event needs no events key.
   */
  track(event) {
    if (!event || typeof event.experiment !== "string" || event.experiment === "") {
      throw new TypeError("banditd: an event needs its `experiment`");
    }
    const body = { id: event.id ?? this.randomId(), experiment: event.experiment };
    let token = event.token;
    if (!token && event.unit !== undefined) {
      const cached = this.cached(event.unit)[event.experiment];
      if (cached) token = cached.token;
    }
    if (token) body.token = token;
    else if (event.unit !== undefined) body.unit = event.unit;
    if (event.metric !== undefined) body.metric = event.metric;
    if (event.reward !== undefined) body.reward = event.reward;
    if (event.timestamp !== undefined) body.timestamp = event.timestamp;
    const outbox = this.outbox();
    if (!outbox.some((item) => item.event.id === body.id)) {
      outbox.push({ event: body, attempts: 0, dueMs: 0, unit: event.unit });
      this.saveOutbox(outbox);
    }
    const done = new Promise((resolve) => {
      const resolvers = this.waiting.get(body.id) ?? [];
      resolvers.push(resolve);
      this.waiting.set(body.id, resolvers);
    });
    this.flush();
    return done;
  }

  settle(id, outcome) {
    const resolvers = this.waiting.get(id);
    if (!resolvers) return;
    this.waiting.delete(id);
    for (const resolve of resolvers) resolve(outcome);
  }

  /** Sends every due event of the outbox; schedules the next try of the others. */
  flush() {
    this.parked.clear();
    const now = this.now();
    const outbox = this.outbox();
    const due = outbox.filter((item) => !this.inFlight.has(item.event.id) && item.dueMs <= now);
    const sends = [];
    while (due.length > 0) {
      const batch = takeBatch(due);
      for (const item of batch) this.inFlight.add(item.event.id);
      sends.push(this.send(batch));
    }
    this.schedule();
    return Promise.all(sends).then(() => undefined);
  }

  /** Arms one timer for the earliest event waiting on its backoff. */
  schedule() {
    const now = this.now();
    const waiting = this.outbox().filter(
      (item) => !this.inFlight.has(item.event.id) && !this.parked.has(item.event.id),
    );
    const next = Math.min(...waiting.map((item) => item.dueMs));
    if (!Number.isFinite(next) || next >= this.flushAt) return;
    if (this.flushTimer !== undefined) this.clearTimer(this.flushTimer);
    this.flushAt = next;
    this.flushTimer = this.setTimer(() => {
      this.flushTimer = undefined;
      this.flushAt = Infinity;
      this.flush();
    }, Math.max(0, next - now));
  }

  async send(batch) {
    const body = JSON.stringify(batch.map((item) => item.event));
    let response;
    try {
      // text/plain: a "simple" cross-origin request (no preflight), which the events route
      // reads as JSON; keepalive lets it finish while the page unloads.
      response = await this.fetch(`${this.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "text/plain;charset=UTF-8" },
        body,
        keepalive: true,
        credentials: "omit",
      });
    } catch (err) {
      this.retryLater(batch, 0, `network: ${err && err.message ? err.message : err}`);
      return;
    }
    if (response.ok) {
      let report;
      try {
        report = await response.json();
      } catch (_) {
        this.retryLater(batch, 0, "unreadable answer");
        return;
      }
      this.acknowledge(batch, report);
      return;
    }
    const detail = await problemDetail(response);
    if (RETRIABLE_STATUSES.has(response.status)) {
      this.retryLater(batch, retryAfterMs(response, this.now()), `HTTP ${response.status}: ${detail}`);
    } else if (batch.length > 1) {
      // One event can make a whole batch refused (a unit event without the events key):
      // send each alone, so the others still land.
      this.update(batch, (item) => ({ ...item, solo: true, dueMs: 0 }));
      this.flush();
    } else {
      this.drop(batch, { status: "failed", httpStatus: response.status, detail });
    }
  }

  /** Removes a batch from the in-flight set and rewrites its items in the outbox. */
  update(batch, change) {
    const ids = new Set(batch.map((item) => item.event.id));
    for (const id of ids) this.inFlight.delete(id);
    const items = [];
    for (const item of this.outbox()) {
      if (!ids.has(item.event.id)) items.push(item);
      else {
        const changed = change(item);
        if (changed) items.push(changed);
      }
    }
    this.saveOutbox(items);
  }

  acknowledge(batch, report) {
    const rejections = new Map();
    for (const r of report.rejections ?? []) rejections.set(r.index, r);
    const now = this.now();
    // `not_confirmed`: the event of an `on_render` assignment arrived before the page's
    // `rendered()` confirmation (a beacon, which nothing orders before this post). The server
    // did not keep its id, so it stays in the outbox and goes again after the retry backoff,
    // up to `retry.attempts` times (counted in the outbox, across pages): an assignment that
    // is never confirmed never counts, and its event must not wait in the outbox forever.
    const waitForConfirmation = new Map();
    batch.forEach((item, index) => {
      const rejection = rejections.get(index);
      const waits = item.unconfirmed ?? 0;
      if (rejection && rejection.reason === "not_confirmed" && waits + 1 < this.retry.attempts) {
        const step = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** waits);
        const delay = step * (0.5 + this.random() / 2);
        waitForConfirmation.set(item.event.id, { ...item, unconfirmed: waits + 1, dueMs: now + delay });
      }
    });
    this.update(batch, (item) => waitForConfirmation.get(item.event.id) ?? null);
    batch.forEach((item, index) => {
      const rejection = rejections.get(index);
      if (waitForConfirmation.has(item.event.id)) return;
      if (rejection) {
        // A token from an older revision or an unknown experiment: the cached assignment is
        // stale, so the next assign asks the server again.
        if (["stale_revision", "bad_token", "unknown_experiment", "outside_window"].includes(rejection.reason) && item.unit !== undefined) {
          this.forget(item.unit, item.event.experiment);
        }
        this.settle(item.event.id, {
          id: item.event.id,
          status: "rejected",
          reason: rejection.reason,
          detail: rejection.detail,
        });
      } else {
        const outcome = { id: item.event.id, status: "accepted" };
        if (batch.length === 1) {
          // Alone in its batch, the counts say exactly what happened to it.
          if (report.applied === 1) outcome.outcome = "applied";
          else if (report.duplicate === 1) outcome.outcome = "duplicate";
          else if (report.already_rewarded === 1) outcome.outcome = "already_rewarded";
        }
        this.settle(item.event.id, outcome);
      }
    });
    this.schedule();
  }

  retryLater(batch, serverDelayMs, detail) {
    const now = this.now();
    const exhausted = [];
    this.update(batch, (item) => {
      const attempts = item.attempts + 1;
      const tries = (this.tries.get(item.event.id) ?? 0) + 1;
      this.tries.set(item.event.id, tries);
      // Exponential backoff with jitter in [½, 1] of the step, so many pages that failed at
      // once do not retry at once; never sooner than the server's Retry-After.
      const step = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (attempts - 1));
      const delay = Math.max(serverDelayMs, step * (0.5 + this.random() / 2));
      if (tries >= this.retry.attempts) exhausted.push(item);
      return { ...item, attempts, dueMs: now + delay };
    });
    for (const item of exhausted) {
      // Still in the outbox: a later page (or a later flush) tries again, with the same id.
      this.parked.add(item.event.id);
      this.tries.delete(item.event.id);
      this.settle(item.event.id, { id: item.event.id, status: "queued", detail });
    }
    this.schedule();
  }

  drop(batch, outcome) {
    this.update(batch, () => null);
    for (const item of batch) this.settle(item.event.id, { id: item.event.id, ...outcome });
    this.schedule();
  }

  /** For `pagehide`: hands every unsent event to `navigator.sendBeacon`. A beacon reports no
   * answer, so the events stay in the outbox; the next page resends them and the server
   * counts each id once. */
  flushBeacon() {
    if (!this.sendBeacon) return false;
    const pending = this.outbox().filter((item) => !this.inFlight.has(item.event.id));
    let sent = true;
    while (pending.length > 0) {
      const batch = takeBatch(pending);
      const body = JSON.stringify(batch.map((item) => item.event));
      sent = this.sendBeacon(`${this.url}/v1/events`, body) && sent;
    }
    return sent;
  }
}

/** Takes the next batch off `items` (in place): at most MAX_BATCH_EVENTS events and
 * MAX_BATCH_BYTES of JSON, and an event marked `solo` alone. */
function takeBatch(items) {
  const batch = [items.shift()];
  if (batch[0].solo) return batch;
  let bytes = JSON.stringify(batch[0].event).length;
  while (items.length > 0 && batch.length < MAX_BATCH_EVENTS && !items[0].solo) {
    const size = JSON.stringify(items[0].event).length + 1;
    if (bytes + size > MAX_BATCH_BYTES) break;
    bytes += size;
    batch.push(items.shift());
  }
  return batch;
}

function fromServer(a) {
  return {
    experiment: a.experiment,
    variant: a.variant,
    payload: a.payload ?? null,
    token: a.token ?? null,
    sticky: Boolean(a.sticky),
    rewardUntilMs: a.reward_until_ms ?? null,
    degraded: Boolean(a.degraded),
    confirm: Boolean(a.confirm),
    source: "server",
  };
}

function fromCache(id, entry) {
  return {
    experiment: id,
    variant: entry.variant,
    payload: entry.payload ?? null,
    token: entry.token,
    sticky: true,
    rewardUntilMs: entry.rewardUntilMs,
    confirm: Boolean(entry.confirm),
    source: "cache",
  };
}

/** The `detail` of a problem+json answer, else its status text. */
async function problemDetail(response) {
  try {
    const problem = await response.json();
    if (problem && typeof problem.detail === "string") return problem.detail;
  } catch (_) {
    // Not JSON.
  }
  return response.statusText || `HTTP ${response.status}`;
}

/** A client for the banditd server at `options.url`. */
export function createClient(options) {
  return new BanditdClient(options);
}
