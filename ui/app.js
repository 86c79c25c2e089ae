// app.js — the lattice dashboard. Plain ES modules, no framework, no build step,
// nothing fetched from anywhere but this replica's API.
//
// How it stays live without reloading and without listing everything:
//  - the header, members, overview and regions come from two small documents,
//    GET /v1/cluster and GET /v1/summary (counts computed by the server);
//  - every table shows one page (50 rows) of a keyset-paginated list;
//  - GET /v1/events as server-sent events tells what changed: an event about an
//    object on screen, or a new object that belongs on the page on screen, asks
//    that page for a refresh (pager.js throttles it to once a second), and the
//    summary is refetched at most every 2 s;
//  - what the event log does not carry (Raft indexes, heartbeat measurements,
//    acks moving a placement from starting to running) is refreshed by a slow
//    poll of the same pages while the tab is visible (#poll=MS, 0 turns it off).

import { $, h, fill, num, bar, badge, dur, ago, clock, tickAges } from './dom.js';
import { get, page, enc, PAGE } from './api.js';
import { Pager, throttle } from './pager.js';

// Options ride in the fragment (/ui/#poll=0): latticed answers a query on /ui with 400.
const params = new URLSearchParams(location.hash.slice(1));
const POLL_MS = params.has('poll') ? Number(params.get('poll')) : 5000;
const FEED_MAX = 200; // events kept in the feed (older ones leave the DOM)
const HISTORY = 50; // events shown from before the page opened, when the server tells the newest seq

// ---- cluster and summary ---------------------------------------------------------

let cluster = null;

