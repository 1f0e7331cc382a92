// A page's use of the client, type-checked against ../src/banditd.d.ts by `npm run typecheck`
// (scripts/test.sh): the hand-written types must describe what banditd.js does.
import {
  BanditdClient,
  createClient,
  type AssignedVariant,
  type Assignments,
  type ClientOptions,
  type TrackResult,
} from "../src/banditd.js";

const options: ClientOptions = {
  url: "https://bandit.example.com",
  timeoutMs: 800,
  defaults: { "homepage-headline": { variant: "control", payload: { headline: "Build faster" } } },
  retry: { baseMs: 500, maxMs: 30_000, attempts: 8 },
  storage: null,
};
const client: BanditdClient = createClient(options);

export async function render(unit: string): Promise<string | null> {
  const answer: Assignments = await client.assign(unit, ["homepage-headline"]);
  const hero: AssignedVariant = answer.assignments["homepage-headline"];
  const source: "server" | "cache" | "fallback" = hero.source;
  const until: number | null = hero.rewardUntilMs;
  if (answer.timedOut || answer.errors.length > 0 || until === null || source === "fallback") {
    return hero.variant;
  }
  const result: TrackResult = await client.track({ experiment: "homepage-headline", unit, reward: 1 });
  await client.track({ experiment: "homepage-headline", unit, metric: "refunds" });
  const status: "accepted" | "rejected" | "queued" | "failed" = result.status;
  await client.flush();
  client.forget(unit, "homepage-headline");
  return client.flushBeacon() ? status : hero.variant;
}

// @ts-expect-error: `url` is required.
createClient({});
// @ts-expect-error: experiments are a list of ids.
client.assign("u", "homepage-headline");
// @ts-expect-error: an event names its experiment.
client.track({ unit: "u" });
