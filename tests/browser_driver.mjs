// A small Playwright driver for the browser tests: Debian's Chromium, driven over JSON lines.
//
// Started by tests/browser.py as `node tests/browser_driver.mjs OPTIONS_JSON`, inside the test
// run's network namespace (it inherits it). It launches /usr/bin/chromium with playwright-core
// (installed in web/ by `npm ci`; Playwright's own browser download is never used), then reads
// one command per line on stdin and answers one line on stdout:
//
//   {"id": 1, "op": "goto", "page": "p1", "url": "http://127.0.0.1:8787/"}
//   {"id": 1, "ok": true, "result": ...}      or      {"id": 1, "ok": false, "error": "..."}
//
// Every page records the requests it makes (method, URL, headers, body) and their response
// bodies when textual, and its console messages; the tests read them with "requests" and
// "console" to check that no secret ever reaches the browser.

import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(new URL('../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const options = JSON.parse(process.argv[2] ?? '{}');
const args = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
  // a page of a headless browser on a busy machine: never throttle its timers or renderer
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];
if (options.fakeAudio) {
  args.push(`--use-file-for-fake-audio-capture=${options.fakeAudio}%noloop`);
}

const context = await chromium.launchPersistentContext(options.userDataDir, {
  executablePath: options.executablePath ?? '/usr/bin/chromium',
  headless: true,
  args,
  ignoreDefaultArgs: ['--enable-automation'],
  viewport: { width: 1280, height: 900 },
  permissions: ['microphone'],
});

const pages = new Map();
let nextPage = 1;

function track(page) {
  const entry = { page, requests: [], console: [] };
  page.on('request', (request) => {
    entry.requests.push({
      method: request.method(),
      url: request.url(),
      headers: request.headers(),
      body: request.postData() ?? '',
      response: '',
    });
  });
  page.on('response', async (response) => {
    const found = entry.requests.find((r) => r.url === response.url() && !r.response);
    const type = response.headers()['content-type'] ?? '';
    if (found && /json|text|javascript|html/.test(type)) {
      try {
        found.response = await response.text();
      } catch {
        // a body that went away with its page
      }
    }
  });
  page.on('console', (message) => entry.console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => entry.console.push(`pageerror: ${error.message}`));
  return entry;
}

async function handle(command) {
  const entry = command.page ? pages.get(command.page) : undefined;
  const page = entry?.page;
  switch (command.op) {
    case 'newPage': {
      const id = `p${nextPage++}`;
      pages.set(id, track(await context.newPage()));
      return id;
    }
    case 'goto':
      await page.goto(command.url, { waitUntil: 'load' });
      return null;
    case 'evaluate':
      return await page.evaluate(command.expression);
    case 'waitFor':
      // a condition (a JavaScript expression), polled in the page until truthy
      await page.waitForFunction(command.expression, null, {
        timeout: command.timeout_ms,
        polling: 100,
      });
      return await page.evaluate(command.expression);
    case 'click':
      await page.click(command.selector);
      return null;
    case 'fill':
      await page.fill(command.selector, command.value);
      return null;
    case 'select':
      await page.selectOption(command.selector, command.value);
      return null;
    case 'setChecked':
      await page.setChecked(command.selector, command.value);
      return null;
    case 'press':
      await page.press(command.selector, command.key);
      return null;
    case 'text':
      return await page.innerText(command.selector);
    case 'content':
      return await page.content();
    case 'screenshot':
      await page.screenshot({ path: command.path, fullPage: true });
      return command.path;
    case 'requests':
      return entry.requests;
    case 'console':
      return entry.console;
    case 'closePage':
      await page.close();
      pages.delete(command.page);
      return null;
    case 'close':
      await context.close();
      return null;
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

process.stdout.write(JSON.stringify({ ready: true, version: context.browser()?.version() }) + '\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  let answer;
  try {
    answer = { id: command.id, ok: true, result: (await handle(command)) ?? null };
  } catch (error) {
    answer = { id: command.id, ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
  if (command.op === 'close') break;
}
process.exit(0);