async function loadCluster() {
  try {
    cluster = await get('/v1/cluster');
  } catch (e) {
    cluster = null;
    setHealth('unreachable', 'bad', e.message);
    return;
  }
  const c = cluster;
  const unreachable = c.members.filter((m) => m.reachable === false).length;
  const pgOk = c.self.postgresql_ok !== false;
  if (!c.leader) setHealth('no leader', 'bad', 'no Raft leader is known to this replica');
  else if (!pgOk) setHealth('PostgreSQL down', 'bad', "this replica's projection cannot reach its PostgreSQL");
  else if (unreachable) setHealth(`${unreachable} replica${unreachable > 1 ? 's' : ''} unreachable`, 'warn');
  else setHealth('healthy', 'good');
  $('health-leader').textContent = c.leader
    ? `leader ${c.leader.id} (${c.leader.api_url || c.leader.address}) · term ${c.term}`
    : `no leader · term ${c.term}`;
  $('health-indexes').textContent =
    `commit ${num(c.commit_index)} · applied ${num(c.applied_index)} · projected ${num(c.projected_index)} · this replica: ${c.self.id} (${c.self.state})`;
  fill($('members'), c.members.map((m) => h('tr', { dataset: { id: m.id } },
    h('th', { scope: 'row' }, String(m.id), m.id === c.self.id ? h('span', { class: 'muted' }, ' (this)') : null),
    h('td', { title: `API ${m.api_url || 'not recorded yet'} · Raft ${m.address}` }, (m.api_url || m.address).replace(/^https?:\/\//, '')),
    h('td', {}, m.role),
    h('td', { class: 'state' }, m.leader ? badge('leader', 'leader') : null,
      m.reachable === null ? h('span', { class: 'muted', title: 'only the leader polls the members' }, 'reachability n/a')
        : badge(m.reachable ? 'reachable' : 'unreachable', m.reachable ? 'healthy' : 'unhealthy')),
    h('td', { class: 'num' }, num(m.applied_index)),
    h('td', { class: 'num' }, num(m.projected_index)),
    h('td', { class: `num${m.projection_lag > 100 ? ' warn-text' : ''}` }, num(m.projection_lag)))));
}

function setHealth(text, kind, title) {
  const el = $('health-state');
  el.textContent = text;
  el.className = `pill ${kind}`;
  el.title = title || '';
}

let summary = null;

async function loadSummary() {
  try {
    summary = await get('/v1/summary');
  } catch (e) {
    fill($('cards'), [h('p', { class: 'error' }, `summary: ${e.message}`)]);
    return;
  }
  const s = summary;
  const n = s.nodes, a = s.actors, c = s.commands.by_status, f = s.failovers.by_status || {};
  const line = (label, value, kind) => h('div', { class: `kv${kind ? ` ${kind}` : ''}` }, h('span', {}, label), h('b', {}, num(value)));
  fill($('cards'), [
    h('div', { class: 'card', id: 'card-nodes' }, h('h3', {}, 'Nodes ', h('b', {}, num(n.total))),
      line('healthy', n.by_status.healthy, 'good'), line('degraded', n.by_status.degraded, n.by_status.degraded ? 'warn' : ''),
      line('unhealthy', n.by_status.unhealthy, n.by_status.unhealthy ? 'bad' : ''), line('cordoned', n.cordoned),
      line('draining', n.draining), line('policy behind', n.policy_behind, n.policy_behind ? 'warn' : '')),
    h('div', { class: 'card', id: 'card-actors' }, h('h3', {}, 'Actors ', h('b', {}, num(a.total))),
      line('instances', a.instances),
      ...Object.entries(a.by_state).sort().map(([k, v]) => line(k, v, k === 'failed' && v ? 'bad' : ''))),
    h('div', { class: 'card', id: 'card-commands' }, h('h3', {}, 'Commands'),
      line('pending', c.pending, c.pending ? 'warn' : ''), line('published', c.published), line('acked', c.acked),
      line('failed', c.failed, c.failed ? 'bad' : ''), line('superseded', c.superseded)),
    h('div', { class: 'card', id: 'card-failovers' }, h('h3', {}, 'Failovers'),
      line('in progress', f.in_progress || 0, f.in_progress ? 'warn' : ''), line('completed', f.completed || 0),
      line('failed', f.failed || 0, f.failed ? 'bad' : '')),
  ]);
  drawRegions(n.regions);
  // The region filter offers the regions there are (a handful, from the summary).
  const sel = $('nodes-region'), cur = sel.value;
  const want = ['', ...n.regions.map((r) => r.region)];
  if ([...sel.options].map((o) => o.value).join('\n') !== want.join('\n')) {
    fill(sel, want.map((r) => h('option', { value: r }, r || 'all')));
    sel.value = want.includes(cur) ? cur : '';
  }
  // The commands filter shows how many there are of each status.
  for (const o of $('commands-status').options) {
    const k = o.value === 'inflight' ? null : o.value;
    const count = k ? c[k] : c.pending + c.published;
    o.textContent = `${k || 'in flight (pending, published)'} (${num(count)})`;
  }
}

function drawRegions(regions) {
  if (!regions.length) { fill($('regions'), [h('p', { class: 'muted' }, 'no nodes yet')]); return; }
  fill($('regions'), regions.map((r) => h('div', { class: 'card region', dataset: { region: r.region } },
    h('h3', {}, h('button', { type: 'button', class: 'link', title: 'show the nodes of this region',
      onclick: () => { $('nodes-region').value = r.region; nodes.reset(); } }, r.region), ' ', h('b', {}, num(r.total))),
    h('div', { class: 'chips' },
      ...['healthy', 'degraded', 'unhealthy'].filter((k) => r.by_status[k]).map((k) => badge(`${num(r.by_status[k])} ${k}`, k)),
      r.cordoned ? badge(`${num(r.cordoned)} cordoned`, 'muted') : null,
      r.policy_behind ? badge(`${num(r.policy_behind)} policy behind`, 'drift') : null),
    h('div', { class: 'kv' }, h('span', {}, 'CPU'), bar(r.cpu_used, r.cpu_capacity, 'millicores')),
    h('div', { class: 'kv' }, h('span', {}, 'memory'), bar(r.memory_used_mb, r.memory_mb, 'MiB')),
    r.actor_count !== undefined ? h('div', { class: 'kv' }, h('span', {}, 'actors'), h('b', {}, num(r.actor_count))) : null)));
}

// ---- nodes -----------------------------------------------------------------------

let selectedNode = null;

function nodeRow(n) {
  const behind = typeof n.policy_target === 'number' && n.policy_version < n.policy_target;
  const measured = (v, u) => (v === null || v === undefined ? null : `measured ${num(v)} ${u}`);
  return h('tr', { dataset: { id: n.id, status: n.status }, class: n.id === selectedNode ? 'selected' : null },
    h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => selectNode(n.id) }, n.id)),
    h('td', {}, n.region),
    h('td', { class: 'status' }, badge(n.status)),
    h('td', { class: 'cpu' }, bar(n.cpu_used, n.cpu_capacity, 'millicores', measured(n.cpu_measured, 'millicores'))),
    h('td', { class: 'mem' }, bar(n.memory_used_mb, n.memory_mb, 'MiB', measured(n.memory_measured_mb, 'MiB'))),
    h('td', { class: 'num' }, num(n.actor_count)),
    h('td', { class: 'policy', title: behind ? `applied v${n.policy_version}, expected v${n.policy_target}` : 'up to date' },
      `v${n.policy_version}`, behind ? badge(`drift: want v${n.policy_target}`, 'drift') : null),
    h('td', {}, ago(n.last_heartbeat)),
    h('td', {}, n.cordoned ? badge('cordoned', 'muted') : null, n.draining ? badge('draining', 'warn') : null,
      n.error_count ? badge(`${n.error_count} errors`, 'warn') : null));
}

