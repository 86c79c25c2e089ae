// dom.js — tiny DOM and formatting helpers. Every text from the API goes in
// through textContent (h() children), never innerHTML, so no id, label or error
// message can inject markup.

export const $ = (id) => document.getElementById(id);

// h('td', {class: 'num', title: 'x'}, 'text', childNode, ...): an element.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Replaces the children of el (a tbody, a list) in one DOM operation.
export function fill(el, nodes) { el.replaceChildren(...nodes); }

export const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));

// A horizontal usage bar: used of cap, with the figures in text (screen readers
// and copy-paste get the numbers, not only a colour). role=meter when known.
export function bar(used, cap, unit, extra) {
  const known = cap > 0;
  const pct = known ? Math.min(100, Math.round((100 * used) / cap)) : 0;
  const level = pct >= 90 ? 'hot' : pct >= 70 ? 'warm' : 'ok';
  const label = known ? `${num(used)} / ${num(cap)} ${unit}` : `${num(used)} ${unit} (capacity unknown)`;
  return h('div', { class: 'bar', title: label + (extra ? ` · ${extra}` : '') },
    h('div', { class: `track${known ? '' : ' unknown'}`, role: known ? 'meter' : null, 'aria-valuemin': 0,
      'aria-valuemax': known ? cap : null, 'aria-valuenow': known ? used : null, 'aria-label': `${unit} used` },
    h('div', { class: `fill ${level}`, style: `width:${pct}%` })),
    h('span', { class: 'bar-text' }, known ? `${pct}%` : '–'));
}

export const badge = (text, kind) => h('span', { class: `badge ${kind || text}` }, text);

// Milliseconds as "850 ms", "4.2 s", "3 min 5 s".
export function dur(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  const m = Math.floor(ms / 60000), s = Math.round((ms % 60000) / 1000);
  return `${m} min ${s} s`;
}

// "3 s ago" from an ISO time; the element keeps the time in data-ts so the
// page's one-second ticker can refresh the text without refetching anything.
export function ago(ts) {
  if (!ts) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: ts, title: ts, dataset: { ts } }, agoText(ts));
}
export function agoText(ts) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
export function tickAges(root) {
  for (const t of root.querySelectorAll('time[data-ts]')) t.textContent = agoText(t.dataset.ts);
}

// "14:03:22" of an ISO time (local), full time in the tooltip.
export function clock(ts) {
  if (!ts) return h('span', { class: 'muted' }, '–');
  const d = new Date(ts);
  return h('time', { datetime: ts, title: ts }, d.toLocaleTimeString('en-GB', { hour12: false }));
}
