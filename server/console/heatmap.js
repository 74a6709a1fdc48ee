// Heatmap: clicks by element, or where on the page they land (a grid of
// page-width columns and fixed-height rows).
import { eventNames, propNames } from './api.js';
import {
  el, card, fmt, pct, select, chart, palette, queryPanel, queryFromHash, insight, eventSelect, propList, table,
} from './ui.js';

export function render(root, params) {
  const { form, run, fail } = insight(root, 'heatmap', 'Heatmap', draw);
  Promise.all([eventNames(), propNames()]).then(([events, props]) => {
    const q0 = queryFromHash(params) || {};
    propList(props);
    const ev = eventSelect(events, q0.event?.event, { id: 'event', 'data-path': 'event' });
    const g = q0.by && typeof q0.by.grid === 'object' ? q0.by.grid : null;
    const mode = select([['element', 'by element'], ['grid', 'on the page (grid)']], g ? 'grid' : 'element', { id: 'by', 'data-path': 'by' });
    const text = (id, v, ph, path) => el('input', { type: 'text', id, list: 'fp-props', size: 10, value: v || '', placeholder: ph, 'data-path': path });
    const element = text('element', q0.by?.element, '$el_text', 'by.element');
    const x = text('grid-x', g?.x, '$x', 'by.grid.x');
    const y = text('grid-y', g?.y, '$y', 'by.grid.y');
    const width = text('grid-width', g?.width, '$viewport_width', 'by.grid.width');
    const cols = el('input', { type: 'number', id: 'grid-cols', min: '1', value: String(g?.cols ?? 20), 'data-path': 'by.grid.cols' });
    const rowPx = el('input', { type: 'number', id: 'grid-row', min: '1', value: String(g?.row_px ?? 50), 'data-path': 'by.grid.row_px' });
    const byElement = el('span', {}, ' property ', element);
    const byGrid = el('span', {}, ' x ', x, ' y ', y, ' page width ', width, ' columns ', cols, ' row height ', rowPx, ' px');
    const sync = () => { byElement.hidden = mode.value !== 'element'; byGrid.hidden = mode.value !== 'grid'; };
    mode.addEventListener('change', sync);
    sync();
    form.append(
      el('div', { class: 'field inline' }, el('label', { for: 'event', text: 'Clicks are' }), ev),
      el('div', { class: 'field inline' }, el('label', { for: 'by', text: 'Count' }), mode, byElement, byGrid),
      el('button', { type: 'submit', class: 'primary', text: 'Run heatmap' }));
    const val = (i) => (i.value.trim() === '' ? null : Number(i.value));
    const build = () => ({
      kind: 'heatmap',
      event: { event: ev.value },
      by: mode.value === 'element'
        ? { element: element.value.trim() || '$el_text' }
        : { grid: { x: x.value.trim() || '$x', y: y.value.trim() || '$y', width: width.value.trim() || '$viewport_width', cols: val(cols), row_px: val(rowPx) } },
    });
    form.addEventListener('submit', (e) => { e.preventDefault(); run(build()); });
    if (q0.kind === 'heatmap') run(q0);
  }, fail);
}

function draw(out, q, r) {
  if (Array.isArray(r.elements)) {
    const rows = r.elements.slice().reverse();
    const box = el('div', { class: 'chart', id: 'heatmap-chart', style: `height: ${Math.max(300, 50 + rows.length * 30)}px` });
    out.replaceChildren(el('div', { class: 'stats', id: 'heatmap-stats' }, card('clicks', fmt(r.clicks)), card('elements', fmt(r.elements.length))),
      box, table('heatmap-table', ['Element', 'Clicks', 'Users', 'Share'],
        r.elements.map((e) => [String(e.element), [fmt(e.clicks), 'num'], [fmt(e.users), 'num'], [pct(e.share), 'num']])),
      queryPanel(q));
    chart(box).setOption({
      color: [palette[1]],
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
      grid: { left: 140, right: 70, top: 10, bottom: 30 },
      xAxis: { type: 'value', name: 'clicks' },
      yAxis: { type: 'category', data: rows.map((e) => String(e.element)) },
      series: [{ type: 'bar', data: rows.map((e) => e.clicks), label: { show: true, position: 'right', formatter: (p) => fmt(p.value) } }],
    });
    return;
  }
  const cols = q.by.grid.cols ?? 20;
  const rowPx = q.by.grid.row_px ?? 50;
  const maxRow = Math.max(0, ...r.cells.map((c) => c.row));
  const max = Math.max(1, ...r.cells.map((c) => c.clicks));
  const total = r.cells.reduce((a, c) => a + c.clicks, 0);
  const box = el('div', { class: 'chart', id: 'heatmap-chart', style: `height: ${Math.min(900, Math.max(320, 80 + (maxRow + 1) * 24))}px` });
  out.replaceChildren(el('div', { class: 'stats', id: 'heatmap-stats' }, card('clicks placed', fmt(total)), card('skipped (no position)', fmt(r.skipped)), card('cells', fmt(r.cells.length))),
    box, queryPanel(q));
  chart(box).setOption({
    tooltip: { formatter: (p) => `column ${p.data[0] + 1} of ${cols}, ${p.data[1] * rowPx}–${(p.data[1] + 1) * rowPx} px down: ${fmt(p.data[2])} clicks, ${fmt(p.data[3])} users` },
    grid: { left: 70, right: 20, top: 10, bottom: 60 },
    xAxis: { type: 'category', data: [...Array(cols).keys()].map((c) => String(c + 1)), name: 'column', splitArea: { show: true } },
    yAxis: { type: 'category', inverse: true, data: [...Array(maxRow + 1).keys()].map((rw) => `${rw * rowPx} px`), splitArea: { show: true } },
    visualMap: { dimension: 2, min: 0, max, calculable: false, orient: 'horizontal', left: 'center', bottom: 0, inRange: { color: ['#fff5eb', '#e8833a', '#9c2f0f'] } },
    series: [{ type: 'heatmap', data: r.cells.map((c) => [c.col, c.row, c.clicks, c.users]) }],
  });
}