const nodes = new Pager({
  name: 'nodes', body: $('nodes'), nav: $('nodes-pager'), idOf: (n) => n.id, empty: 'no node matches',
  load: (after) => page('/v1/nodes', { region: $('nodes-region').value, status: $('nodes-status').value, after }),
  render: (items) => items.map(nodeRow),
});

// ---- the selected node: its facts and its actors ------------------------------------

async function loadNodeFacts() {
  if (!selectedNode) return;
  const id = selectedNode;
  let n;
  try { n = await get(`/v1/nodes/${enc(id)}`); } catch (e) {
    if (id === selectedNode) fill($('node-facts'), [h('p', { class: 'error' }, `${id}: ${e.message}`)]);
    return;
  }
  if (id !== selectedNode) return;
  const dt = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const labels = Object.entries(n.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '–';
  fill($('node-facts'), [h('dl', { dataset: { id: n.id, status: n.status } },
    dt('node', n.id), dt('region', n.region), dt('status', badge(n.status)), dt('labels', labels),
    dt('CPU (placed)', bar(n.cpu_used, n.cpu_capacity, 'millicores')),
    dt('memory (placed)', bar(n.memory_used_mb, n.memory_mb, 'MiB')),
    dt('measured', `${num(n.cpu_measured)} millicores · ${num(n.memory_measured_mb)} MiB`),
    dt('actors', num(n.actor_count)),
    dt('policy', `applied v${n.policy_version}${typeof n.policy_target === 'number' ? `, expected v${n.policy_target}` : ''}`),
    dt('agent', n.agent_version || '–'), dt('last heartbeat', ago(n.last_heartbeat)),
    dt('errors', num(n.error_count)),
    dt('flags', [n.cordoned ? 'cordoned' : '', n.draining ? 'draining' : ''].filter(Boolean).join(', ') || '–')),
  h('button', { type: 'button', onclick: () => selectNode(null) }, 'close')]);
}
const nodeFactsKick = throttle(loadNodeFacts, 1000);

function placementsCell(a, highlight) {
  if (!a.placements.length) return h('span', { class: 'muted' }, 'not placed');
  return h('span', { class: 'chips' }, ...a.placements.map((p) => h('span', {
    class: `chip ${p.state}${p.node_id && p.node_id === highlight ? ' here' : ''}`,
    title: `instance ${p.instance}: ${p.state}${p.state_version ? `, state v${p.state_version}` : ''}`,
  }, p.node_id ? h('button', { type: 'button', class: 'link', onclick: () => selectNode(p.node_id) }, p.node_id) : '(no node)',
  ` ${p.state}`)));
}

const nodeActors = new Pager({
  name: "node's actors", body: $('node-actors'), nav: $('node-actors-pager'), idOf: (a) => a.id, empty: 'no actor on this node',
  load: (after) => (selectedNode ? page('/v1/actors', { node: selectedNode, after }) : { items: [], next: null }),
  render: (items) => items.map((a) => h('tr', { dataset: { id: a.id } },
    h('th', { scope: 'row' }, a.id), h('td', { class: 'mono' }, a.module), h('td', {}, placementsCell(a, selectedNode)))),
});

function selectNode(id) {
  selectedNode = id;
  $('node-detail').hidden = !id;
  for (const tr of $('nodes').querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.id === id);
  if (!id) return;
  $('node-detail-h').textContent = `Node ${id}`;
  fill($('node-facts'), [h('p', { class: 'muted' }, 'loading…')]);
  loadNodeFacts();
  nodeActors.reset();
  $('node-detail').scrollIntoView({ block: 'nearest' });
}

// ---- actors ----------------------------------------------------------------------

const actors = new Pager({
  name: 'actors', body: $('actors'), nav: $('actors-pager'), idOf: (a) => a.id, empty: 'no actor yet',
  load: (after) => page('/v1/actors', { after }),
  render: (items) => items.map((a) => h('tr', { dataset: { id: a.id } },
    h('th', { scope: 'row' }, a.id, a.name && a.name !== a.id ? h('span', { class: 'muted' }, ` ${a.name}`) : null),
    h('td', { class: 'mono' }, a.module),
    h('td', { class: 'num' }, num(a.cpu_required)),
    h('td', { class: 'num' }, `${num(a.memory_required_mb)} MiB`),
    h('td', { class: 'num' }, num(a.priority)),
    h('td', { class: 'placements' }, placementsCell(a)))),
});

// Nodes an actor on screen runs on (to tell whether an actor event moves a node row).
function nodesOfVisibleActor(id) {
  const a = actors.items.find((x) => x.id === id) || nodeActors.items.find((x) => x.id === id);
  return a ? a.placements.map((p) => p.node_id).filter(Boolean) : [];
}

// ---- commands --------------------------------------------------------------------

// "In flight" walks two lists one after the other: pending, then published. Its
// cursor says which list and where in it; each request is still one page.
async function loadCommands(cursor) {
  const status = $('commands-status').value;
  if (status !== 'inflight') return page('/v1/commands', { status, after: cursor && cursor.after });
  const c = cursor || { s: 'pending', after: null };
  let items = [];
  if (c.s === 'pending') {
    const r = await page('/v1/commands', { status: 'pending', after: c.after });
    if (r.next) return { items: r.items, next: { s: 'pending', after: r.next } };
    items = r.items;
    if (items.length >= PAGE) return { items, next: { s: 'published', after: null } };
  }
  const r = await page('/v1/commands', { status: 'published', after: c.s === 'published' ? c.after : null }, PAGE - items.length);
  return { items: items.concat(r.items), next: r.next ? { s: 'published', after: r.next } : null };
}

const commands = new Pager({
  name: 'commands', body: $('commands'), nav: $('commands-pager'), idOf: (c) => c.command_id, empty: 'no command',
  load: loadCommands,
  render: (items) => items.map((c) => h('tr', { dataset: { id: c.command_id } },
    h('th', { scope: 'row', class: 'mono' }, c.command_id), h('td', {}, c.command_type),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => selectNode(c.target_node) }, c.target_node)),
    h('td', {}, c.actor_id || ''), h('td', {}, badge(c.status)), h('td', { class: 'num' }, num(c.attempts)),
    h('td', {}, ago(c.created_at)), h('td', { class: 'error-text' }, c.error || ''))),
});

