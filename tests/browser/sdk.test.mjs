// The browser client (clients/js/, served at /v1/sdk.js) in a real page of another origin:
// assign, reload (the cached assignment is reused: no second request), convert, and the
// server's counts say exactly that. The page is served by a tiny static server on its own
// port, so every call to banditd is cross-origin and goes through its CORS.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ROOT, api, launchBrowser, startServer } from './harness.mjs';

const EXPERIMENT = 'hero';
const EVENTS_KEY = 'browser-test-events-key';

const HERO = `
id: hero
description: Which hero headline turns visitors into sign-ups?
owner: growth
status: running
assignment: sticky
reward: { window: 7d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: control
variants:
  - id: control
    payload: { headline: "Build faster" }
  - id: bold
    payload: { headline: "Ship in a day" }
`;

/** The page: loads the client as a module from `sdkUrl`, assigns, renders, converts. */
function page({ sdkUrl, banditdUrl }) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,"></head>
<body>
<main>
  <h1 id="headline">…</h1>
  <button id="signup" type="button">Sign up</button>
</main>
<script type="module">
  import { createClient } from ${JSON.stringify(sdkUrl)};
  const client = createClient({
    url: ${JSON.stringify(banditdUrl)},
    timeoutMs: 1500,
    defaults: { hero: { variant: "control", payload: { headline: "Build faster" } } },
  });
  const unit = new URLSearchParams(location.search).get("unit");
  const result = await client.assign(unit, ["hero"]);
  const hero = result.assignments.hero;
  document.getElementById("headline").textContent = hero.payload.headline;
  window.assigned = result;
  document.getElementById("signup").addEventListener("click", async () => {
    window.tracked = await client.track({ experiment: "hero", unit });
  });
</script>
</body>
</html>`;
}

/** A static server on a free port: `/` is the page, `/banditd.js` the npm package's file. */
async function staticServer(render) {
  const sdk = readFileSync(join(ROOT, 'clients/js/src/banditd.js'), 'utf8');
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://page').pathname;
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(render());
    } else if (path === '/banditd.js') {
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      response.end(sdk);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not found');
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((done) => server.close(done)),
  };
}

let site;
let banditd;
let browser;
let render = () => '';

before(async () => {
  site = await staticServer(() => render());
  banditd = await startServer({
    experiments: { 'hero.yaml': HERO },
    args: ['--cors-origin', site.origin],
    // With an events key set, a browser still converts: its events carry the signed token.
    env: { BANDITD_EVENTS_KEY: EVENTS_KEY },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await banditd?.stop();
  await site?.close();
});

/** The requests a page makes to banditd, by method and path. */
function recordBanditdRequests(page) {
  const seen = [];
  page.on('request', (request) => {
    if (request.url().startsWith(banditd.url)) {
      seen.push({
        method: request.method(),
        path: new URL(request.url()).pathname,
        contentType: request.headers()['content-type'],
        body: request.postData(),
      });
    }
  });
  return seen;
}

test('a page assigns once, keeps its variant across a reload, converts, and the server counts it', async () => {
  render = () => page({ sdkUrl: `${banditd.url}/v1/sdk.js`, banditdUrl: banditd.url });
  const tab = await browser.newPage();
  const requests = recordBanditdRequests(tab);

  await tab.goto(`${site.origin}/?unit=alice`);
  await tab.waitForFunction(() => window.assigned !== undefined);
  const first = await tab.evaluate(() => window.assigned.assignments.hero);
  assert.equal(first.source, 'server');
  assert.ok(['control', 'bold'].includes(first.variant), first.variant);
  assert.ok(first.token, 'a counted sticky assignment has a token');
  const shown = await tab.textContent('#headline');
  assert.equal(shown, first.variant === 'bold' ? 'Ship in a day' : 'Build faster');
  const assigns = () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/assign');
  assert.equal(assigns().length, 1);

  await tab.reload();
  await tab.waitForFunction(() => window.assigned !== undefined);
  const second = await tab.evaluate(() => window.assigned.assignments.hero);
  assert.equal(second.source, 'cache');
  assert.equal(second.variant, first.variant);
  assert.equal(await tab.textContent('#headline'), shown);
  assert.equal(assigns().length, 1, 'the reload asked the server again');

  await tab.click('#signup');
  await tab.waitForFunction(() => window.tracked !== undefined);
  const tracked = await tab.evaluate(() => window.tracked);
  assert.equal(tracked.status, 'accepted', JSON.stringify(tracked));
  assert.equal(tracked.outcome, 'applied');
  const posts = requests.filter((r) => r.method === 'POST' && r.path === '/v1/events');
  assert.equal(posts.length, 1);
  // A simple cross-origin request (no preflight) that carries the token, not the unit: it
  // needs no events key.
  assert.match(posts[0].contentType, /^text\/plain/);
  const [event] = JSON.parse(posts[0].body);
  assert.equal(event.token, first.token);
  assert.equal(event.unit, undefined);
  assert.equal(event.experiment, EXPERIMENT);
  assert.ok(event.id);

  const report = await api(banditd.url, `/v1/experiments/${EXPERIMENT}`);
  assert.equal(report.status, 200, report.text);
  const arms = Object.fromEntries(report.json.arms.map((arm) => [arm.variant, arm]));
  assert.equal(arms[first.variant].exposures, 1);
  assert.equal(arms[first.variant].rewards, 1);
  const other = first.variant === 'bold' ? 'control' : 'bold';
  assert.equal(arms[other].exposures, 0);
  assert.equal(arms[other].rewards, 0);

  // The outbox is empty once the server acknowledged the event.
  assert.equal(await tab.evaluate(() => localStorage.getItem('banditd:outbox')), null);
  assert.deepEqual(tab.consoleErrors, []);
});

test('a page whose banditd is down renders its default at once and breaks nothing', async () => {
  // The client from the page's own origin (the npm package's file), a server that refuses.
  const down = `http://127.0.0.1:9`;
  render = () => page({ sdkUrl: `${site.origin}/banditd.js`, banditdUrl: down });
  const tab = await browser.newPage();
  const started = Date.now();
  await tab.goto(`${site.origin}/?unit=bob`);
  await tab.waitForFunction(() => window.assigned !== undefined);
  assert.ok(Date.now() - started < 10_000);
  const hero = await tab.evaluate(() => window.assigned.assignments.hero);
  assert.equal(hero.source, 'fallback');
  assert.equal(hero.variant, 'control');
  assert.equal(await tab.textContent('#headline'), 'Build faster');
  const errors = await tab.evaluate(() => window.assigned.errors.map((e) => e.error));
  assert.deepEqual(errors, ['network']);
  // The only errors are the refused requests themselves: nothing thrown in the page.
  assert.ok(
    tab.consoleErrors.every((line) => line.includes('127.0.0.1:9/') || line.includes('ERR_')),
    tab.consoleErrors.join('\n'),
  );
  assert.ok(!tab.consoleErrors.some((line) => line.startsWith('page error')));
});
