// The console's shell: navigation, the hash router and the API key bar.
import { whenUnauthorized, setKey, key } from './api.js';
import { el, disposeCharts } from './ui.js';
import * as overview from './overview.js';

// The overview comes with the shell; every other page's module is loaded
// when it is first opened, so the first screen waits for few files.
const lazy = (f) => ({ load: () => import(`./${f}.js`) });

const pages = [
  ['', 'Overview', { load: async () => overview }],
  ['funnel', 'Funnel', lazy('funnel')],
  ['trends', 'Trends', lazy('trends')],
  ['retention', 'Retention', lazy('retention')],
  ['interval', 'Interval', lazy('interval')],
  ['distribution', 'Distribution', lazy('distribution')],
  ['sessions', 'Sessions', lazy('sessions')],
  ['paths', 'Paths', lazy('paths')],
  ['attribution', 'Attribution', lazy('attribution')],
  ['lifecycle', 'Lifecycle', lazy('lifecycle')],
  ['stickiness', 'Stickiness', lazy('stickiness')],
  ['heatmap', 'Heatmap', lazy('heatmap')],
  ['cohorts', 'Cohorts', lazy('cohorts')],
  ['live', 'Live', lazy('live')],
  ['raw', 'Query JSON', lazy('raw')],
];

const nav = document.getElementById('nav');
nav.append(...pages.map(([id, label]) => el('a', { href: '#/' + id, 'data-page': id, text: label })));

let cleanup = null;
let shown = 0;
function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [id, qs] = h.split('?');
  const params = new URLSearchParams(qs || '');
  const seen = ++shown;
  if (cleanup) { cleanup(); cleanup = null; }
  disposeCharts();
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === id);
  const root = document.getElementById('page');
  root.replaceChildren();
  const page = pages.find(([p]) => p === id);
  if (page) {
    document.title = `${page[1]} · Footprint`;
    page[2].load().then((m) => {
      // A page left before its module arrived is not drawn.
      if (seen === shown) cleanup = m.render(root, params) || null;
    }, (e) => root.append(el('p', { class: 'error', text: `The page's script did not load: ${e.message}` })));
    return;
  }
  document.title = 'No such page · Footprint';
  root.append(el('h1', { text: 'No such page' }), el('p', { class: 'notyet', text: 'There is no page at this address.' }), el('a', { href: '#/', text: 'Open the overview' }));
}

// The key bar: shown on 401/403, hidden once a request succeeds.
const bar = document.getElementById('keybar');
const msg = document.getElementById('keymsg');
whenUnauthorized((err) => {
  bar.hidden = false;
  bar.className = 'status-' + err.status;
  msg.textContent = err.status === 401
    ? (key() ? `401: the server does not know this key (${err.message}). Enter a key with the query role:` : `401: this server needs an API key with the query role (${err.message}):`)
    : `403: this key may not read data (${err.message}). Enter a key with the query or admin role:`;
});
document.getElementById('keyform').addEventListener('submit', (e) => {
  e.preventDefault();
  setKey(document.getElementById('keyinput').value.trim());
  document.getElementById('keyinput').value = '';
  bar.hidden = true;
  route();
});
document.getElementById('keyforget').addEventListener('click', () => { setKey(''); route(); });

window.addEventListener('hashchange', route);
route();
