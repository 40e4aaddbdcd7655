// Catalog: every model with its kind, operations, routes (configured / sandboxed / cooling down),
// lifecycle and price range; filter by kind and operation, search by name, alias or provider.
import { el, money } from './api.js';

const UNIT = { image: 'image', megapixel: 'MP', call: 'call', second: 's', token: 'token' };

function price(p) {
  if (!p) return 'no price declared';
  return Object.entries(p.per_unit).map(([metric, r0]) => {
    const per = metric === 'token' ? 1e6 : 1;   // token prices read per million tokens
    const r = { min: r0.min * per, max: r0.max * per };
    const range = r.min === r.max ? money(r.min, p.currency) : `${money(r.min, p.currency)}–${money(r.max, p.currency)}`;
    return `${range} / ${per > 1 ? '1M ' : ''}${UNIT[metric] || metric}${per > 1 ? 's' : ''}`;
  }).join(', ');
}

function routeBadge(r) {
  const status = r.cooling_down ? ['cooling', 'cooling down'] : r.sandboxed ? ['sandbox', 'sandboxed']
    : r.configured ? ['ok', 'configured'] : ['off', `not configured (set ${r.missing_env.join(', ')})`];
  return el('li', {}, el('span', { class: 'provider' }, r.provider), ' ',
    el('span', { class: `badge ${status[0]}` }, status[1]),
    r.upstream_model !== undefined ? el('span', { class: 'muted' }, ` ${r.upstream_model}`) : null);
}

function tryLink(m) {
  if (m.kind === 'video') return el('a', { class: 'button', href: `#/videos/${encodeURIComponent(m.id)}` }, 'Make a video');
  if (m.kind === 'image') {
    return el('span', { class: 'actions' },
      m.operations.includes('generate') ? el('a', { class: 'button', href: `#/playground/${encodeURIComponent(m.id)}` }, 'Try') : null,
      m.operations.includes('edit') ? el('a', { class: 'button secondary', href: `#/edit/${encodeURIComponent(m.id)}` }, 'Edit images') : null);
  }
  return null;
}

function card(m) {
  const lc = m.lifecycle;
  return el('article', { class: 'model', 'data-model': m.id },
    el('h2', {}, m.name || m.id),
    el('p', { class: 'muted' }, el('code', {}, m.id), m.aliases.length ? ` · aliases: ${m.aliases.join(', ')}` : ''),
    el('p', {}, el('span', { class: `badge kind-${m.kind}` }, m.kind), ' ', m.operations.join(', '),
      lc ? el('span', { class: `badge life-${lc.status}`, title: lc.note || '' }, ` ${lc.status}${lc.shutdown ? ` (shutdown ${lc.shutdown})` : ''}`) : null),
    el('p', { class: 'price' }, price(m.price)),
    el('ul', { class: 'routes', 'aria-label': 'Routes' }, (m.routes || []).map(routeBadge)),
    tryLink(m));
}

export function render(root, { models }) {
  const search = el('input', { id: 'cat-search', type: 'search', placeholder: 'name, alias or provider' });
  const kinds = [...new Set(models.map((m) => m.kind))].sort();
  const ops = [...new Set(models.flatMap((m) => m.operations))].sort();
  const kind = el('select', { id: 'cat-kind' }, el('option', { value: '' }, 'any'), kinds.map((k) => el('option', { value: k }, k)));
  const op = el('select', { id: 'cat-op' }, el('option', { value: '' }, 'any'), ops.map((k) => el('option', { value: k }, k)));
  const count = el('p', { class: 'muted', 'aria-live': 'polite' });
  const list = el('div', { class: 'cards' });
  const apply = () => {
    const q = search.value.trim().toLowerCase();
    const shown = models.filter((m) => (!kind.value || m.kind === kind.value) && (!op.value || m.operations.includes(op.value))
      && (!q || [m.id, m.name, ...m.aliases, ...m.providers].some((s) => (s || '').toLowerCase().includes(q))));
    list.replaceChildren(...shown.map(card));
    count.textContent = `${shown.length} of ${models.length} models`;
  };
  [search, kind, op].forEach((c) => c.addEventListener('input', apply));
  root.append(el('h1', {}, 'Catalog'),
    el('div', { class: 'filters', role: 'search' },
      el('label', { for: 'cat-search' }, 'Search'), search,
      el('label', { for: 'cat-kind' }, 'Kind'), kind,
      el('label', { for: 'cat-op' }, 'Operation'), op),
    count, list);
  apply();
}
