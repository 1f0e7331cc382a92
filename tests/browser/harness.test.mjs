// The harness itself: the server starts on a free port and is ready, the browser loads a page
// from it, console errors are caught, and axe-core runs under the page's own policies.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { api, axeViolations, launchBrowser, startServer } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the server answers on the address it logged', async () => {
  const ready = await api(server.url, '/readyz');
  assert.equal(ready.status, 200);
  const list = await api(server.url, '/v1/experiments');
  assert.equal(list.status, 200, list.text);
});

test('a page error in the browser is captured as a console error', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/healthz`);
  await page.evaluate(() => {
    console.error('seen by the harness');
  });
  // (The browser's own /favicon.ico request may add a 404 line before it.)
  assert.ok(
    page.consoleErrors.some((line) => line.startsWith('console: seen by the harness')),
    page.consoleErrors.join('\n'),
  );
});

test('axe-core runs on a served page', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/healthz`);
  const violations = await axeViolations(page, ['minor', 'moderate', 'serious', 'critical']);
  assert.ok(Array.isArray(violations));
});
