// Types of banditd.js (hand-written: the client is plain JavaScript so that the file the
// package ships is the file the server serves at GET /v1/sdk.js, with no build step).

/** A storage with the Web Storage methods the client uses (localStorage by default). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** What a page renders for an experiment without an answer from the server. */
export interface DefaultVariant {
  variant: string;
  payload?: unknown;
}

export interface RetryOptions {
  /** First backoff step in ms (default 500); each failed try doubles it. */
  baseMs?: number;
  /** Longest backoff step in ms (default 30000). */
  maxMs?: number;
  /** Tries in this page before `track` resolves `queued` (default 8); the event stays in
   * the outbox and a later page retries it. */
  attempts?: number;
}

export interface ClientOptions {
  /** The banditd server, e.g. `https://bandit.example.com` (allow the page's origin with
   * `--cors-origin`). */
  url: string;
  /** Only when the server sets `BANDITD_ASSIGN_KEY`: sent on assign requests. A browser can
   * read it; events never need a key, they carry the assignment's token. */
  key?: string;
  /** Longest wait for an assignment before the fallback is rendered (default 800 ms). */
  timeoutMs?: number;
  /** Per experiment id, what to render when the server cannot answer in time. */
  defaults?: Record<string, DefaultVariant>;
  retry?: RetryOptions;
  /** Prefix of the storage keys (default `banditd:`). */
  prefix?: string;
  /** `null` keeps everything in memory for this page only. */
  storage?: StorageLike | null;
  /** `false`: do not send the outbox on creation nor by beacon on `pagehide`. */
  autoFlush?: boolean;
  /** For tests and non-browser hosts. */
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  randomId?: () => string;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (timer: unknown) => void;
  sendBeacon?: (url: string, body: string) => boolean;
}

export interface AssignedVariant {
  experiment: string;
  /** `null` only for a fallback without any known default: render the page's own default. */
  variant: string | null;
  payload: unknown;
  /** Proof of the assignment for reward events; `null` for fallbacks. */
  token: string | null;
  sticky: boolean;
  /** When the token stops crediting rewards (Unix ms); the cache keeps the entry until then. */
  rewardUntilMs: number | null;
  /** Only for answers from the server: it could not record the exposure. */
  degraded?: boolean;
  /** `exposure: on_render`: nothing counts until the page calls `rendered(assignment)`. */
  confirm?: boolean;
  source: "server" | "cache" | "fallback";
}

/** An `errors` entry of the server's answer, or the client's own (`timeout`, `network`,
 * `http_<status>`, with `experiment: null`). */
export interface AssignError {
  experiment: string | null;
  error: string;
  detail: string;
  fallback?: DefaultVariant | null;
}

export interface Assignments {
  unit: string;
  /** By experiment id: every listed experiment has an entry (without a list, those the
   * server served, or on failure those cached or given in `defaults`). */
  assignments: Record<string, AssignedVariant>;
  errors: AssignError[];
  /** The server did not answer within `timeoutMs`. */
  timedOut: boolean;
}

export interface TrackEvent {
  experiment: string;
  /** Sticky experiments: the unit; the cached token for it is sent when there is one. */
  unit?: string;
  /** The token from `assign`; required for per-request experiments. */
  token?: string;
  /** One of the experiment's `guardrails:` metrics (refunds, errors); absent: the primary
   * reward. */
  metric?: string;
  /** In [0, 1]; 1 when absent. */
  reward?: number;
  /** Unix ms or RFC 3339. */
  timestamp?: number | string;
  /** Idempotency key; generated (and kept until acknowledged) when absent. */
  id?: string;
}

export interface TrackResult {
  id: string;
  /** `accepted`: applied, or already known (retry, second conversion). `rejected`: the
   * server refused this event (see `reason`). `queued`: not delivered yet, still in the
   * outbox. `failed`: refused for good (e.g. 401), removed from the outbox. */
  status: "accepted" | "rejected" | "queued" | "failed";
  /** For an event sent alone: `applied`, `duplicate` or `already_rewarded`. */
  outcome?: "applied" | "duplicate" | "already_rewarded";
  reason?: string;
  detail?: string;
  httpStatus?: number;
}

export declare class BanditdClient {
  constructor(options: ClientOptions);
  readonly url: string;
  assign(unit: string, experiments?: string[]): Promise<Assignments>;
  /** Queues a reward event in the outbox and sends it; resolves with its final outcome (an
   * event refused `not_confirmed` is sent again after the retry backoff first). */
  track(event: TrackEvent): Promise<TrackResult>;
  /** Confirms that the page showed an `exposure: on_render` assignment (a beacon carrying
   * its token); resolves whether it was handed over. Nothing to do, false, for others. */
  rendered(assignment: AssignedVariant): Promise<boolean>;
  /** Sends every due event of the outbox now. */
  flush(): Promise<void>;
  /** Hands unsent events to `navigator.sendBeacon` (done on `pagehide`). */
  flushBeacon(): boolean;
  /** Drops a unit's cached assignments (one experiment's, or all). */
  forget(unit: string, experiment?: string): void;
}

export declare function createClient(options: ClientOptions): BanditdClient;