// ---- failovers -------------------------------------------------------------------

function moves(f) {
  const list = f.assignments || [];
  if (!list.length) return h('span', { class: 'muted' }, 'nothing to move');
  const text = (x) => `${x.actor_id}#${x.instance} → ${x.node_id || 'nowhere'} (${x.state})`;
  const shown = list.slice(0, 3).map(text).join(', ');
  return h('span', { title: list.map(text).join('\n') }, shown + (list.length > 3 ? `, +${list.length - 3} more` : ''));
}

const failovers = new Pager({
  name: 'failovers', body: $('failovers'), nav: $('failovers-pager'), idOf: (f) => f.id, empty: 'no failover',
  load: (after) => page('/v1/failovers', { status: $('failovers-status').value, after }),
  render: (items) => items.map((f) => h('tr', { dataset: { id: f.id, node: f.node_id } },
    h('th', { scope: 'row' }, f.id),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => selectNode(f.node_id) }, f.node_id)),
    h('td', {}, badge(f.status)), h('td', {}, clock(f.detected_at || f.started_at)), h('td', {}, clock(f.finished_at)),
    h('td', { class: 'num downtime' }, dur(f.downtime_ms)), h('td', {}, moves(f)), h('td', { class: 'error-text' }, f.error || ''))),
});

// ---- the chaos report ------------------------------------------------------------

