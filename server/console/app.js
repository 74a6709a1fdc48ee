// The console's shell: navigation, the hash router and the API key bar.
import { whenUnauthorized, setKey, key } from './api.js';
import { el, disposeCharts } from './ui.js';
import * as overview from './overview.js';
import * as funnel from './funnel.js';
import * as trends from './trends.js';
import * as retention from './retention.js';
import * as interval from './interval.js';
import * as distribution from './distribution.js';
import * as cohorts from './cohorts.js';
import * as sessions from './sessions.js';
import * as paths from './paths.js';
import * as attribution from './attribution.js';
import * as lifecycle from './lifecycle.js';
import * as stickiness from './stickiness.js';
import * as heatmap from './heatmap.js';
import * as live from './live.js';
import * as raw from './raw.js';

const pages = [
  ['', 'Overview', overview],
  ['funnel', 'Funnel', funnel],
  ['trends', 'Trends', trends],
  ['retention', 'Retention', retention],
  ['interval', 'Interval', interval],
  ['distribution', 'Distribution', distribution],
  ['sessions', 'Sessions', sessions],
  ['paths', 'Paths', paths],
  ['attribution', 'Attribution', attribution],
  ['lifecycle', 'Lifecycle', lifecycle],
  ['stickiness', 'Stickiness', stickiness],
  ['heatmap', 'Heatmap', heatmap],
  ['cohorts', 'Cohorts', cohorts],
  ['live', 'Live', live],
  ['raw', 'Query JSON', raw],
];

const nav = document.getElementById('nav');
nav.append(...pages.map(([id, label]) => el('a', { href: '#/' + id, 'data-page': id, text: label })));

let cleanup = null;
function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [id, qs] = h.split('?');
  const params = new URLSearchParams(qs || '');
  if (cleanup) { cleanup(); cleanup = null; }
  disposeCharts();
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === id);
  const root = document.getElementById('page');
  root.replaceChildren();
  const page = pages.find(([p]) => p === id);
  if (page) {
    document.title = `${page[1]} · Footprint`;
    cleanup = page[2].render(root, params) || null;
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
