// Small DOM and chart helpers shared by the pages.
import { curl, query, userPropNames } from './api.js';

export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else if (k in e && k !== 'list') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of kids.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
export const pct = (x) => (x === null || x === undefined ? '–' : (x * 100).toFixed(1) + '%');

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return (s / 60).toFixed(1) + ' min';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}

export function select(options, value, attrs = {}) {
  return el('select', attrs, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return el('option', { value: v, text: label, selected: v === value });
  }));
}

// Charts created by the page on screen; disposed when the page changes.
const live = new Set();
export function chart(container) {
  const c = echarts.init(container, null, { renderer: 'canvas' });
  live.add(c);
  return c;
}
export function disposeCharts() {
  for (const c of live) c.dispose();
  live.clear();
}
window.addEventListener('resize', () => { for (const c of live) c.resize(); });

export const palette = ['#2f6fde', '#e8833a', '#3aa57a', '#c9475c', '#8a5cc9', '#c9a227', '#3bb0c9', '#7a7a7a', '#d65db1', '#5a8f29'];

// Shows an API error next to the form, and marks the control whose
// data-path is the longest prefix of the error's JSON path.
export function showError(box, form, err) {
  clearError(box, form);
  box.hidden = false;
  box.append(
    el('strong', { text: err.status ? `${err.status} ${err.code}` : err.code }), ' ',
    el('span', { class: 'msg', text: err.message }),
    err.path ? el('span', {}, ' at ', el('code', { class: 'path', text: err.path })) : null,
  );
  if (!form || !err.path) return;
  let best = null;
  for (const c of form.querySelectorAll('[data-path]')) {
    const p = c.dataset.path;
    if ((err.path === p || err.path.startsWith(p + '.') || err.path.startsWith(p + '['))
      && (!best || p.length > best.dataset.path.length)) best = c;
  }
  if (!best) return;
  // The message beside the control itself, as well as above the result.
  best.classList.add('bad');
  best.after(el('span', { class: 'fieldmsg', role: 'alert', text: err.message }));
}
export function clearError(box, form) {
  box.replaceChildren();
  box.hidden = true;
  if (!form) return;
  for (const c of form.querySelectorAll('.bad')) c.classList.remove('bad');
  for (const m of form.querySelectorAll('.fieldmsg')) m.remove();
}

export function warnings(box, result) {
  box.replaceChildren(...(result.warnings || []).map((w) => el('div', { class: 'warn', text: 'Warning: ' + w })));
}

// The query JSON with a "copy as curl" button.
export function queryPanel(q) {
  const cmd = curl(q);
  const status = el('span', { class: 'copied' });
  const btn = el('button', {
    type: 'button', class: 'copy', text: 'Copy as curl',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(cmd);
        status.textContent = 'copied';
      } catch {
        status.textContent = 'select the command below and copy it';
      }
    },
  });
  return el('details', { class: 'querypanel', open: true },
    el('summary', { text: 'Query JSON' }),
    el('pre', { class: 'json', text: JSON.stringify(q, null, 2) }),
    el('div', { class: 'row' }, btn, status),
    el('pre', { class: 'curl', text: cmd }));
}

// The query the page's URL carries (#/page?q=…), or null.
export function queryFromHash(params) {
  const raw = params.get('q');
  if (!raw) return null;
  try { return JSON.parse(raw); } catch { return null; }
}
export function setHashQuery(page, q) {
  history.replaceState(null, '', `#/${page}?q=${encodeURIComponent(JSON.stringify(q))}`);
}

export function loading(box) {
  box.replaceChildren(el('div', { class: 'loading', text: 'running…' }));
}

