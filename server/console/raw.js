// Query JSON: run any query and see the server's answer as it is.
import { query } from './api.js';
import { el, showError, clearError, queryPanel, queryFromHash, setHashQuery, loading } from './ui.js';

const EXAMPLE = { kind: 'events', interval: 'total', metrics: [{ event: '$any', agg: 'count' }] };

export function render(root, params) {
  const initial = queryFromHash(params) || EXAMPLE;
  const text = el('textarea', { id: 'raw-json', rows: 14, value: JSON.stringify(initial, null, 2) });
  text.spellcheck = false;
  const err = el('div', { class: 'error', id: 'raw-error', hidden: true });
  const out = el('div', { class: 'result' });
  const form = el('form', { class: 'builder' }, text, el('button', { type: 'submit', class: 'primary', id: 'raw-run', text: 'Run' }));
  root.append(el('h1', { text: 'Query JSON' }),
    el('p', { class: 'sub', text: 'Any query of QUERY_API.md; the answer is shown exactly as the server sent it.' }), form, err, out);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearError(err, form);
    let q;
    try { q = JSON.parse(text.value); } catch (x) {
      showError(err, form, { status: 0, code: 'bad_json', message: 'not valid JSON: ' + x.message, path: '' });
      return;
    }
    setHashQuery('raw', q);
    loading(out);
    query(q).then((r) => out.replaceChildren(el('pre', { class: 'json', id: 'raw-result', text: JSON.stringify(r, null, 2) }), queryPanel(q)),
      (x) => { out.replaceChildren(); showError(err, form, x); });
  });
}
