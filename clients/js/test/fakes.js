// Fakes for the client's environment: a clock with timers, localStorage, and a scripted
// fetch that records every request.

export class FakeClock {
  constructor(startMs = 1_700_000_000_000) {
    this.nowMs = startMs;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.nowMs;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.nowMs + ms, fn, ms });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** Delays of the timers armed now, sorted. */
  pendingDelays() {
    return [...this.timers.values()].map((t) => t.at - this.nowMs).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order (and the promises they settle). */
  async advance(ms) {
    const target = this.nowMs + ms;
    for (;;) {
      await settle();
      let next;
      for (const [id, timer] of this.timers) {
        if (timer.at <= target && (!next || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.nowMs = Math.max(this.nowMs, next[1].at);
      next[1].fn();
    }
    this.nowMs = target;
    await settle();
  }
}

/** Lets every queued promise callback (and the ones they queue) run. */
export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

/** localStorage as Safari's private mode had it: every call throws. */
export class BrokenStorage {
  getItem() {
    throw new Error("SecurityError");
  }
  setItem() {
    throw new Error("QuotaExceededError");
  }
  removeItem() {
    throw new Error("SecurityError");
  }
}

/** A fetch answered by `handler(request)`, which returns a Response, a promise of one, or
 * throws; every request is recorded with its parsed JSON body. */
export function fakeFetch(handler) {
  const requests = [];
  const fetch = async (url, init = {}) => {
    const request = {
      url,
      method: init.method,
      headers: init.headers ?? {},
      keepalive: init.keepalive,
      body: init.body === undefined ? undefined : JSON.parse(init.body),
    };
    requests.push(request);
    return handler(request, requests.length);
  };
  return { fetch, requests };
}

export function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function problem(status, detail, headers = {}) {
  return new Response(JSON.stringify({ title: "error", status, detail }), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** The server's answer to POST /v1/events for `events`, all applied. */
export function applied(events) {
  return json({
    received: events.length,
    applied: events.length,
    duplicate: 0,
    already_rewarded: 0,
    rejected: 0,
    all_rejected: false,
    rejected_by_reason: {},
    rejections: [],
    rejections_omitted: 0,
  });
}
