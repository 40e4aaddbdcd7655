// Usage (admin): spend and requests per team, key, model or provider over time, and the request history
// with filters. It reads GET /v1/usage and GET /v1/requests; a gateway without them says so plainly.
import { api, ApiError, el, explainError, keys, money } from './api.js';

const DIMENSIONS = ['team', 'key', 'model', 'provider'];
const STATUSES = ['succeeded', 'failed', 'pending', 'cancelled'];
const METRICS = { cost: 'Spend', requests: 'Requests', images: 'Images', video_seconds: 'Video seconds' };
const DAY_S = 86400;
const DEFAULT_DAYS = 14;
const PAGE = 50;
const MAX_BAR_PX = 40;

/** Every UTC day from `from` to `to` (YYYY-MM-DD), so the chart's x axis is time, gaps included. */
function daysBetween(from, to) {
  const out = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`) && out.length < 400; t += DAY_S * 1000) out.push(isoDay(new Date(t)));
  return out;
}

function rowsOf(body) { return Array.isArray(body) ? body : (body && (body.data || body.rows)) || []; }

function isoDay(d) { return d.toISOString().slice(0, 10); }

/** A bar chart (SVG, no library): one bar per day, stacked by the chosen dimension; a table says the same. */
function chart(rows, dimension, metric, days) {
  const groups = [...new Set(rows.map((r) => r[dimension] ?? '(none)'))].sort();
  const total = (day, g) => rows.filter((r) => (r.day || r.date) === day && (r[dimension] ?? '(none)') === g)
    .reduce((s, r) => s + Number(r[metric] || 0), 0);
  const sums = days.map((d) => groups.reduce((s, g) => s + total(d, g), 0));
  const max = Math.max(1e-9, ...sums);
  const W = 640, H = 220, pad = 28, bw = Math.min(MAX_BAR_PX, Math.max(4, (W - pad) / Math.max(1, days.length) - 4));
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H + 20}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${METRICS[metric]} per day by ${dimension}`);
  days.forEach((day, i) => {
    let y = H;
    groups.forEach((g, gi) => {
      const v = total(day, g);
      if (!v) return;
      const h = (v / max) * (H - pad);
      const rect = document.createElementNS(ns, 'rect');
      Object.entries({ x: pad + i * (bw + 4), y: y - h, width: bw, height: h, class: `series s${gi % 8}` }).forEach(([k, val]) => rect.setAttribute(k, val));
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${day} · ${g}: ${metric === 'cost' ? money(v) : v}`;
      rect.append(title);
      svg.append(rect);
      y -= h;
    });
    const label = document.createElementNS(ns, 'text');
    Object.entries({ x: pad + i * (bw + 4) + bw / 2, y: H + 14, 'text-anchor': 'middle', class: 'axis' }).forEach(([k, val]) => label.setAttribute(k, val));
    label.textContent = day.slice(5);
    if (days.length <= 16 || i % Math.ceil(days.length / 16) === 0) svg.append(label);
  });
  const top = document.createElementNS(ns, 'text');
  Object.entries({ x: 0, y: pad - 8, class: 'axis' }).forEach(([k, val]) => top.setAttribute(k, val));
  top.textContent = `max ${metric === 'cost' ? money(max) : max} / day`;
  svg.append(top);
  const legend = el('ul', { class: 'legend' }, groups.map((g, gi) => el('li', {}, el('span', { class: `swatch s${gi % 8}`, 'aria-hidden': 'true' }), g)));
  const table = el('table', {}, el('caption', { class: 'sr-only' }, `${METRICS[metric]} by ${dimension}`),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, dimension), ...Object.values(METRICS).map((m) => el('th', { scope: 'col' }, m)))),
    el('tbody', {}, groups.map((g) => {
      const mine = rows.filter((r) => (r[dimension] ?? '(none)') === g);
      const sum = (k) => mine.reduce((s, r) => s + Number(r[k] || 0), 0);
      return el('tr', {}, el('th', { scope: 'row' }, g), el('td', {}, money(sum('cost'))), el('td', {}, sum('requests')),
        el('td', {}, sum('images')), el('td', {}, sum('video_seconds')));
    })));
  return el('div', { class: 'chart' }, rows.length ? svg : el('p', { class: 'muted' }, 'No usage in this period.'), legend, table);
}

function requestRow(r) {
  const when = r.created_at || r.time || r.timestamp;
  return el('tr', {},
    el('td', {}, when ? new Date((typeof when === 'number' ? when * 1000 : when)).toLocaleString() : ''),
    el('td', {}, el('code', {}, r.id || '')), el('td', {}, r.key || r.key_name || ''), el('td', {}, r.model || ''),
    el('td', {}, r.provider || ''), el('td', {}, String(r.status ?? '')), el('td', {}, r.error_code || ''),
    el('td', {}, money(r.cost ?? (typeof r.cost_micros === 'number' ? r.cost_micros / 1e6 : null), r.cost_currency || 'USD')), el('td', {}, r.latency_ms !== undefined ? `${Math.round(r.latency_ms)} ms` : ''),
    el('td', {}, Array.isArray(r.attempts) ? r.attempts.length : (r.attempts ?? '')),
    el('td', {}, Array.isArray(r.adjustments) ? r.adjustments.map((a) => a.param).join(', ') : (r.adjustments ?? '')));
}

function missing(what) {
  return el('p', { class: 'notice info', role: 'status' },
    `This gateway has no ${what} endpoint yet (it answered 404), so there is nothing to show here. `
    + 'Usage appears once the gateway records it (GET /v1/usage and GET /v1/requests).');
}

export async function render(root) {
  const admin = el('input', { id: 'admin-key', type: 'password', autocomplete: 'off', value: keys.admin() });
  const now = new Date();
  const from = el('input', { id: 'u-from', type: 'date', value: isoDay(new Date(now - DEFAULT_DAYS * DAY_S * 1000)) });
  const to = el('input', { id: 'u-to', type: 'date', value: isoDay(now) });
  const dim = el('select', { id: 'u-dim' }, DIMENSIONS.map((d) => el('option', { value: d }, d)));
  const metric = el('select', { id: 'u-metric' }, Object.entries(METRICS).map(([k, v]) => el('option', { value: k }, v)));
  const statusFilter = el('select', { id: 'u-status' }, el('option', { value: '' }, 'any'), STATUSES.map((v) => el('option', { value: v }, v)));
  const chartSlot = el('div', { id: 'usage-chart', 'aria-live': 'polite' });
  const tbody = el('tbody', {});
  const more = el('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  const reqSlot = el('div', { id: 'usage-requests' });
  const reqMsg = el('div', {});
  const tableWrap = el('div', { class: 'table-wrap' });
  let usageRows = [];
  let cursor = null;

  // whole UTC days, both ends included: usage takes the dates, the request history UNIX seconds
  const range = () => ({ start: Math.floor(new Date(`${from.value}T00:00:00Z`) / 1000),
    end: Math.floor(new Date(`${to.value}T00:00:00Z`) / 1000) + DAY_S });
  const loadUsage = async () => {
    chartSlot.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    try {
      const q = new URLSearchParams({ group_by: `day,${dim.value}`, start: from.value, end: to.value });
      usageRows = rowsOf(await api(`/v1/usage?${q}`, { admin: true }));
      chartSlot.replaceChildren(chart(usageRows, dim.value, metric.value, daysBetween(from.value, to.value)));
    } catch (err) {
      chartSlot.replaceChildren(err instanceof ApiError && err.status === 404 ? missing('usage') : el('p', { class: 'error', role: 'alert' }, explainError(err)));
    }
  };
  const loadRequests = async (append = false) => {
    const { start, end } = range();
    const q = new URLSearchParams({ limit: String(PAGE), start: String(start), end: String(end) });
    if (statusFilter.value) q.set('status', statusFilter.value);
    if (append && cursor) q.set('after', cursor);
    try {
      const body = await api(`/v1/requests?${q}`, { admin: true });
      const rows = rowsOf(body);
      if (!append) tbody.replaceChildren();
      tbody.append(...rows.map(requestRow));
      cursor = body.next_cursor || null;
      more.hidden = !cursor;
      reqMsg.replaceChildren();
      tableWrap.hidden = false;
    } catch (err) {
      tableWrap.hidden = true;
      more.hidden = true;
      reqMsg.replaceChildren(err instanceof ApiError && err.status === 404 ? missing('request history') : el('p', { class: 'error', role: 'alert' }, explainError(err)));
    }
  };
  more.addEventListener('click', () => loadRequests(true));
  const reload = () => { keys.setAdmin(admin.value.trim()); loadUsage(); loadRequests(); };
  [from, to, statusFilter].forEach((c) => c.addEventListener('change', reload));
  [dim, metric].forEach((c) => c.addEventListener('change', () => chartSlot.replaceChildren(chart(usageRows, dim.value, metric.value, daysBetween(from.value, to.value)))));

  tableWrap.append(el('table', { class: 'requests' },
    el('caption', { class: 'sr-only' }, 'Request history'),
    el('thead', {}, el('tr', {}, ['Time', 'Id', 'Key', 'Model', 'Provider', 'Status', 'Error', 'Cost', 'Latency', 'Attempts', 'Adjusted']
      .map((h) => el('th', { scope: 'col' }, h)))), tbody));
  reqSlot.append(reqMsg, tableWrap, more);
  root.append(el('h1', {}, 'Usage'),
    el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); reload(); } },
      el('label', { for: 'admin-key' }, 'Admin key'), admin,
      el('small', { class: 'muted' }, 'optional: without it, your gateway key\'s own team'),
      el('label', { for: 'u-from' }, 'From'), from, el('label', { for: 'u-to' }, 'To'), to,
      el('label', { for: 'u-dim' }, 'By'), dim, el('label', { for: 'u-metric' }, 'Show'), metric,
      el('label', { for: 'u-status' }, 'Status'), statusFilter,
      el('button', { type: 'submit' }, 'Show')),
    el('h2', {}, 'Over time'), chartSlot, el('h2', {}, 'Requests'), reqSlot);
  reload();
}
