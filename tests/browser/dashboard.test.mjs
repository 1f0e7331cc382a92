// The dashboard (/ui/) in headless Chromium against a live server with real traffic: every
// page loads without console errors and passes axe-core; the arm table shows the API's numbers
// rounded by the stated rule; every plot has one series per arm; login works and a wrong key
// is refused; auto-refresh sends one request per interval and none while the tab is hidden.
// Screenshots of every page at desktop and phone width go to docs/screenshots/.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ROOT, api, axeViolations, launchBrowser, startServer } from './harness.mjs';

const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');
const ADMIN_KEY = 'browser-test-admin-key-0123456789';

// `delay: off`: the delay-corrected figures move as exposures age, so the page and the API,
// read a moment apart, would differ in the last digits (the delay columns are checked over
// HTTP in tests/api/delay.rs).
const HEADLINE = `
id: homepage-headline
description: Which hero headline turns visitors into sign-ups?
owner: growth-analytics
status: running
assignment: sticky
reward: { window: 7d, delay: off }
policy: { burn_in: 0, min_share: 0.05 }
stopping: { prob_best: 0.95, max_expected_loss: 0.001 }
default_variant: control
variants:
  - id: control
    payload: { headline: "Build faster" }
  - id: bold
    payload: { headline: "Ship in a day" }
  - id: short
    payload: { headline: "Go" }
`;

const RANKING = `
id: search-ranking
description: Which ranking weights keep people clicking?
owner: search
status: running
revision: 1
assignment: per_request
reward: { window: 1d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: a
variants:
  - id: a
    payload: { weights: [1, 0] }
  - id: b
    payload: { weights: [0.5, 0.5] }
`;

const DRAFT = `
id: checkout-button
description: Does a green checkout button sell more?
owner: payments
status: draft
default_variant: blue
variants:
  - id: blue
    payload: { colour: blue }
  - id: green
    payload: { colour: green }
`;

const EXPERIMENTS = {
  '01-headline.yaml': HEADLINE,
  '02-ranking.yaml': RANKING,
  '03-draft.yaml': DRAFT,
};

/** Conversion rate per variant: deterministic traffic, so the pages look the same each run. */
const RATES = { control: 0.1, bold: 0.25, short: 0.05, a: 0.3, b: 0.2 };

/** A fixed-seed generator (mulberry32), so the traffic is the same on every run. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** Rounds `from`..`to` of assignments and conversions, a history interval apart. */
async function seedTraffic(url, { from = 0, to = 4, perRound = 60, key } = {}) {
  const draw = random(7 + from);
  for (let round = from; round < to; round += 1) {
    const events = [];
    for (let i = 0; i < perRound; i += 1) {
      const unit = `u${round}-${i}`;
      const sticky = await api(url, `/v1/experiments/homepage-headline/assign?unit=${unit}`);
      assert.equal(sticky.status, 200, sticky.text);
      if (draw() < RATES[sticky.json.variant]) {
        events.push({ id: `e-${unit}`, experiment: 'homepage-headline', unit });
      }
      const ranked = await api(url, `/v1/experiments/search-ranking/assign?unit=${unit}`);
      assert.equal(ranked.status, 200, ranked.text);
      if (draw() < RATES[ranked.json.variant]) {
        events.push({ id: `r-${unit}`, experiment: 'search-ranking', token: ranked.json.token });
      }
    }
    const posted = await api(url, '/v1/events', { method: 'POST', body: events, key });
    assert.equal(posted.status, 200, posted.text);
    await sleep(1_100);
  }
}

/** JavaScript's toFixed is the stated rule (half-up on the exact value). */
const proportion = (x) => x.toFixed(4);
const loss = (x) => x.toFixed(6);
const rewardSum = (x) => {
  const text = x.toFixed(4);
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
};
const count = (n) => n.toLocaleString('en-US');

/** Every page of the open server, by screenshot name. */
const PAGES = {
  experiments: '/ui/',
  experiment: '/ui/experiments/homepage-headline',
  'experiment-earlier-revision': '/ui/experiments/search-ranking?revision=1',
  config: '/ui/config',
};