async function loadChaos() {
  // A summary that says there is no report spares a request the browser would
  // log as a failed (404) load.
  if (summary && summary.chaos_report === false) { $('chaos-panel').hidden = true; return; }
  let r;
  try { r = await get('/v1/chaos/report'); } catch (e) {
    $('chaos-panel').hidden = true; // 404: latticed runs without --chaos-reports, or no run yet
    return;
  }
  const p = (o, ...ks) => ks.reduce((v, k) => (v === null || v === undefined ? v : v[k]), o);
  const dt = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const pct = (o) => (o ? `p50 ${dur(o.p50_ms)} · p99 ${dur(o.p99_ms)} · max ${dur(o.max_ms)}` : '–');
  fill($('chaos-facts'), [h('dl', {},
    dt('verdict', badge(r.verdict || 'unknown', r.verdict === 'pass' ? 'healthy' : 'unhealthy')),
    dt('scenario', `${r.scenario || '–'} (run ${r.run_dir})`),
    dt('run', `${dur(p(r, 'run', 'length_ms'))} · ${num(p(r, 'run', 'agents'))} agents · ${num(p(r, 'run', 'replicas'))} replicas`),
    dt('faults', `${num(p(r, 'faults', 'total'))}${p(r, 'faults', 'by_kind') ? ` (${Object.entries(r.faults.by_kind).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`),
    dt('detection', `${num(p(r, 'detection', 'detected'))} of ${num(p(r, 'detection', 'nodes'))} nodes · ${pct(r.detection)}`),
    dt('failover', `${num(p(r, 'failover', 'moved'))} of ${num(p(r, 'failover', 'displaced'))} moved · ${pct(r.failover)}`),
    dt('commands', `${num(p(r, 'commands', 'sent'))} sent · ${num(p(r, 'commands', 'acked'))} acked · ${num(p(r, 'commands', 'retried'))} retried · ${num(p(r, 'commands', 'failed'))} failed`),
    dt('leaders', `${num(p(r, 'leaders', 'changes'))} changes · ${dur(p(r, 'leaders', 'no_leader_ms'))} without a leader`),
    dt('workload', `${num(p(r, 'workload', 'ops'))} ops · ${num(p(r, 'workload', 'ok'))} ok · ${num(p(r, 'workload', 'fail'))} failed · p99 ${dur(p(r, 'workload', 'p99_ms'))}`),
    dt('violations', num(p(r, 'violations', 'total'))))]);
  const vl = p(r, 'violations', 'list') || [];
  fill($('chaos-violations'), vl.length ? [h('ul', { class: 'violations' },
    ...vl.slice(0, 8).map((v) => h('li', {}, badge(v.check, 'unhealthy'), ' ', v.message)),
    vl.length > 8 ? h('li', { class: 'muted' }, `+${vl.length - 8} more in report.json`) : null)] : []);
  const img = $('chaos-timeline');
  img.onerror = () => { $('chaos-figure').hidden = true; };
  img.onload = () => { $('chaos-figure').hidden = false; };
  img.src = '/v1/chaos/report/timeline.svg'; // it takes no query parameter
  $('chaos-panel').hidden = false;
}

// ---- the live event feed -----------------------------------------------------------

const feed = { queue: [], shown: 0, total: 0, frame: 0 };

function eventItem(ev) {
  const data = ev.data && Object.keys(ev.data).length ? JSON.stringify(ev.data) : '';
  return h('li', { dataset: { seq: ev.seq, kind: ev.kind, object: ev.object_id || '' } },
    clock(ev.at), h('span', { class: 'seq muted' }, `#${ev.seq}`),
    h('span', { class: `kind ${ev.object_type || 'other'}${/failed|unhealthy/.test(ev.kind + data) ? ' bad' : ''}` }, ev.kind),
    h('span', { class: 'obj' }, ev.object_id || ''), h('span', { class: 'who muted' }, ev.who || ''),
    h('span', { class: 'data muted' }, data.length > 160 ? `${data.slice(0, 157)}…` : data));
}

function feedMatches(li) {
  const m = $('events-match').value.trim().toLowerCase();
  return !m || li.dataset.kind.toLowerCase().includes(m) || li.dataset.object.toLowerCase().includes(m);
}

// Events are queued and drawn once per animation frame, at most FEED_MAX of
// them: a burst of thousands costs one DOM update, and the list never grows.
function feedAdd(ev) {
  feed.total++;
  feed.queue.push(ev);
  if (feed.queue.length > FEED_MAX) feed.queue.splice(0, feed.queue.length - FEED_MAX);
  if (!feed.frame && !$('events-pause').checked) feed.frame = requestAnimationFrame(feedFlush);
  $('events-count').textContent = `${num(feed.total)} received${$('events-pause').checked ? `, ${feed.queue.length} waiting` : ''}`;
}

function feedFlush() {
  feed.frame = 0;
  const list = $('events');
  const items = feed.queue.splice(0).reverse().map(eventItem); // newest first
  for (const li of items) li.hidden = !feedMatches(li);
  list.prepend(...items);
  while (list.childElementCount > FEED_MAX) list.lastElementChild.remove();
  $('events-count').textContent = `${num(feed.total)} received`;
}

function feedNote(text) {
  $('events').prepend(h('li', { class: 'note' }, clock(new Date().toISOString()), h('span', {}, text)));
}

// ---- what an event changes on screen -------------------------------------------

const summaryKick = throttle(loadSummary, 2000);
const clusterKick = throttle(loadCluster, 1000);

// Commands go out and are acked, and placements go from starting to running,
// without an event of their own: after an event that starts such work, the
// pages that show it are looked at once more a little later.
// While an instance on screen is still on its way (an ack not in yet: a slow
// agent, a failover's replacement), the look is repeated, further apart each
// time, a dozen times at most after the last event.
const FOLLOW_UP_MS = 2500;
const SETTLING = new Set(['pending', 'starting', 'migrating', 'stopping']);
const settling = () => [actors, nodeActors].some((p) =>
  (p.items || []).some((a) => (a.placements || []).some((pl) => SETTLING.has(pl.state))));
let followUp = null, followUps = 0;
function later(again) {
  if (followUp) return;
  if (!again) followUps = 0;
  followUp = setTimeout(() => {
    followUp = null;
    for (const p of [actors, nodeActors, commands]) p.kick();
    summaryKick();
    setTimeout(() => { if (!followUp && settling() && ++followUps < 12) later(true); }, 1000);
  }, FOLLOW_UP_MS * Math.min(4, 1 + followUps));
}

function onEvent(ev) {
  feedAdd(ev);
  summaryKick();
  const id = ev.object_id, d = ev.data || {};
  switch (ev.object_type) {
    case 'node':
      if (nodes.has(id) || (ev.kind === 'node.registered' && nodes.belongs(id))) nodes.kick();
      if (id === selectedNode) nodeFactsKick();
      if (ev.kind === 'node.status' || ev.kind === 'node.reconciled' || ev.kind === 'node.drained') {
        commands.kick();
        if (id === selectedNode) nodeActors.kick();
        if (actors.items.some((a) => a.placements.some((p) => p.node_id === id))) actors.kick();
      }
      break;
    case 'actor': {
      // The nodes it runs on now (the event's data) or ran on (the row on screen).
      const on = new Set([...(Array.isArray(d.placements) ? d.placements : []), d.from, d.to, ...nodesOfVisibleActor(id)].filter(Boolean));
      if (actors.has(id) || (ev.kind === 'actor.created' && actors.belongs(id))) actors.kick();
      if ([...on].some((n) => nodes.has(n))) nodes.kick();
      if (selectedNode && (on.has(selectedNode) || nodeActors.has(id))) { nodeActors.kick(); nodeFactsKick(); }
      commands.kick(); // creating, scaling, moving or deleting an actor writes commands
      later();
      break;
    }
    case 'failover':
      if (failovers.has(id) || failovers.belongs(id)) failovers.kick();
      // Its actors move to other nodes: the rows that show them change.
      if (actors.items.some((a) => a.placements.some((p) => p.node_id === d.node_id))) actors.kick();
      nodes.kick();
      if (selectedNode) nodeActors.kick();
      commands.kick();
      later();
      break;
    case 'command':
      commands.kick();
      break;
    case 'policy':
      nodes.kick(); // policy_target moves: drift
      commands.kick();
      break;
    default:
      break;
  }
}

// ---- the event stream --------------------------------------------------------------

let es = null;
let lastSeq = null; // the last event received (its id)
let opened = false;
let failures = 0;

function setStream(text, kind) {
  const el = $('sse-state');
  el.textContent = text;
  el.className = `pill ${kind}`;
  $('sse-seq').textContent = lastSeq === null ? '' : `last event #${lastSeq}`;
}

// Opens GET /v1/events as server-sent events, after `since` when given (else at
// the newest event). EventSource reconnects by itself after a drop, sending
// Last-Event-ID, so nothing is missed; this code only steps in when the server
// ends the stream for good (overflow, compacted) or refuses it.
function openStream(since) {
  if (es) es.close();
  opened = false;
  es = new EventSource(since === null || since === undefined ? '/v1/events' : `/v1/events?since=${since}`);
  setStream('connecting…', 'warn');
  es.onopen = () => {
    if (failures || opened) { reloadAll(); feedNote('event stream reconnected'); }
    opened = true;
    failures = 0;
    setStream('live', 'good');
  };
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    lastSeq = ev.seq ?? Number(m.lastEventId);
    onEvent(ev);
    $('sse-seq').textContent = `last event #${lastSeq}`;
  };
  es.onerror = () => {
    if (es.readyState === EventSource.CONNECTING) { setStream('reconnecting…', 'warn'); return; }
    // Closed for good (an HTTP error such as 503 too_many_event_streams, or 410
    // for a position no longer held): try again in a while, from where we were;
    // after repeated failures, from the newest event (the views are reloaded,
    // so only the feed may miss events, and it says so).
    es.close();
    es = null;
    failures++;
    setStream('disconnected, retrying', 'bad');
    setTimeout(() => {
      if (failures > 2) { feedNote('event stream restarted at the newest event; earlier events may be missing'); lastSeq = null; }
      openStream(lastSeq);
    }, Math.min(30000, 2000 * failures));
  };
  // A client that fell too far behind is cut off with a final `overflow`; a
  // replica whose database lost the next events ends with `compacted`. Both:
  // reload what is on screen once, and go on from the position they give.
  es.addEventListener('overflow', (m) => {
    const d = safeParse(m.data);
    if (d && typeof d.last_seq === 'number') lastSeq = d.last_seq;
    feedNote('fell behind the event stream: views reloaded, stream reopened');
    reloadAll();
    openStream(lastSeq);
  });
  es.addEventListener('compacted', (m) => {
    const d = safeParse(m.data);
    const first = d && d.error && d.error.first_seq;
    if (typeof first === 'number') lastSeq = first - 1;
    feedNote('this replica no longer holds the next events: views reloaded, stream reopened after the gap');
    reloadAll();
    openStream(lastSeq);
  });
}

function safeParse(s) { try { return JSON.parse(s); } catch { return null; } }

// ---- putting it together ---------------------------------------------------------

function reloadAll() {
  clusterKick();
  summaryKick();
  for (const p of [nodes, actors, commands, failovers]) p.kick();
  if (selectedNode) { nodeFactsKick(); nodeActors.kick(); }
}

function wire() {
  $('nodes-region').addEventListener('change', () => nodes.reset());
  $('nodes-status').addEventListener('change', () => nodes.reset());
  $('commands-status').addEventListener('change', () => commands.reset());
  $('failovers-status').addEventListener('change', () => failovers.reset());
  for (const f of ['nodes-filter', 'commands-filter', 'failovers-filter', 'events-filter'])
    $(f).addEventListener('submit', (e) => e.preventDefault());
  $('events-match').addEventListener('input', () => {
    for (const li of $('events').children) if (li.dataset.kind) li.hidden = !feedMatches(li);
  });
  $('events-pause').addEventListener('change', () => { if (!$('events-pause').checked) feedFlush(); });
}

async function start() {
  wire();
  setStream('connecting…', 'warn');
  await Promise.all([loadCluster(), loadSummary()]);
  // Recent history first when the server tells its newest event (summary
  // events.last_seq); else the feed starts live. The stream opens before the
  // tables load, so whatever changes while they load comes as an event.
  const head = summary && summary.events && summary.events.last_seq;
  openStream(typeof head === 'number' ? Math.max(0, head - HISTORY) : null);
  await Promise.all([nodes.reset(), actors.reset(), commands.reset(), failovers.reset(), loadChaos()]);
  // For tests and screenshots: the first render is complete, and when (ms since
  // the navigation started, as the browser counts it).
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = 'true';
  // What the event log does not carry: refreshed slowly, only the pages on
  // screen, only while someone can see them.
  setInterval(() => { tickAges(document); }, 1000);
  setInterval(() => { if (document.visibilityState === 'visible') clusterKick(); }, 2000);
  if (POLL_MS > 0) {
    setInterval(() => {
      if (document.visibilityState !== 'visible') return;
      summaryKick();
      for (const p of [nodes, actors, commands, failovers]) p.kick();
      if (selectedNode) { nodeFactsKick(); nodeActors.kick(); }
    }, POLL_MS);
  }
}

start();
