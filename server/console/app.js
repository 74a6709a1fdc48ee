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
import * as raw from './raw.js';

const pages = [
  ['', 'Overview', overview],
  ['funnel', 'Funnel', funnel],
  ['trends', 'Trends', trends],
  ['retention', 'Retention', retention],
  ['interval', 'Interval', interval],
  ['distribution', 'Distribution', distribution],
  ['cohorts', 'Cohorts', cohorts],
  ['raw', 'Query JSON', raw],
];
// Pages this console does not have yet; each says so and points to Query JSON
// when the server already answers the kind.
const missing = [
  ['sessions', 'Sessions', true], ['paths', 'Paths', true], ['attribution', 'Attribution', true],
  ['lifecycle', 'Lifecycle', true], ['stickiness', 'Stickiness', true], ['heatmap', 'Heatmap', true],
  ['live', 'Live events', false],
];

const nav = document.getElementById('nav');
nav.append(
  ...pages.map(([id, label]) => el('a', { href: '#/' + id, 'data-page': id, text: label })),
  el('span', { class: 'sep' }),
  ...missing.map(([id, label]) => el('a', { href: '#/' + id, 'data-page': id, class: 'later', text: label })),
);

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
  const m = missing.find(([p]) => p === id);
  document.title = 'Not available yet · Footprint';
  root.append(el('h1', { text: m ? m[1] : 'No such page' }),
    el('p', { class: 'notyet', text: m
      ? (m[2]
        ? `The console has no ${m[1].toLowerCase()} page yet. The server answers this kind: run it on the Query JSON page.`
        : `The ${m[1].toLowerCase()} page is not available yet: the server does not compute it yet.`)
      : 'There is no page at this address.' }),
    m && m[2] ? el('a', { href: '#/raw', text: 'Open Query JSON' }) : null);
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
