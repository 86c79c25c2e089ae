// ui_scale.js — opens the dashboard of a big lattice (tests/integration/ui_scale.sh)
// in Debian's chromium and measures what its first render costs.
//
//   node ui_scale.js API_URL
//
// Prints "point 0|1 NAME" lines (tests/integration/ui_scale.sh counts them),
// "figure NAME VALUE" lines, and "# text" diagnostics. Env: CHROMIUM,
// UI_SCREENSHOTS=DIR (saves ui-scale.png), UI_TIMEOUT_MS (hang guard, default 120000).
'use strict';
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const API = process.argv[2];
const ORIGIN = new URL(API).origin;
const TIMEOUT = Number(process.env.UI_TIMEOUT_MS || 120000);
const SHOTS = process.env.UI_SCREENSHOTS || '';
const POINTS = [
  'the first render completes',
  'it shows the totals of the summary (nodes and actors)',
  'every list request asks for one page (limit at most 100) and gets at most 100 items',
  'no console error, page error, failed request or HTTP error',
];
let n = 0;
const point = (pass, detail) => {
  if (!pass && detail) console.log(`# ${POINTS[n]}: ${detail}`);
  console.log(`point ${pass ? 0 : 1} ${POINTS[n++]}`);
};
const figure = (k, v) => console.log(`figure ${k} ${v}`);

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 1100 });
    const errors = [], lists = [], sizes = [];
    // GET /v1/chaos/report is 404 here (no --chaos-reports): the page expects
    // it, but Chrome logs it as a failed load; that one is let through.
    const report404 = (url) => /\/v1\/chaos\/report$/.test(url || '');
    page.on('console', (m) => {
      if (m.type() === 'error' && !report404(m.location() && m.location().url)) errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => errors.push(`failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
    page.on('response', async (r) => {
      if (r.status() >= 400 && !(r.status() === 404 && report404(r.url()))) errors.push(`HTTP ${r.status()} ${r.url()}`);
      if (r.request().resourceType() === 'eventsource') return; // a stream: it never ends
      let body;
      try { body = await r.buffer(); } catch { return; }
      const u = new URL(r.url());
      sizes.push({ url: r.url().slice(ORIGIN.length), bytes: body.length });
      if (/^\/v1\/(nodes|actors|commands|failovers|events)$/.test(u.pathname)) {
        let items = -1;
        try { items = JSON.parse(body.toString()).items.length; } catch { /* not a list */ }
        lists.push({ url: r.url().slice(ORIGIN.length), limit: u.searchParams.get('limit'), items });
      }
    });
    await page.goto(`${API}/ui/`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
    let ready = true;
    try {
      await page.waitForFunction(() => document.body.dataset.ready === 'true', { timeout: TIMEOUT, polling: 50 });
    } catch (e) { ready = false; }
    const readyMs = ready ? Number(await page.evaluate(() => document.body.dataset.readyMs)) : null;
    point(ready, `not within ${TIMEOUT} ms`);
    figure('first_render_ms', readyMs);
    const totals = await page.evaluate(() => ({
      nodes: document.querySelector('#card-nodes h3 b') && document.querySelector('#card-nodes h3 b').textContent,
      actors: document.querySelector('#card-actors h3 b') && document.querySelector('#card-actors h3 b').textContent,
      rows: document.querySelectorAll('#nodes tr[data-id]').length,
      actorRows: document.querySelectorAll('#actors tr[data-id]').length,
    }));
    const want = (process.env.UI_SCALE_WANT || '').split(' '); // "NODES ACTORS", from the shell
    point(totals.nodes === Number(want[0]).toLocaleString('en-US') && totals.actors === Number(want[1]).toLocaleString('en-US') &&
      totals.rows === 50 && totals.actorRows === 50, JSON.stringify(totals));
    await new Promise((r) => setTimeout(r, 1500)); // answers still being read
    const bad = lists.filter((l) => !(Number(l.limit) >= 1 && Number(l.limit) <= 100) || l.items > 100 || l.items < 0);
    point(lists.length > 0 && bad.length === 0, JSON.stringify(bad.slice(0, 5)));
    point(errors.length === 0, errors.slice(0, 10).join('; '));
    sizes.sort((a, b) => b.bytes - a.bytes);
    const api = sizes.filter((s) => s.url.startsWith('/v1/'));
    figure('requests', sizes.length + 1); // + the event stream
    figure('api_requests', api.length + 1);
    figure('largest_response_bytes', `${api[0] ? api[0].bytes : 0} (${api[0] ? api[0].url : '-'})`);
    figure('total_bytes', sizes.reduce((t, s) => t + s.bytes, 0));
    if (SHOTS) {
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'ui-scale.png'), fullPage: false });
      console.log(`# screenshot ${path.join(SHOTS, 'ui-scale.png')}`);
    }
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then(() => process.exit(0)).catch((e) => {
  console.log(`# ui_scale.js: ${e.stack || e}`);
  while (n < POINTS.length) point(false, 'not reached');
  process.exit(1);
});
