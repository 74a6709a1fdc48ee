// Cohorts (`users`): users whose profile matches, who did events (with
// counts and windows) and did not do others; the members counted by a
// profile property; save the cohort by name for any query's `users`.
import { eventNames, profiles } from './api.js';
import {
  el, card, fmt, pct, select, chart, palette, queryPanel, queryFromHash, insight, filterRow, readFilter, keyLabel, table,
} from './ui.js';

const OPS = [['gte', 'at least'], ['eq', 'exactly'], ['lte', 'at most']];
const UNITS = ['hour', 'day', 'week'];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'cohorts', 'Cohorts', draw);
  eventNames().then((events) => {
    const q0 = queryFromHash(params) || {};
    const list = (id, label, withCount) => {
      const ol = el('ol', { class: 'steps', id, 'data-path': id });
      const renumber = () => ol.querySelectorAll('li').forEach((li, i) => {
        li.dataset.path = `${id}[${i}]`;
      });
      const add = (c = {}) => {
        const within = c.within && typeof c.within === 'object' ? c.within : {};
        const li = el('li', {},
          select([['', '— pick an event —'], ...events], c.event || '', { class: 'c-event' }),
          withCount ? select(OPS, c.count?.op || 'gte', { class: 'c-op' }) : null,
          withCount ? el('input', { type: 'number', class: 'c-n', min: '1', value: String(c.count?.value ?? 1) }) : null,
          withCount ? ' times' : null,
          ' within the last ', el('input', { type: 'number', class: 'c-within', min: '1', placeholder: 'any', value: within.value === undefined ? '' : String(within.value) }),
          select(UNITS, within.unit || 'day', { class: 'c-unit' }),
          el('button', { type: 'button', class: 'remove', text: '×', title: 'Remove', onclick: () => { li.remove(); renumber(); } }));
        ol.append(li);
        renumber();
      };
      for (const c of Array.isArray(q0[id]) ? q0[id] : []) add(c);
      const read = () => [...ol.querySelectorAll('li')].map((li) => {
        const c = { event: li.querySelector('.c-event').value };
        if (withCount) {
          const n = li.querySelector('.c-n').value.trim();
          const op = li.querySelector('.c-op').value;
          if (!(op === 'gte' && n === '1')) c.count = { op, value: n === '' ? null : Number(n) };
        }
        const w = li.querySelector('.c-within').value.trim();
        if (w !== '') c.within = { value: Number(w), unit: li.querySelector('.c-unit').value };
        return c;
      });
      const field = el('div', { class: 'field' }, el('label', { text: label }), ol,
        el('button', { type: 'button', id: `add-${id}`, text: '+ Add', onclick: () => add() }));
      return { field, read, add };
    };
    const did = list('did', 'Did', true);
    const didNot = list('did_not', 'Did not', false);
    if (!Array.isArray(q0.did) && !Array.isArray(q0.did_not)) did.add();
    // Profile conditions on the schema's profile properties.
    const profile = el('span', { class: 'filters', id: 'profile', 'data-path': 'profile' });
    const p0 = q0.profile;
    for (const f of p0 && Array.isArray(p0.and) ? p0.and : p0 ? [p0] : []) {
      if (f && typeof f === 'object') profile.append(filterRow({ ...f, prop: f.prop ?? f.user_prop }, 'prop', false));
    }
    const by = el('input', { type: 'text', id: 'cohort-by', list: 'fp-user-props', size: 12, placeholder: 'none', 'data-path': 'breakdown',
      value: Array.isArray(q0.breakdown) && q0.breakdown[0] ? q0.breakdown[0].user_prop || '' : '' });
    const save = el('input', { type: 'text', id: 'save_as', 'data-path': 'save_as', placeholder: 'optional', value: q0.save_as || '' });
    const show = el('input', { type: 'number', id: 'return_users', min: '0', 'data-path': 'return_users', value: String(q0.return_users ?? 20) });
    form.append(
      el('div', { class: 'field' }, el('label', { text: 'Profile' }), profile,
        el('button', { type: 'button', id: 'add-profile', text: '+ Condition', onclick: () => profile.append(filterRow({}, 'prop', false)) })),
      did.field, didNot.field,
      el('div', { class: 'field inline' }, el('label', { for: 'cohort-by', text: 'Count members by profile property' }), by),
      el('div', { class: 'field inline' }, el('label', { for: 'save_as', text: 'Save as' }), save),
      el('div', { class: 'field inline' }, el('label', { for: 'return_users', text: 'List up to' }), show, ' users'),
      el('button', { type: 'submit', class: 'primary', text: 'Find users' }),
      el('p', { class: 'sub', text: '"Within the last" counts back from now: on data from the past, leave it empty.' }));
    const build = () => {
      const q = { kind: 'users' };
      const ps = [...profile.querySelectorAll('.filter')].map(readFilter);
      if (ps.length) q.profile = ps.length === 1 ? ps[0] : { and: ps };
      const d = did.read();
      const n = didNot.read();
      if (d.length) q.did = d;
      if (n.length) q.did_not = n;
      if (by.value.trim()) q.breakdown = [{ user_prop: by.value.trim() }];
      if (save.value.trim()) q.save_as = save.value.trim();
      q.return_users = show.value.trim() === '' ? null : Number(show.value);
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'users') run(q0);
  }, fail);
}

function draw(out, q, r) {
  const stats = el('div', { class: 'stats', id: 'cohorts-stats' }, card('users', fmt(r.users)),
    r.saved_as ? card('saved: use {"cohort": "' + r.saved_as + '"} in any query', r.saved_as) : null);
  const members = r.ids || [];
  const ids = el('div', { id: 'cohorts-members' }, el('h2', { text: `Members (${fmt(members.length)} of ${fmt(r.users)}) and their profiles` }),
    table('cohorts-ids', ['User'], members.map((id) => [id])));
  // The members' profiles, one column per property any of them has.
  if (members.length) {
    profiles(members).then((p) => {
      const names = [...new Set(p.profiles.flatMap((x) => Object.keys(x.props || {})))].sort();
      ids.replaceChildren(ids.firstChild, table('cohorts-ids', ['User', ...names],
        p.profiles.map((x) => [x.user, ...names.map((n) => (x.props && n in x.props ? String(x.props[n]) : ''))])));
      ids.dataset.profiles = 'shown';
    }, (e) => ids.append(el('p', { class: 'sub', text: `Profiles not shown: ${e.message}` })));
  }
  const groups = r.groups || [];
  if (!groups.length) {
    out.replaceChildren(stats, ids, queryPanel(q));
    return;
  }
  const box = el('div', { class: 'chart', id: 'cohorts-chart', style: `height: ${Math.max(240, 50 + groups.length * 30)}px` });
  out.replaceChildren(stats, el('h2', { text: `Members by ${Object.keys(groups[0].key).join(', ')}` }), box,
    table('cohorts-groups', ['Value', 'Users', 'Share'], groups.map((g) => [keyLabel(g.key), [fmt(g.users), 'num'], [pct(g.share), 'num']])),
    ids, queryPanel(q));
  const rows = groups.slice().reverse();
  chart(box).setOption({
    color: [palette[4]],
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    grid: { left: 120, right: 70, top: 10, bottom: 30 },
    xAxis: { type: 'value', name: 'users' },
    yAxis: { type: 'category', data: rows.map((g) => keyLabel(g.key)) },
    series: [{ type: 'bar', data: rows.map((g) => g.users), label: { show: true, position: 'right', formatter: (p) => fmt(p.value) } }],
  });
}
