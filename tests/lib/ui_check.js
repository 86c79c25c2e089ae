// ui_check.js — drives Debian's chromium (puppeteer-core) through the dashboard
// at /ui of a running lattice (tests/integration/ui.sh runs it).
//
//   node ui_check.js API_URL
//
// It talks to the test script over stdin/stdout, so the shell keeps owning every
// process and every write (its req helper records them for the contract check):
//   stdout "point 0|1 NAME"  one TAP point (0 passes), in the order of POINTS
//   stdout "do ACTION ARGS"  asks the shell to act; the shell answers one line
//   stdout "# text"          a diagnostic
// Actions: chaos_report (write a chaos run report), create_actor ID (answer:
// "STATUS NODE", the node its replica went to), kill_agent NODE (kill -9 its
// agent), register_nodes N (POST /v1/nodes N times: pool-001..).
// Env: CHROMIUM (the browser), UI_SCREENSHOTS=DIR (save docs' screenshots there),
// UI_TIMEOUT_MS (each wait; default 60000: a guard against hangs, not a timing test).
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const puppeteer = require('puppeteer-core');

const API = process.argv[2];
const ORIGIN = new URL(API).origin;
const TIMEOUT = Number(process.env.UI_TIMEOUT_MS || 60000);
const SHOTS = process.env.UI_SCREENSHOTS || '';

// The points, in order; the shell plans this many (ui.sh UI_POINTS).
const POINTS = [
  'no chaos report: the page loads through /ui -> /ui/ and the chaos panel stays hidden',
  'a chaos report: the panel shows its verdict, figures and timeline picture',
  'the header shows the leader, term and indexes; health is healthy',
  'the members table shows replica 1 as the leader, reachable, with its projection lag',
  'the event stream is live',
  "the agents' nodes are listed healthy, with CPU and memory bars of their capacity",
  'regions show eu (2 nodes) and us (1), with CPU and memory bars',
  'an actor created through the API appears in the actors table, placed on its node, without a reload',
  '... its actor.created event is in the live feed',
  "... and its node's row counts it",
  "kill -9 of the actor's agent: its node turns unhealthy on the page, without a reload",
  '... a failover of that node appears, completed, with its downtime',
  '... the node.status event is in the feed',
  "clicking a node shows its facts and the actors on it",
  '120 more nodes: they page 50 at a time (next, next, prev), every node once, in id order',
  'the region filter shows only that region',
  'the page never reloaded: one navigation per load',
  'every request went to the latticed origin',
  'no request asked for more than 100 items (limit set, at most 100, on every list)',
  'no console error, page error, failed request or HTTP error',
  'latticed stopped: the page says the stream is down, and live again once latticed is back, without a reload',
  '... an actor created after the restart appears, with its event in the feed (the stream went on)',
];

let pointNo = 0;
function point(pass, detail) {
  const name = POINTS[pointNo++];
  if (!pass && detail) diag(`${name}: ${detail}`);
  console.log(`point ${pass ? 0 : 1} ${name}`);
}
function diag(text) { for (const l of String(text).split('\n')) console.log(`# ${l}`); }

// The shell's answers, one line each.
const rl = readline.createInterface({ input: process.stdin });
const answers = [];
let waiter = null;
rl.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l); } else answers.push(l); });
function ask(action) {
  console.log(`do ${action}`);
  if (answers.length) return Promise.resolve(answers.shift());
  return new Promise((resolve) => { waiter = resolve; });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// What the page did, for the last points: every request (url, method, type),
// every response status and size, console errors, page errors, failed requests.
const seen = { requests: [], errors: [], navigations: 0 };

function watch(page, allow404) {
  page.on('request', (r) => seen.requests.push({ url: r.url(), type: r.resourceType() }));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location() && m.location().url;
    if (allow404 && where && allow404.test(where)) return; // the expected 404 of the report, logged by Chrome
    seen.errors.push(`console error: ${m.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (e) => seen.errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => seen.errors.push(`request failed: ${r.url()} ${r.failure() ? r.failure().errorText : ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !(allow404 && r.status() === 404 && allow404.test(r.url())))
      seen.errors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) seen.navigations++; });
}

// waitFor(page, fn, ...args): true once fn(...args) is truthy in the page.
async function waitFor(page, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: TIMEOUT, polling: 100 }, ...args);
    return true;
  } catch (e) {
    diag(`waited ${TIMEOUT} ms: ${e.message.split('\n')[0]}`);
    return false;
  }
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => null);

async function shot(page, name, opts) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), ...opts });
  diag(`screenshot ${path.join(SHOTS, name)}`);
}

