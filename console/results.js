// What came back: each image with its measured size and format, the cost, the attempts as a timeline and
// every adjustment; and the explain view, the exact upstream request per route.
import { el, money } from './api.js';
import { fmt } from './form.js';

const MIME = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif' };

export function attemptsTimeline(attempts) {
  return el('ol', { class: 'timeline', 'aria-label': 'Attempts' }, (attempts || []).map((a, i) => el('li', { class: `attempt ${a.outcome === 'ok' ? 'ok' : 'failed'}` },
    el('strong', {}, `${i + 1}. ${a.provider}`), ` ${a.upstream_model || ''} — ${a.outcome}`,
    a.error ? ` (${a.error.code || a.error})` : '',
    a.latency_ms !== undefined ? ` · ${Math.round(a.latency_ms)} ms` : '',
    a.cost !== undefined && a.cost !== null ? ` · ${money(a.cost, a.cost_currency)}` : '',
    a.may_be_billed ? el('span', { class: 'badge cooling', title: 'the provider may have billed this attempt' }, ' may be billed') : '',
    a.sandbox ? el('span', { class: 'badge sandbox' }, ' sandbox') : '')));
}

export function adjustmentsList(adjustments) {
  if (!adjustments || !adjustments.length) return el('p', { class: 'muted' }, 'No adjustments: the request was used as sent.');
  return el('ul', { class: 'adjustments', 'aria-label': 'Adjustments' }, adjustments.map((a) => el('li', {},
    el('code', {}, a.param), `: asked ${fmt(a.requested)} → ${fmt(a.applied)}`, el('span', { class: 'muted' }, ` (${a.reason})`))));
}

/** One image answer as a card; `asked` is the body sent (to compare sizes). */
export function imageCard(body, asked, seconds) {
  const meta = body.metadata || {};
  const format = body.output_format || 'png';
  const figures = (body.data || []).map((d, i) => {
    const src = d.url || `data:${MIME[format] || 'image/png'};base64,${d.b64_json}`;
    const measured = el('span', { class: 'measured' }, 'measuring…');
    const img = el('img', { src, alt: `Image ${i + 1} for “${asked.prompt || ''}”`, loading: 'lazy' });
    img.addEventListener('load', () => { measured.textContent = `${img.naturalWidth}×${img.naturalHeight} px`; });
    img.addEventListener('error', () => { measured.textContent = 'could not load'; });
    return el('figure', {}, el('a', { href: src, target: '_blank', rel: 'noopener' }, img),
      el('figcaption', {}, measured, ` · ${format}`, d.revised_prompt ? el('span', { class: 'muted' }, ` · revised: ${d.revised_prompt}`) : null));
  });
  return el('article', { class: 'result', 'data-model': meta.model },
    el('h3', {}, meta.model || asked.model, el('span', { class: 'muted' }, ` via ${meta.provider || '?'}`)),
    el('div', { class: 'images' }, figures),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Size'), el('dd', {}, body.size || '?', asked.size && asked.size !== body.size ? el('span', { class: 'muted' }, ` (asked ${asked.size})`) : ''),
      el('dt', {}, 'Cost'), el('dd', { class: 'cost' }, money(meta.cost, meta.cost_currency)),
      seconds !== undefined ? el('dt', {}, 'Took') : null, seconds !== undefined ? el('dd', {}, `${seconds.toFixed(1)} s`) : null),
    el('h4', {}, 'Adjustments'), adjustmentsList(meta.adjustments),
    el('h4', {}, 'Attempts'), attemptsTimeline(meta.attempts));
}

export function errorCard(model, message) {
  return el('article', { class: 'result failed', 'data-model': model }, el('h3', {}, model), el('p', { class: 'error', role: 'alert' }, message));
}

/** `POST /v1/explain`'s answer: the shape, the adjustments, and per route what the provider would get. */
export function explainView(out) {
  return el('section', { class: 'explain', 'aria-label': 'Explain' },
    el('h3', {}, `What the provider receives for ${out.model}`),
    el('p', {}, 'Shape: ', el('code', {}, out.shape.size || '?'), out.shape.aspect_ratio ? ` (${out.shape.aspect_ratio}${out.shape.resolution ? `, ${out.shape.resolution}` : ''})` : ''),
    adjustmentsList(out.adjustments),
    out.routes.map((r) => el('details', { class: 'route', open: r.priority === out.routes[0].priority },
      el('summary', {}, el('strong', {}, r.provider), ` → ${r.upstream_model} · priority ${r.priority}`, r.calls > 1 ? ` · ${r.calls} calls (${(r.batch_sizes || []).join('+')})` : ''),
      el('p', {}, el('code', {}, `${r.request.method} ${r.request.url}`)),
      el('pre', { class: 'code', tabindex: '0' }, JSON.stringify(r.request, null, 2)))));
}