// The frame every insight page shares: its form, the error beside it,
// warnings, and the result; `run` sends a query, records it in the URL and
// draws the answer with `draw(out, q, result)`.
export function insight(root, id, title, draw) {
  const form = el('form', { class: 'builder', id: `${id}-form`, noValidate: true });
  const err = el('div', { class: 'error', id: `${id}-error`, hidden: true });
  const warn = el('div', { class: 'warnings' });
  const out = el('div', { class: 'result' });
  root.append(el('h1', { text: title }), form, err, warn, out);
  userPropNames().then((names) => datalist('fp-user-props', names), () => {});
  const range = rangeControls();
  form.append(range.field);
  // A run the form asked for takes the range and time zone from the
  // controls; one from the URL sets the controls from its query.
  let fromForm = false;
  form.addEventListener('submit', () => { fromForm = true; }, true);
  const run = (q) => {
    if (fromForm) range.apply(q);
    else range.load(q);
    fromForm = false;
    clearError(err, form);
    setHashQuery(id, q);
    loading(out);
    warn.replaceChildren();
    query(q).then((r) => { warnings(warn, r); draw(out, q, r); }, (e) => {
      out.replaceChildren(queryPanel(q));
      showError(err, form, e);
    });
  };
  return { form, err, run, fail: (e) => showError(err, null, e) };
}

// The datalists of the schema's event properties (`fp-props`) and
// profile properties (`fp-user-props`), shared by the fields that take a
// property name.
function datalist(id, names) {
  let list = document.getElementById(id);
  if (!list) {
    list = el('datalist', { id });
    document.body.append(list);
  }
  list.replaceChildren(...names.map((p) => el('option', { value: p })));
  return list;
}
export const propList = (props) => datalist('fp-props', props);
const listOf = (scope) => (scope === 'prop' ? 'fp-props' : 'fp-user-props');

// A breakdown field: an event property picked from the schema or typed by
// hand (the server refuses one no event has, and suggests a name), a
// profile property typed by hand, or the channel of the event.
// `read()` gives the query's `breakdown`, or undefined for none.
export function breakdownField(q, props) {
  propList(props);
  const b = q && Array.isArray(q.breakdown) && q.breakdown[0] && typeof q.breakdown[0] === 'object' ? q.breakdown[0] : {};
  const scopeOf = b.channel === true ? 'channel' : 'user_prop' in b ? 'user_prop' : 'event_prop';
  const scope = select([['event_prop', 'event property'], ['user_prop', 'user property'], ['channel', 'channel']], scopeOf,
    { id: 'breakdown-scope', 'data-path': 'breakdown[0]' });
  const input = el('input', { type: 'text', id: 'breakdown', list: 'fp-props', placeholder: 'none', 'data-path': 'breakdown',
    value: String(b.event_prop ?? b.user_prop ?? ''), autocomplete: 'off' });
  // An error in the breakdown marks the name typed, or the scope when
  // there is none (the channel).
  const sync = () => {
    input.hidden = scope.value === 'channel';
    input.dataset.path = input.hidden ? 'breakdown[0].none' : 'breakdown[0]';
    scope.dataset.path = input.hidden ? 'breakdown[0]' : 'breakdown';
    input.setAttribute('list', scope.value === 'event_prop' ? 'fp-props' : 'fp-user-props');
  };
  scope.addEventListener('change', sync);
  sync();
  const node = el('span', { class: 'breakdown' }, scope, input);
  const read = () => {
    if (scope.value === 'channel') return [{ channel: true }];
    const v = input.value.trim();
    return v ? [{ [scope.value]: v }] : undefined;
  };
  return { node, read };
}

// A breakdown group's key as a label: its values, `(not set)` for null.
export const keyLabel = (k) => Object.values(k || {}).map((v) => (v === null ? '(not set)' : String(v))).join(' · ');

// An event picker: the schema's names, most frequent first, and `$any`
// (any event) when `any` is true.
export function eventSelect(events, value, attrs, any) {
  return select([any ? ['$any', 'any event'] : ['', '— pick an event —'], ...events], value || (any ? '$any' : ''), attrs);
}

// A table: header cells, then rows of cells; a cell is text, or
// [text, class] (class `num` aligns it right).
export function table(id, head, rows) {
  const td = (c) => (Array.isArray(c) ? el('td', { class: c[1], text: c[0] }) : el('td', { text: c }));
  return el('table', { id }, el('thead', {}, el('tr', {}, head.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map(td)))));
}

