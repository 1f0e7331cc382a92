// The browser-test harness: starts the real banditd binary on a temp store and a free port, and
// Debian's headless Chromium driven over CDP by playwright-core (no browser download: the
// system's /usr/bin/chromium). scripts/test.sh installs both and builds the binary first.
//
//   const server = await startServer({ experiments: { 'a.yaml': yaml } });
//   const browser = await launchBrowser();
//   const page = await browser.newPage({ width: 390 });
//   await page.goto(`${server.url}/ui/`);
//   assert.deepEqual(page.consoleErrors, []);
//   await browser.close(); await server.stop();

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository's root (two levels above this file). */
export const ROOT = resolve(HERE, '..', '..');

/** The browser: Debian's package (`chromium`), never a downloaded build. */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Flags for a quiet, self-contained headless Chromium: no network of its own, no GPU. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/** The debug binary that `cargo build` wrote (`$BANDITD_BIN` overrides it). */
export function binaryPath() {
  if (process.env.BANDITD_BIN) return process.env.BANDITD_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
  const path = join(target, 'debug', 'banditd');
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`cargo build --bin banditd\` first`);
  }
  return path;
}

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts `banditd serve` on 127.0.0.1 with port 0 (the kernel picks a free port; the address is
 * read from the "listening on" log line), a fresh temp sled data dir, and an experiments folder:
 * `experimentsDir` as given, else a temp folder holding `experiments` ({file name: YAML text}),
 * else a temp copy of the repository's experiments/. Resolves once `GET /readyz` answers 200.
 *
 * `args` are appended to `serve`'s arguments; `env` is the whole environment besides PATH (the
 * keys `BANDITD_ADMIN_KEY` etc. go here). Returns `{url, experimentsDir, dataDir, log, stop()}`;
 * `log` holds the server's stderr lines.
 */
export async function startServer({ experimentsDir, experiments, args = [], env = {} } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'banditd-browser-'));
  const dataDir = join(root, 'data');
  if (!experimentsDir) {
    experimentsDir = join(root, 'experiments');
    if (experiments) {
      mkdirSync(experimentsDir);
      for (const [name, text] of Object.entries(experiments)) {
        writeFileSync(join(experimentsDir, name), text);
      }
    } else {
      cpSync(join(ROOT, 'experiments'), experimentsDir, { recursive: true });
    }
  }
  const child = spawn(
    binaryPath(),
    [
      '--log-format', 'json',
      'serve',
      '--bind', '127.0.0.1:0',
      '--workers', '2',
      '--data-dir', dataDir,
      '--experiments', experimentsDir,
      ...args,
    ],
    {
      env: { PATH: process.env.PATH, RUST_LOG: 'info', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  running.add(child);
  const log = [];
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const address = await new Promise((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`banditd did not listen within ${STARTUP_TIMEOUT_MS} ms:\n${log.join('\n')}`)),
      STARTUP_TIMEOUT_MS,
    );
    let pending = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        log.push(line);
        const found = /listening on http:\/\/([^\s"]+)/.exec(line);
        if (found) {
          clearTimeout(timer);
          done(found[1]);
        }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`banditd exited (${code ?? signal}) before listening:\n${log.join('\n')}`));
    });
  });
  const url = `http://${address}`;
  await waitReady(url);

  let stopped;
  return {
    url,
    experimentsDir,
    dataDir,
    log,
    /** SIGTERM, then SIGKILL if it has not exited in time; removes the temp folders. */
    stop() {
      stopped ??= (async () => {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
        running.delete(child);
        rmSync(root, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

async function waitReady(url) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.status === 200) return;
    } catch {
      // not accepting yet
    }
    if (Date.now() > deadline) throw new Error(`${url}/readyz never answered 200`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

/**
 * Launches headless Chromium. Playwright gives every launch a fresh temporary
 * `--user-data-dir` (a new profile, removed on close); every `newPage` opens in its own browser
 * context, so cookies and storage never leak between pages.
 *
 * `newPage({width, height, ...contextOptions})` resolves to a playwright Page with
 * `page.consoleErrors`: every console error, uncaught page error and failed request, as text.
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    async newPage({ width = 1280, height = 900, ...contextOptions } = {}) {
      const context = await browser.newContext({ viewport: { width, height }, ...contextOptions });
      const page = await context.newPage();
      page.consoleErrors = [];
      page.on('console', (message) => {
        if (message.type() !== 'error') return;
        const where = message.location()?.url;
        page.consoleErrors.push(`console: ${message.text()}${where ? ` (${where})` : ''}`);
      });
      page.on('pageerror', (error) => page.consoleErrors.push(`page error: ${error.message}`));
      page.on('requestfailed', (request) =>
        page.consoleErrors.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
      );
      return page;
    },
    async close() {
      await browser.close();
    },
  };
}

const require = createRequire(import.meta.url);
let axeSource;

/**
 * Runs axe-core (from npm, injected through CDP so a page's Content-Security-Policy does not
 * block it) on `page`; resolves to the violations whose impact is in `impacts`.
 */
export async function axeViolations(page, impacts = ['serious', 'critical']) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => globalThis.axe.run(document));
  return result.violations
    .filter((violation) => impacts.includes(violation.impact))
    .map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      targets: violation.nodes.map((node) => node.target.join(' ')),
    }));
}

/** `fetch` + JSON, with the status; `key` becomes `Authorization: Bearer …`. */
export async function api(url, path, { method = 'GET', body, key } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}