let server;
let keyed;
let browser;

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer({ experiments: EXPERIMENTS, args: ['--history-interval', '1s'] });
  keyed = await startServer({
    experiments: EXPERIMENTS,
    args: ['--history-interval', '1s', '--ui-refresh', '1s'],
    env: { BANDITD_ADMIN_KEY: ADMIN_KEY },
  });
  browser = await launchBrowser();
  await seedTraffic(server.url, { from: 0, to: 2 });
  // A revision bump half-way: revision 1 of search-ranking keeps its data, shown as archived.
  writeFileSync(join(server.experimentsDir, '02-ranking.yaml'), RANKING.replace('revision: 1', 'revision: 2'));
  const bumped = await api(server.url, '/v1/admin/reload', { method: 'POST' });
  assert.equal(bumped.status, 200, bumped.text);
  await seedTraffic(server.url, { from: 2, to: 4 });
  // A refused reload, so that the configuration page shows its file:line:col.
  writeFileSync(
    join(server.experimentsDir, '04-broken.yaml'),
    'id: broken\nowner: nobody\nstatus: sideways\nvariants: []\n',
  );
  const reload = await api(server.url, '/v1/admin/reload', { method: 'POST' });
  assert.equal(reload.status, 422, reload.text);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await keyed?.stop();
});

describe('every page', () => {
  for (const [name, path] of Object.entries(PAGES)) {
    test(`${name} loads without console errors, passes axe-core, and is screenshotted`, async () => {
      for (const [width, height, label] of [
        [1920, 1080, 'desktop'],
        [390, 844, 'phone'],
      ]) {
        const page = await browser.newPage({ width, height });
        const response = await page.goto(`${server.url}${path}`);
        assert.equal(response.status(), 200, `${path}: ${response.status()}`);
        await page.waitForLoadState('networkidle');
        assert.deepEqual(page.consoleErrors, [], `${path} at ${width}px`);
        const violations = await axeViolations(page);
        assert.deepEqual(violations, [], `${path} at ${width}px: ${JSON.stringify(violations, null, 2)}`);
        // Nothing wider than the window: the layout works at this width (wide tables scroll
        // inside their own box).
        const overflow = await page.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        assert.ok(overflow <= 0, `${path} at ${width}px overflows by ${overflow}px`);
        await page.screenshot({ path: join(SCREENSHOTS, `${name}-${label}.png`), fullPage: true });
        await page.context().close();
      }
    });
  }

  test('pages work with JavaScript off, and only say they refresh when they do', async () => {
    const off = await browser.newPage({ javaScriptEnabled: false });
    await off.goto(`${server.url}/ui/experiments/homepage-headline`);
    assert.equal(await off.locator('table.arms tbody tr').count(), 3);
    assert.equal(await off.locator('figure.plot svg g.series').count(), 5 * 3);
    assert.equal(await off.isVisible('.as-of .js-only'), false);
    await off.context().close();
    const on = await browser.newPage();
    await on.goto(`${server.url}/ui/experiments/homepage-headline`);
    await on.waitForLoadState('load');
    assert.equal(await on.isVisible('.as-of .js-only'), true);
    await on.context().close();
  });

  test('the page of an unknown experiment is a 404 page without console errors', async () => {
    const page = await browser.newPage();
    const response = await page.goto(`${server.url}/ui/experiments/no-such-thing`);
    assert.equal(response.status(), 404);
    assert.match(await page.textContent('main'), /no-such-thing/);
    assert.deepEqual(
      page.consoleErrors.filter((line) => !line.includes('404')),
      [],
    );
    await page.context().close();
  });
});

