// Live events: the last events the server stored and how many arrived per
// minute, read from GET /v1/live every 2 s, to confirm a tracker is wired.
import { live } from './api.js';
import { el, card, fmt, chart, palette, showError, clearError, table } from './ui.js';

const SHOW = 50;
const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });
const when = (t) => new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

export function render(root) {
  const err = el('div', { class: 'error', id: 'live-error', hidden: true });
  const cards = el('div', { class: 'stats', id: 'live-stats' });
  const box = el('div', { class: 'chart small', id: 'live-chart' });
  const list = el('div', { id: 'live-list' });
  const since = el('span', { class: 'sub' });
  root.append(el('h1', { text: 'Live events' }),
    el('p', { class: 'sub', text: 'Events this server stored since it started (from POST /v1/events and the PostHog, Segment and Mixpanel endpoints), newest first; refreshed every 2 s.' }),
    err, cards,
    el('section', {}, el('h2', {}, 'Events stored per minute, last hour ', since), box),
    el('section', {}, el('h2', { text: `Last events (up to ${SHOW})` }), list));
  const c = chart(box);
  let stopped = false;
  const tick = () => live(SHOW).then((r) => {
    if (stopped) return;
    clearError(err, null);
    const pm = r.per_minute;
    const lastMin = pm.length ? pm[pm.length - 1].events : 0;
    since.textContent = `(server up since ${when(r.since)})`;
    cards.replaceChildren(card('stored since start', fmt(r.total)), card('this minute', fmt(lastMin)),
      card('last hour', fmt(pm.reduce((a, m) => a + m.events, 0))),
      card('last event', r.events.length ? clock(r.events[0].received) : 'none yet'));
    c.setOption({
      color: [palette[2]],
      tooltip: { trigger: 'axis' },
      grid: { left: 60, right: 20, top: 20, bottom: 30 },
      xAxis: { type: 'category', data: pm.map((m) => clock(m.minute).slice(0, 5)) },
      yAxis: { type: 'value', name: 'events', minInterval: 1 },
      series: [{ type: 'bar', data: pm.map((m) => m.events) }],
    });
    list.replaceChildren(r.events.length
      ? table('live-table', ['Received (your clock)', 'Event', 'User', 'Event time', 'Properties'],
        r.events.map((e) => [clock(e.received), e.event, e.user, when(e.time), [JSON.stringify(e.props), 'props']]))
      : el('p', { class: 'sub', id: 'live-empty', text: 'No event has arrived since the server started. Send one (a tracker, or POST /v1/events) and it shows here within 2 s.' }));
  }, (e) => { if (!stopped) showError(err, null, e); });
  tick();
  const timer = setInterval(tick, 2000);
  return () => { stopped = true; clearInterval(timer); };
}
