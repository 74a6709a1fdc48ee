// Cohorts (`users`): users who did events (with counts and windows) and
// did not do others; save the cohort by name for any query's `users`.
import { eventNames } from './api.js';
import { el, card, fmt, select, queryPanel, queryFromHash, insight } from './ui.js';

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
    const save = el('input', { type: 'text', id: 'save_as', 'data-path': 'save_as', placeholder: 'optional', value: q0.save_as || '' });
    const show = el('input', { type: 'number', id: 'return_users', min: '0', 'data-path': 'return_users', value: String(q0.return_users ?? 20) });
    form.append(did.field, didNot.field,
      el('div', { class: 'field inline' }, el('label', { for: 'save_as', text: 'Save as' }), save),
      el('div', { class: 'field inline' }, el('label', { for: 'return_users', text: 'List up to' }), show, ' users'),
      el('button', { type: 'submit', class: 'primary', text: 'Find users' }),
      el('p', { class: 'sub', text: '"Within the last" counts back from now: on data from the past, leave it empty.' }));
    const build = () => {
      const q = { kind: 'users' };
      const d = did.read();
      const n = didNot.read();
      if (d.length) q.did = d;
      if (n.length) q.did_not = n;
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
  const ids = r.ids || [];
  const table = el('table', { id: 'cohorts-ids' },
    el('thead', {}, el('tr', {}, el('th', { text: `User ids (${fmt(ids.length)} of ${fmt(r.users)})` }))),
    el('tbody', {}, ids.map((id) => el('tr', {}, el('td', { text: id })))));
  out.replaceChildren(stats, table, queryPanel(q));
}