describe('the experiment page', () => {
  test("the arm table's numbers are the API's, rounded by the stated rule", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/experiments/homepage-headline`);
    const report = (await api(server.url, '/v1/experiments/homepage-headline')).json;
    const rows = await page.$$eval('table.arms tbody tr', (trs) =>
      trs.map((tr) => ({
        variant: tr.dataset.variant,
        cells: Object.fromEntries(
          [...tr.querySelectorAll('td[data-field]')].map((td) => [
            td.dataset.field,
            {
              text: td.textContent.trim(),
              values: [...td.querySelectorAll('data')].map((d) => d.value),
              shown: [...td.querySelectorAll('data')].map((d) => d.textContent),
            },
          ]),
        ),
      })),
    );
    assert.deepEqual(
      rows.map((row) => row.variant),
      report.arms.map((arm) => arm.variant),
    );
    assert.ok(report.summary === undefined && report.exposures > 0, 'traffic was seeded');
    for (const [row, arm] of rows.map((r, i) => [r, report.arms[i]])) {
      const { cells } = row;
      const exact = (field) => cells[field].values.map(Number);
      assert.deepEqual(exact('exposures'), [arm.exposures]);
      assert.equal(cells.exposures.text, count(arm.exposures));
      assert.deepEqual(exact('rewards'), [arm.rewards]);
      assert.equal(cells.rewards.text, rewardSum(arm.rewards));
      assert.deepEqual(exact('rate'), [arm.rate]);
      assert.equal(cells.rate.text, proportion(arm.rate));
      assert.deepEqual(exact('mean'), [arm.posterior.mean]);
      assert.equal(cells.mean.text, proportion(arm.posterior.mean));
      const interval = arm.posterior.credible_interval;
      assert.deepEqual(exact('interval'), [interval.lower, interval.upper]);
      assert.equal(cells.interval.text, `[${proportion(interval.lower)}, ${proportion(interval.upper)}]`);
      assert.deepEqual(exact('prob_best'), [arm.prob_best]);
      assert.equal(cells.prob_best.text, proportion(arm.prob_best));
      assert.deepEqual(exact('expected_loss'), [arm.expected_loss]);
      assert.equal(cells.expected_loss.text, loss(arm.expected_loss));
      assert.deepEqual(exact('traffic_share'), [arm.traffic_share]);
      assert.equal(cells.traffic_share.text, proportion(arm.traffic_share));
      assert.equal(cells.retired.text, arm.retired ? 'yes' : 'no');
    }
    // The rule the numbers follow is stated on the page.
    assert.match(await page.textContent('footer'), /rounded half up/);
    await page.context().close();
  });

  test('every plot has a title, axes and one series and legend entry per arm', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/experiments/homepage-headline`);
    const variants = ['control', 'bold', 'short'];
    const plots = await page.$$eval('figure.plot', (figures) =>
      figures.map((figure) => ({
        kind: figure.dataset.plot,
        title: figure.querySelector('svg > title')?.textContent,
        series: [...figure.querySelectorAll('g.series')].map((g) => ({
          variant: g.dataset.variant,
          points: (g.querySelector('path.line')?.getAttribute('d').match(/[ML]/g) ?? []).length,
        })),
        legend: [...figure.querySelectorAll('g.legend-item')].map((g) => g.dataset.variant),
        ticks: figure.querySelectorAll('text.tick').length,
        axisTitles: figure.querySelectorAll('text.axis-title').length,
      })),
    );
    assert.deepEqual(
      plots.map((plot) => plot.kind),
      ['density', 'prob-best', 'traffic', 'exposures', 'rewards'],
    );
    for (const plot of plots) {
      assert.ok(plot.title, `${plot.kind} has a title`);
      assert.deepEqual(plot.series.map((s) => s.variant), variants, plot.kind);
      assert.deepEqual(plot.legend, variants, plot.kind);
      assert.equal(plot.axisTitles, 2, plot.kind);
      assert.ok(plot.ticks >= 4, `${plot.kind} has ticks`);
      // History was stored every second while traffic came in: several points per line.
      for (const series of plot.series) {
        assert.ok(series.points >= 2, `${plot.kind}/${series.variant}: ${series.points} points`);
      }
    }
    await page.context().close();
  });

  test('earlier revisions are selectable and shown as they were served', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/experiments/search-ranking`);
    await page.click('nav.revisions >> text=1');
    assert.match(page.url(), /revision=1$/);
    assert.match(await page.textContent('main'), /revision 1 of 2/);
    // Its data is still there, its own arms as the API reports them (an earlier revision's
    // variants are its own, not retired), and its own history is plotted.
    const report = (await api(server.url, '/v1/experiments/search-ranking?revision=1')).json;
    assert.ok(report.exposures > 0);
    const retired = await page.$$eval('table.arms td[data-field=retired]', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(retired, report.arms.map((arm) => (arm.retired ? 'yes' : 'no')));
    assert.ok(report.arms.some((arm) => !arm.retired), JSON.stringify(report.arms));
    const lines = await page.$$eval('figure[data-plot=exposures] g.series', (gs) => gs.length);
    assert.equal(lines, report.arms.length);
    await page.context().close();
  });

  test('the configuration page lists every file:line:col of the refused reload', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/config`);
    const config = (await api(server.url, '/v1/admin/config')).json;
    const shown = await page.$$eval('ul.reload-errors li', (items) => items.map((li) => li.textContent));
    assert.ok(config.last_error.errors.length > 0);
    assert.deepEqual(shown, config.last_error.errors);
    assert.ok(shown.some((line) => /04-broken\.yaml:\d+:\d+/.test(line)), shown.join('\n'));
    assert.equal(await page.textContent('code.version'), config.version);
    await page.context().close();
  });
});