// The nodes table's row ids, in order.
const nodeIds = (page) => page.$$eval('#nodes tr[data-id]', (rows) => rows.map((r) => r.dataset.id));

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: tests run as root, where chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
  try {
    await run(browser);
  } finally {
    await browser.close().catch(() => {});
  }
}

async function run(browser) {
  // ---- 1. no report yet: the panel is hidden (the 404 is expected here only) ----
  let page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1000 });
  watch(page, /\/v1\/chaos\/report$/);
  const res = await page.goto(`${API}/ui`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
  const ready = await waitFor(page, () => document.body.dataset.ready === 'true');
  const chain = res ? res.request().redirectChain().map((r) => r.url()) : [];
  const hidden = await page.$eval('#chaos-panel', (e) => e.hidden).catch(() => null);
  point(ready && res.url() === `${API}/ui/` && chain.length === 1 && hidden === true,
    `ready ${ready}, url ${res && res.url()}, redirects ${JSON.stringify(chain)}, chaos panel hidden: ${hidden}`);
  await page.close();

  // ---- 2. the main page: a report exists; from here on nothing may fail ----
  await ask('chaos_report');
  seen.errors = [];
  seen.navigations = 0;
  page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1000 });
  watch(page, null);
  // #poll=0: no periodic refresh, so whatever changes on the page below came
  // through the event stream.
  await page.goto(`${API}/ui/#poll=0`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
  if (!await waitFor(page, () => document.body.dataset.ready === 'true'))
    throw new Error(`the page did not render: ${seen.errors.slice(0, 5).join('; ')}`);
  // A marker that a reload would lose: every later check also proves "no reload".
  await page.evaluate(() => { window.__uiCheck = 'same page'; });
  const sameDoc = () => page.evaluate(() => window.__uiCheck === 'same page').catch(() => false);

  const chaosOk = await waitFor(page, () => {
    const p = document.getElementById('chaos-panel');
    const img = document.getElementById('chaos-timeline');
    return !p.hidden && /violations|pass/.test(p.textContent) && /report-run/.test(p.textContent) &&
      img.complete && img.naturalWidth > 0;
  });
  point(chaosOk, `chaos panel: ${(await text(page, '#chaos-facts') || '').slice(0, 200)}`);

  // Header: leader 1, term, indexes; health pill.
  const headOk = await waitFor(page, () => {
    const l = document.getElementById('health-leader').textContent;
    return /^leader 1 \(http:\/\/127\.0\.0\.1:\d+\) · term \d+$/.test(l) &&
      /commit [\d,]+ · applied [\d,]+ · projected [\d,]+/.test(document.getElementById('health-indexes').textContent) &&
      document.getElementById('health-state').textContent === 'healthy';
  });
  point(headOk, `header: ${await text(page, '#health')}`);
  const memOk = await waitFor(page, () => {
    const rows = [...document.querySelectorAll('#members tr')];
    if (rows.length !== 1) return false;
    const c = [...rows[0].children].map((td) => td.textContent.trim());
    return c[0].startsWith('1') && c[2] === 'voter' && c[3] === 'leaderreachable' && /^\d+$/.test(c[6]);
  });
  point(memOk, `members: ${await text(page, '#members')}`);
  point(await waitFor(page, () => document.getElementById('sse-state').textContent === 'live'),
    `stream: ${await text(page, '#sse-state')}`);

  // The agents' nodes: healthy, with bars of 2000 millicores and 4096 MiB.
  const agents = ['e1', 'e2', 'e3'];
  const nodesOk = await waitFor(page, (ids) => ids.every((id) => {
    const tr = document.querySelector(`#nodes tr[data-id="${id}"]`);
    if (!tr || tr.querySelector('.status').textContent.trim() !== 'healthy') return false;
    const cpu = tr.querySelector('.cpu [role=meter]'), mem = tr.querySelector('.mem [role=meter]');
    return cpu && mem && cpu.getAttribute('aria-valuemax') === '2000' && mem.getAttribute('aria-valuemax') === '4096' &&
      tr.querySelector('.cpu .fill') && tr.querySelector('.mem .fill');
  }), agents);
  point(nodesOk, `nodes: ${JSON.stringify(await page.$$eval('#nodes tr', (r) => r.map((x) => x.textContent.trim()).slice(0, 5)))}`);
  const regionsOk = await waitFor(page, () => {
    const r = (name) => document.querySelector(`#regions [data-region="${name}"]`);
    return r('eu') && r('us') && /eu\s*2/.test(r('eu').querySelector('h3').textContent) &&
      /us\s*1/.test(r('us').querySelector('h3').textContent) && r('eu').querySelectorAll('[role=meter]').length === 2;
  });
  point(regionsOk, `regions: ${await text(page, '#regions')}`);

  // ---- 3. an actor created through the API shows up live ----
  const [st, actorNode] = (await ask('create_actor ui-actor-1')).split(' ');
  if (st !== '201') diag(`POST /v1/actors answered ${st}`);
  const actorOk = await waitFor(page, (node) => {
    const tr = document.querySelector('#actors tr[data-id="ui-actor-1"]');
    return tr && tr.querySelector('.placements').textContent.includes(node);
  }, actorNode);
  point(actorOk && await sameDoc(), `actor row: ${await text(page, '#actors tr[data-id="ui-actor-1"]')}`);
  point(await waitFor(page, () => !!document.querySelector('#events li[data-kind="actor.created"][data-object="ui-actor-1"]')),
    `feed: ${(await text(page, '#events') || '').slice(0, 300)}`);
  point(await waitFor(page, (node) => {
    const tr = document.querySelector(`#nodes tr[data-id="${node}"]`);
    return tr && tr.querySelector('td.num').textContent.trim() === '1';
  }, actorNode), `node row: ${await text(page, `#nodes tr[data-id="${actorNode}"]`)}`);
  if (SHOTS) await sleep(3500); // the picture: after the page's follow-up look (acks have no event)
  await shot(page, 'ui-overview.png', { fullPage: true });

  // ---- 4. kill the agent: the node turns unhealthy, a failover shows ----
  await ask(`kill_agent ${actorNode}`);
  const downOk = await waitFor(page, (node) => {
    const tr = document.querySelector(`#nodes tr[data-id="${node}"]`);
    return tr && tr.querySelector('.status').textContent.trim() === 'unhealthy';
  }, actorNode);
  point(downOk && await sameDoc(), `node row: ${await text(page, `#nodes tr[data-id="${actorNode}"]`)}`);
  const foOk = await waitFor(page, (node) => {
    const tr = document.querySelector(`#failovers tr[data-node="${node}"]`);
    return tr && /completed/.test(tr.textContent) && /\d+(\.\d)? (ms|s)/.test(tr.querySelector('.downtime').textContent) &&
      tr.textContent.includes('ui-actor-1');
  }, actorNode);
  point(foOk && await sameDoc(), `failovers: ${await text(page, '#failovers')}`);
  point(await waitFor(page, (node) => !!document.querySelector(`#events li[data-kind="node.status"][data-object="${node}"]`), actorNode),
    `feed: ${(await text(page, '#events') || '').slice(0, 300)}`);
  if (SHOTS) await sleep(3500);
  await shot(page, 'ui-node-down.png', { fullPage: false, clip: await clipOf(page, '#nodes-panel', '#failovers-panel') });

  // ---- 5. a node's detail: click the node the actor moved to ----
  // The row moves off the dead node once the page looks at the actor again
  // (the failover's event, or the follow-up look after the new instance is
  // acked): wait for that, rather than read the row as it still is.
  const movedOk = await waitFor(page, (dead) => {
    const tr = document.querySelector('#actors tr[data-id="ui-actor-1"]');
    const chip = tr && tr.querySelector('.chip.running button');
    return !!chip && chip.textContent !== dead;
  }, actorNode);
  const movedTo = movedOk ? await page.evaluate(() =>
    document.querySelector('#actors tr[data-id="ui-actor-1"] .chip.running button').textContent) : null;
  let detailOk = false;
  if (movedTo) {
    await page.click(`#nodes tr[data-id="${movedTo}"] th button`);
    detailOk = await waitFor(page, (node) => {
      const d = document.getElementById('node-detail');
      return !d.hidden && document.querySelector(`#node-facts dl[data-id="${node}"]`) &&
        !!document.querySelector('#node-actors tr[data-id="ui-actor-1"]');
    }, movedTo);
  }
  point(detailOk, `moved to ${movedTo} (from ${actorNode}); actor row: ${await text(page, '#actors tr[data-id="ui-actor-1"]')}; detail: ${(await text(page, '#node-detail') || '').slice(0, 300)}`);

  // ---- 6. pagination over 123 nodes ----
  const reg = await ask('register_nodes 120');
  if (reg !== 'ok') diag(`register_nodes: ${reg}`);
  // Page 1 fills up live (pool-* nodes sort after e*): 50 rows, a next page.
  await waitFor(page, () => document.querySelectorAll('#nodes tr[data-id]').length === 50 &&
    !document.querySelector('#nodes-pager .next').disabled);
  const pages = [await nodeIds(page)];
  const turn = async (which) => {
    const before = (await nodeIds(page)).join(' ');
    await page.click(`#nodes-pager .${which}`);
    await waitFor(page, (b) => [...document.querySelectorAll('#nodes tr[data-id]')].map((r) => r.dataset.id).join(' ') !== b, before);
    return nodeIds(page);
  };
  pages.push(await turn('next'));
  pages.push(await turn('next'));
  const lastNextDisabled = await page.$eval('#nodes-pager .next', (b) => b.disabled);
  const back = await turn('prev');
  const all = pages.flat();
  const want = ['e1', 'e2', 'e3', ...Array.from({ length: 120 }, (_, i) => `pool-${String(i + 1).padStart(3, '0')}`)];
  const pagingOk = pages[0].length === 50 && pages[1].length === 50 && pages[2].length === 23 && lastNextDisabled &&
    back.join(' ') === pages[1].join(' ') && all.join(' ') === want.join(' ');
  point(pagingOk, `pages: ${pages.map((p) => `${p.length} (${p[0]}..${p[p.length - 1]})`).join(', ')}, next disabled on the last: ${lastNextDisabled}, back: ${back[0]}..`);

  // ---- 7. the region filter ----
  await page.select('#nodes-region', 'us');
  const usOk = await waitFor(page, () => [...document.querySelectorAll('#nodes tr[data-id]')].map((r) => r.dataset.id).join(' ') === 'e3');
  point(usOk, `region us: ${(await nodeIds(page)).join(' ')}`);

  // ---- 8. what the page did, all along ----
  point(seen.navigations === 1 && await sameDoc(), `navigations: ${seen.navigations}`);
  const away = seen.requests.filter((r) => !r.url.startsWith(`${ORIGIN}/`));
  point(away.length === 0, `requests elsewhere: ${away.map((r) => r.url).join(', ')}`);
  const lists = /^\/v1\/(nodes|actors|commands|failovers|events|policies|providers|links)$/;
  const big = [];
  let nLists = 0;
  for (const r of seen.requests) {
    const u = new URL(r.url);
    if (!lists.test(u.pathname) || r.type === 'eventsource') continue;
    nLists++;
    const limit = Number(u.searchParams.get('limit'));
    if (!u.searchParams.has('limit') || !(limit >= 1 && limit <= 100)) big.push(r.url);
  }
  point(big.length === 0 && nLists > 0, `${nLists} list requests; over 100 or unlimited: ${big.join(', ')}`);
  point(seen.errors.length === 0, seen.errors.slice(0, 20).join('\n'));

  // ---- 9. the stream drops: latticed stops and comes back on the same port ----
  // (requests fail while it is down: the points above were counted before)
  await ask('stop_latticed');
  const down = await waitFor(page, () => document.getElementById('sse-state').textContent !== 'live');
  const downText = await text(page, '#sse-state');
  await ask('start_latticed');
  const backOk = await waitFor(page, () => document.getElementById('sse-state').textContent === 'live');
  point(down && backOk && await sameDoc(), `stream while down: ${downText}, then: ${await text(page, '#sse-state')}`);
  const [st2] = (await ask('create_actor ui-actor-2')).split(' ');
  if (st2 !== '201') diag(`POST /v1/actors answered ${st2}`);
  point(await waitFor(page, () => !!document.querySelector('#actors tr[data-id="ui-actor-2"]') &&
    !!document.querySelector('#events li[data-kind="actor.created"][data-object="ui-actor-2"]')) && await sameDoc(),
  `actors: ${await text(page, '#actors')}; feed: ${(await text(page, '#events') || '').slice(0, 200)}`);
  await page.close();
}

// A clip from the top of one element to the bottom of another (page coordinates).
async function clipOf(page, fromSel, toSel) {
  return page.evaluate((a, b) => {
    const r1 = document.querySelector(a).getBoundingClientRect(), r2 = document.querySelector(b).getBoundingClientRect();
    const x = Math.min(r1.left, r2.left) - 8, y = r1.top + window.scrollY - 8;
    return { x: Math.max(0, x), y: Math.max(0, y), width: Math.max(r1.right, r2.right) - x + 8, height: r2.bottom + window.scrollY - y + 8 };
  }, fromSel, toSel);
}

console.log(`points ${POINTS.length}`);
main().then(() => {
  while (pointNo < POINTS.length) point(false, 'not reached');
  process.exit(0);
}).catch((e) => {
  diag(`ui_check.js: ${e.stack || e}`);
  while (pointNo < POINTS.length) point(false, 'not reached (the script failed)');
  process.exit(1);
});
