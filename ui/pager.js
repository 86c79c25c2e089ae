// pager.js — one paged view of a list (nodes, actors, commands, ...), kept in
// step with the cluster by refetching *only the page on screen*, and at most once
// per `minGapMs` however many events ask for it. With 10,000 nodes and 100,000
// actors, a burst of events costs one page request per view per second, not one
// request per event and never the whole list.
//
// Lists use keyset pagination: a page starts after a cursor (the `next` of the
// page before). Going back uses the cursors already seen (a stack), so paging
// never counts or skips through the list.

import { h, fill } from './dom.js';

export class Pager {
  // load(cursor) -> {items, next}: next is the cursor of the following page or null.
  // render(items) -> array of <tr>. idOf(item) -> its id (for has/belongs).
  constructor({ name, body, nav, load, render, idOf, empty, minGapMs = 1000, onError }) {
    Object.assign(this, { name, body, nav, load, render, idOf, empty, minGapMs, onError });
    this.stack = []; // cursors of the pages before this one
    this.cursor = null; // this page's cursor (null: the first page)
    this.items = [];
    this.next = null;
    this.ids = new Set();
    this.last = 0; // when the last load started
    this.took = 0; // how long it took (a slow server widens the gap between loads)
    this.timer = null;
    this.running = false;
    this.again = false;
    this.loaded = false;
    this.gen = 0; // bumped when the page changes, so a late answer for another page is dropped
  }

  has(id) { return this.ids.has(id); }

  // Would a new object with this id show on this page? Ids sort byte-wise
  // (COLLATE "C" in the database), as JavaScript compares ASCII strings. A
  // page after cursor c holds ids above c, up to its last id when a page
  // follows (else open-ended). Only plain id cursors can be compared.
  belongs(id) {
    if (!this.loaded || id === null || id === undefined) return false;
    const after = this.cursor && typeof this.cursor === 'object' ? this.cursor.after : this.cursor;
    if (after !== null && after !== undefined && !(id > after)) return false;
    if (this.next === null) return true;
    const lastId = this.items.length ? this.idOf(this.items[this.items.length - 1]) : null;
    return lastId === null || id < lastId;
  }

  // Ask for a refresh of this page; throttled (see the top).
  kick() {
    if (this.timer) return;
    const wait = Math.max(0, this.last + Math.max(this.minGapMs, 5 * this.took) - Date.now());
    this.timer = setTimeout(() => { this.timer = null; this.run(); }, wait);
  }

  async run() {
    if (this.running) { this.again = true; return; }
    this.running = true;
    this.last = Date.now();
    const gen = this.gen;
    try {
      const r = await this.load(this.cursor);
      if (gen !== this.gen) return; // the user moved to another page meanwhile
      this.items = r.items;
      this.next = r.next ?? null;
      this.ids = new Set(r.items.map(this.idOf));
      this.loaded = true;
      this.draw();
    } catch (e) {
      if (gen === this.gen) this.showError(e);
    } finally {
      this.took = Date.now() - this.last;
      this.running = false;
      if (this.again) { this.again = false; this.kick(); }
    }
  }

  // Load now, whatever the throttle (paging, a filter change, a first load).
  reload() {
    clearTimeout(this.timer);
    this.timer = null;
    this.gen++;
    this.last = 0;
    if (this.running) { this.again = true; return Promise.resolve(); }
    return this.run();
  }

  reset() { this.stack = []; this.cursor = null; return this.reload(); }
  goNext() { if (this.next === null) return; this.stack.push(this.cursor); this.cursor = this.next; this.reload(); }
  goPrev() { if (!this.stack.length) return; this.cursor = this.stack.pop(); this.reload(); }

  draw() {
    const rows = this.render(this.items);
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 20, class: 'muted empty' }, this.empty || 'none')));
    fill(this.body, rows);
    this.drawNav();
  }

  drawNav() {
    if (!this.nav) return;
    const pageNo = this.stack.length + 1;
    fill(this.nav, [
      h('button', { type: 'button', class: 'prev', disabled: !this.stack.length, onclick: () => this.goPrev() }, '← prev'),
      h('span', { class: 'muted pageno' }, `page ${pageNo} · ${this.items.length} shown`),
      h('button', { type: 'button', class: 'next', disabled: this.next === null, onclick: () => this.goNext() }, 'next →'),
    ]);
  }

  showError(e) {
    fill(this.body, [h('tr', {}, h('td', { colspan: 20, class: 'error' }, `${this.name}: ${e.message}`))]);
    if (this.onError) this.onError(e);
  }
}

// throttle(fn, ms): a kick() that runs fn at most once per ms (and again after
// a run if kicked during it), for the summary and the cluster status. A slow
// answer widens the gap (to 5 times its duration), so a dashboard never keeps a
// struggling server busy with its own refreshes.
export function throttle(fn, ms) {
  let last = 0, took = 0, timer = null, running = false, again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    last = Date.now();
    try { await fn(); } catch { /* fn shows its own errors */ } finally {
      took = Date.now() - last;
      running = false;
      if (again) { again = false; kick(); }
    }
  };
  const kick = () => {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + Math.max(ms, 5 * took) - Date.now()));
  };
  return kick;
}
