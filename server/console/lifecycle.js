// Lifecycle: per bucket, the active users who are new, returning or
// resurrecting, and those gone dormant (drawn below zero).
import { eventNames } from './api.js';
import { el, fmt, select, chart, queryPanel, queryFromHash, insight, eventSelect, table } from './ui.js';

const PARTS = [['new', '#3aa57a'], ['returning', '#2f6fde'], ['resurrecting', '#e8833a'], ['dormant', '#c9475c']];

export function render(root, params) {
  const { form, run, fail } = insight(root, 'lifecycle', 'Lifecycle', draw);
  eventNames().then((events) => {
    const fromUrl = queryFromHash(params);
    const q0 = fromUrl || {};
    const ev = eventSelect(events, q0.event?.event, { id: 'event', 'data-path': 'event' }, true);
    const interval = select(['day', 'week', 'month'], q0.interval || 'week', { id: 'interval', 'data-path': 'interval' });
    const newBy = el('input', { type: 'text', id: 'new_by', list: 'fp-user-props', size: 14, placeholder: 'first event', 'data-path': 'new_by',
      value: q0.new_by?.user_prop || '', title: 'a profile property holding the time the user was created' });
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'event', text: 'Active means did' }), ev,
        el('label', { for: 'interval', text: 'per' }), interval),
      el('div', { class: 'field inline' }, el('label', { for: 'new_by', text: 'New by' }), newBy),
      el('button', { type: 'submit', class: 'primary', text: 'Run lifecycle' }));
    const build = () => {
      const q = { kind: 'lifecycle', event: { event: ev.value }, interval: interval.value };
      if (newBy.value.trim()) q.new_by = { user_prop: newBy.value.trim() };
      return q;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    run(fromUrl || build());
  }, fail);
}

function draw(out, q, r) {
  const box = el('div', { class: 'chart', id: 'lifecycle-chart' });
  const t = table('lifecycle-table', ['Bucket', ...PARTS.map(([p]) => p)],
    r.buckets.map((b, i) => [b, ...PARTS.map(([p]) => [fmt(r[p][i]), 'num'])]));
  out.replaceChildren(box,
    el('p', { class: 'sub', text: 'New: first active ever in this bucket. Returning: active in the bucket before too. Resurrecting: active again after a gap. Dormant: active in the bucket before, not in this one.' }),
    el('details', { class: 'querypanel', open: r.buckets.length <= 12 }, el('summary', { text: 'Counts' }), t), queryPanel(q));
  chart(box).setOption({
    color: PARTS.map(([, c]) => c),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { top: 0 },
    grid: { left: 60, right: 20, top: 40, bottom: 30 },
    xAxis: { type: 'category', data: r.buckets },
    yAxis: { type: 'value', name: 'users' },
    series: PARTS.map(([p]) => ({ name: p, type: 'bar', stack: 'users', data: r[p] })),
  });
}