describe('access with an admin key', () => {
  test('a page asks for the key once, refuses a wrong one and keeps a strict session cookie', async () => {
    const page = await browser.newPage({ width: 1280, height: 800 });
    await page.goto(`${keyed.url}/ui/experiments/homepage-headline`);
    assert.match(page.url(), /\/ui\/login\?next=/);
    await page.screenshot({ path: join(SCREENSHOTS, 'login-desktop.png') });
    assert.deepEqual(await axeViolations(page), []);

    await page.fill('#key', 'not-the-key');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/ui/login') && r.request().method() === 'POST'),
      page.click('button[type=submit]'),
    ]);
    assert.equal(refused.status(), 401);
    assert.match(await page.textContent('[role=alert]'), /not the admin key/);
    assert.equal(
      (await page.context().cookies()).find((c) => c.name === 'banditd_session'),
      undefined,
    );

    await page.fill('#key', ADMIN_KEY);
    await Promise.all([page.waitForURL(/\/ui\/experiments\/homepage-headline$/), page.click('button[type=submit]')]);
    const session = (await page.context().cookies()).find((c) => c.name === 'banditd_session');
    assert.ok(session, 'a session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.ok(session.expires > Date.now() / 1000, 'it expires');
    assert.ok(!session.value.includes(ADMIN_KEY));
    assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read it');
    const html = await page.content();
    assert.ok(!html.includes(ADMIN_KEY), 'the key is not in the page');
    // Signed in once: the other pages open without asking again.
    const config = await page.goto(`${keyed.url}/ui/config`);
    assert.equal(config.status(), 200);
    assert.deepEqual(page.consoleErrors.filter((l) => !l.includes('401')), []);

    await Promise.all([page.waitForURL(/\/ui\/login/), page.click('form.logout button')]);
    const again = await page.goto(`${keyed.url}/ui/`);
    assert.match(again.url(), /\/ui\/login/);
    await page.context().close();
  });

  test('a login form posted without its anti-forgery cookie is refused', async () => {
    const response = await fetch(`${keyed.url}/ui/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: ADMIN_KEY, csrf: 'guessed', next: '/ui/' }),
    });
    assert.equal(response.status, 403);
    assert.ok(!(response.headers.get('set-cookie') ?? '').includes('banditd_session'));
  });

  test('without a session the pages redirect and show no data', async () => {
    for (const path of ['/ui/', '/ui/config', '/ui/experiments/homepage-headline']) {
      const response = await fetch(`${keyed.url}${path}`, { redirect: 'manual' });
      assert.equal(response.status, 303, path);
      assert.match(response.headers.get('location'), /^\/ui\/login\?next=/);
    }
  });
});

describe('auto-refresh', () => {
  test('one request per interval while visible, none while the tab is hidden', async () => {
    const page = await browser.newPage();
    // Sign in through the form, as a person would.
    await page.goto(`${keyed.url}/ui/login`);
    await page.fill('#key', ADMIN_KEY);
    await Promise.all([page.waitForURL(/\/ui\/$/), page.click('button[type=submit]')]);
    let requests = 0;
    page.on('request', (request) => {
      if (request.url() === `${keyed.url}/ui/`) requests += 1;
    });
    // The server refreshes every second (--ui-refresh 1s).
    await sleep(3_500);
    assert.ok(requests >= 2 && requests <= 4, `${requests} refreshes in 3.5 s at 1 per second`);
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await sleep(300);
    const hiddenFrom = requests;
    await sleep(3_000);
    assert.equal(requests, hiddenFrom, 'no refresh while hidden');
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await sleep(500);
    assert.equal(requests, hiddenFrom + 1, 'one catch-up refresh when shown again');
    assert.deepEqual(page.consoleErrors, []);
    await page.context().close();
  });
});