// A figure with its label, as in the overview's and the stats' cards.
export const card = (label, value) => el('div', { class: 'card' }, el('div', { class: 'v', text: value }), el('div', { class: 'l', text: label }));

const DAY = 86400000;
const OPS = ['eq', 'ne', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte', 'contains', 'starts_with', 'is_set', 'is_not_set'];
// A value as typed: a number or true/false when it reads as one, else text.
const typed = (x) => (x !== '' && Number.isFinite(Number(x)) ? Number(x) : x === 'true' ? true : x === 'false' ? false : x);
const isoDay = (t) => new Date(t).toISOString().slice(0, 10);

// One comparison: a property, an operator and a value. With `scope` it
// reads the event's property (`prop`, into `where`) or the user's profile
// (`user_prop`, into `users`) as picked; without, always `prop`.
export function filterRow(f = {}, scope = 'prop', scoped = true) {
  const v = f.value === undefined ? '' : Array.isArray(f.value) ? f.value.join(', ') : String(f.value);
  const pick = scoped ? select([['prop', 'event'], ['user_prop', 'user']], scope, { class: 'f-scope', title: 'an event property, or a property of the user\'s profile' }) : null;
  const name = el('input', { type: 'text', class: 'f-prop', placeholder: 'property', size: 12, value: f[scope] || '' });
  const sync = () => name.setAttribute('list', pick ? listOf(pick.value) : 'fp-user-props');
  if (pick) pick.addEventListener('change', sync);
  sync();
  const row = el('span', { class: 'filter' }, pick, name, select(OPS, f.op || 'eq', { class: 'f-op' }),
    el('input', { type: 'text', class: 'f-value', placeholder: 'value', size: 12, value: v }),
    el('button', { type: 'button', class: 'remove', text: '×', title: 'Remove', onclick: () => row.remove() }));
  return row;
}
export function readFilter(row) {
  const op = row.querySelector('.f-op').value;
  const scope = row.querySelector('.f-scope')?.value || 'prop';
  const f = { [scope]: row.querySelector('.f-prop').value.trim(), op };
  const raw = row.querySelector('.f-value').value.trim();
  if (op === 'in' || op === 'not_in') f.value = raw.split(',').map((x) => typed(x.trim()));
  else if (op !== 'is_set' && op !== 'is_not_set') f.value = typed(raw);
  return f;
}

// The date range (presets or dates, in UTC) and the time zone of buckets,
// the same on every insight page.
function rangeControls() {
  const preset = select([['all', 'All time'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days'], ['custom', 'Dates']], 'all',
    { id: 'range', 'data-path': 'time_range' });
  const from = el('input', { type: 'date', id: 'range-from', 'data-path': 'time_range.from' });
  const to = el('input', { type: 'date', id: 'range-to', 'data-path': 'time_range.to' });
  const dates = el('span', { class: 'dates', hidden: true }, from, ' through ', to, el('span', { class: 'sub', text: ' (UTC)' }));
  const tz = el('input', { type: 'text', id: 'timezone', 'data-path': 'timezone', placeholder: 'UTC', size: 16,
    title: 'IANA time zone of day, week and month buckets, e.g. Asia/Shanghai' });
  preset.addEventListener('change', () => { dates.hidden = preset.value !== 'custom'; });
  const filters = el('span', { class: 'filters', 'data-path': 'where' });
  const addFilter = (f, scope) => filters.append(filterRow(f, scope));
  const cohort = el('input', { type: 'text', id: 'cohort', 'data-path': 'users', placeholder: 'all users', size: 14 });
  // Filters hold all together (`and`) or any one of them (`or`).
  const match = select([['and', 'all of'], ['or', 'any of']], 'and', { id: 'match', title: 'the filters must all hold, or any one of them' });
  const field = el('div', { class: 'field inline range' }, el('label', { for: 'range', text: 'Range' }), preset, dates,
    el('label', { for: 'timezone', text: 'Time zone' }), tz,
    el('label', { text: 'Where' }), match, filters, el('button', { type: 'button', id: 'add-filter', text: '+ Filter', onclick: () => addFilter() }),
    el('label', { for: 'cohort', text: 'Users in cohort' }), cohort);
  const one = (fs, op) => (fs.length === 1 ? fs[0] : { [op]: fs });
  const apply = (q) => {
    delete q.time_range;
    delete q.timezone;
    if (preset.value === 'custom') {
      q.time_range = {};
      if (from.value) q.time_range.from = `${from.value}T00:00:00Z`;
      if (to.value) q.time_range.to = `${isoDay(Date.parse(to.value + 'T00:00:00Z') + DAY)}T00:00:00Z`;
    } else if (preset.value !== 'all') {
      const end = Date.now();
      q.time_range = { from: new Date(end - Number(preset.value) * DAY).toISOString(), to: new Date(end).toISOString() };
    }
    if (tz.value.trim()) q.timezone = tz.value.trim();
    delete q.where;
    delete q.users;
    // Each row learns its JSON path, so an error there outlines it.
    // A saved cohort stands in the top-level `and` of `users`, beside the
    // profile filters (all of them, or an `or` of them).
    const op = match.value;
    const rows = [...filters.querySelectorAll('.filter')].map((row) => [row, readFilter(row)]);
    const ev = rows.filter(([, f]) => 'prop' in f);
    const us = rows.filter(([, f]) => 'user_prop' in f);
    const name = cohort.value.trim();
    ev.forEach(([row], i) => { row.dataset.path = ev.length === 1 ? 'where' : `where.${op}[${i}]`; });
    if (ev.length) q.where = one(ev.map(([, f]) => f), op);
    if (op === 'or' && name && us.length > 1) {
      cohort.dataset.path = 'users.and[0]';
      us.forEach(([row], i) => { row.dataset.path = `users.and[1].or[${i}]`; });
      q.users = { and: [{ cohort: name }, { or: us.map(([, f]) => f) }] };
    } else {
      if (name) us.unshift([cohort, { cohort: name }]);
      const uop = name ? 'and' : op;
      us.forEach(([row], i) => { row.dataset.path = us.length === 1 ? 'users' : `users.${uop}[${i}]`; });
      if (us.length) q.users = one(us.map(([, f]) => f), uop);
    }
    if (!name) cohort.dataset.path = 'users';
  };
  const load = (q) => {
    const r = q && q.time_range;
    const day = (v, back) => {
      const t = typeof v === 'number' ? v : Date.parse(v);
      return Number.isFinite(t) ? isoDay(t - (back ? 1 : 0)) : '';
    };
    if (r && typeof r === 'object') {
      preset.value = 'custom';
      from.value = r.from === undefined ? '' : day(r.from, false);
      to.value = r.to === undefined ? '' : day(r.to, true);
    }
    dates.hidden = preset.value !== 'custom';
    if (q && typeof q.timezone === 'string') tz.value = q.timezone;
    // The filters of a list under `and` or `or` (the match it sets), or
    // of one comparison.
    const items = (x) => {
      if (x && Array.isArray(x.or)) { match.value = 'or'; return x.or; }
      return x && Array.isArray(x.and) ? x.and : x ? [x] : [];
    };
    for (const f of items(q && q.where)) if (f && typeof f === 'object' && 'prop' in f) addFilter(f);
    const user = (f) => {
      if (f && typeof f.cohort === 'string') cohort.value = f.cohort;
      else if (f && Array.isArray(f.or)) items(f).forEach(user);
      else if (f && typeof f === 'object' && ('user_prop' in f || 'prop' in f)) addFilter({ ...f, user_prop: f.user_prop ?? f.prop }, 'user_prop');
    };
    items(q && q.users).forEach(user);
  };
  return { field, apply, load };
}
