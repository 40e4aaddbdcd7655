// Playground: pick a model, fill the form built from its schema, see the price as you type (?dryRun=true),
// generate, read what changed and why, see what each provider would receive (explain), and run the same
// prompt on up to four models side by side.
import { api, el, explainError, money } from './api.js';
import { build } from './form.js';
import { errorCard, explainView, imageCard } from './results.js';

export const MAX_MODELS = 4;
const PRICE_DEBOUNCE_MS = 250;
const PLACEHOLDER_PROMPT = 'a placeholder prompt to price the request';

/** The shared fields another model can take: present in its schema and, for enums, one of its values. */
export function portable(values, schema) {
  const out = {};
  for (const [k, v] of Object.entries(values)) {
    const prop = (schema.properties || {})[k];
    if (prop && (!prop.enum || prop.enum.includes(v))) out[k] = v;
  }
  return out;
}

export function pricer(path, bodyOf, show, form) {
  let timer = null;
  let seq = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      const bodies = bodyOf(true);
      show.textContent = 'Pricing…';
      try {
        const prices = await Promise.all(bodies.map((b) => api(`${path}?dryRun=true`, { method: 'POST', body: b })));
        if (mine !== seq) return;
        form.showError(null, null);
        form.showAdjustments(prices[0].adjustments);
        const total = prices.reduce((s, p) => s + p.total_cost_micros, 0) / 1e6;
        const each = prices.length > 1 ? ` (${prices.map((p) => `${p.model} ${money(p.total_cost_micros / 1e6, p.currency)}`).join(', ')})` : ` via ${prices[0].provider}`;
        show.textContent = `Estimated price: ${money(total, prices[0].currency)}${each}`;
        show.dataset.micros = String(prices.reduce((s, p) => s + p.total_cost_micros, 0));
      } catch (err) {
        if (mine !== seq) return;
        show.textContent = `Can't price this request: ${explainError(err)}`;
        delete show.dataset.micros;
        if (err.param) form.showError(err.param, err.message);
      }
    }, PRICE_DEBOUNCE_MS);
  };
}

export async function render(root, { models, arg }) {
  const usable = models.filter((m) => m.kind === 'image' && m.operations.includes('generate') && m.schemas && m.schemas.generate);
  if (!usable.length) { root.append(el('h1', {}, 'Playground'), el('p', {}, 'No image model is available.')); return; }
  const first = usable.find((m) => m.id === arg) || usable.find((m) => m.id === 'gpt-image-1') || usable[0];
  const picker = el('select', { id: 'pg-model' }, usable.map((m) => el('option', { value: m.id, selected: m.id === first.id }, `${m.name || m.id} (${m.id})`)));
  const compare = el('fieldset', { class: 'compare' }, el('legend', {}, `Also run on (up to ${MAX_MODELS - 1} more models)`));
  const formSlot = el('div', {});
  const price = el('p', { id: 'pg-price', class: 'price', 'aria-live': 'polite' }, '');
  const status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const explainSlot = el('div', { id: 'pg-explain' });
  const gallery = el('div', { id: 'gallery', class: 'gallery', 'aria-live': 'polite' });
  const generate = el('button', { type: 'submit', id: 'pg-generate' }, 'Generate');
  const explainBtn = el('button', { type: 'button', id: 'pg-explain-btn', class: 'secondary' }, 'Explain: what does the provider get?');
  let form = null;
  let model = first;

  const others = () => [...compare.querySelectorAll('input:checked')].map((c) => usable.find((m) => m.id === c.value));
  const bodies = (forPrice) => {
    const values = form.values();
    if (forPrice && !values.prompt) values.prompt = PLACEHOLDER_PROMPT;
    return [{ model: model.id, ...values },
      ...others().map((m) => ({ model: m.id, ...portable(values, m.schemas.generate) }))];
  };
  const reprice = () => pricer('/v1/images/generations', bodies, price, form)();

  const fillCompare = () => {
    compare.replaceChildren(compare.firstChild, ...usable.filter((m) => m.id !== model.id).map((m) => {
      const id = `cmp-${m.id.replace(/[^a-z0-9]/gi, '-')}`;
      return el('span', { class: 'check' }, el('input', { type: 'checkbox', id, value: m.id }), el('label', { for: id }, m.name || m.id));
    }));
  };
  compare.addEventListener('change', () => {
    const checked = compare.querySelectorAll('input:checked').length;
    compare.querySelectorAll('input:not(:checked)').forEach((c) => { c.disabled = checked >= MAX_MODELS - 1; });
    reprice();
  });

  const pick = (m) => {
    model = m;
    const old = form ? form.values() : {};
    form = build(m.schemas.generate, reprice);
    for (const [k, v] of Object.entries(portable(old, m.schemas.generate))) form.set(k, v);
    formSlot.replaceChildren(form.element);
    fillCompare();
    explainSlot.replaceChildren();
    history.replaceState(null, '', `#/playground/${encodeURIComponent(m.id)}`);
    reprice();
  };
  picker.addEventListener('change', () => pick(usable.find((m) => m.id === picker.value)));

  const submit = async (e) => {
    e.preventDefault();
    const all = bodies(false);
    if (!all[0].prompt) { form.showError('prompt', 'Write a prompt first.'); return; }
    generate.disabled = true;
    status.textContent = `Generating on ${all.length} model${all.length > 1 ? 's' : ''}…`;
    const row = el('div', { class: 'row', style: `--cols:${all.length}` });
    gallery.prepend(row);
    await Promise.all(all.map(async (body) => {
      const slot = el('div', { class: 'slot' }, el('p', { class: 'muted' }, `${body.model}: working…`));
      row.append(slot);
      const started = performance.now();
      try {
        const answer = await api('/v1/images/generations', { method: 'POST', body });
        slot.replaceChildren(imageCard(answer, body, (performance.now() - started) / 1000));
        if (body.model === model.id) form.showAdjustments(answer.metadata.adjustments);
      } catch (err) {
        slot.replaceChildren(errorCard(body.model, explainError(err)));
        if (body.model === model.id && err.param) form.showError(err.param, err.message);
      }
    }));
    status.textContent = 'Done.';
    generate.disabled = false;
  };

  explainBtn.addEventListener('click', async () => {
    explainSlot.replaceChildren(el('p', { class: 'muted' }, 'Rendering the upstream request…'));
    try {
      const out = await api('/v1/explain', { method: 'POST', body: { operation: 'generate', request: bodies(true)[0] } });
      explainSlot.replaceChildren(explainView(out));
    } catch (err) {
      explainSlot.replaceChildren(el('p', { class: 'error', role: 'alert' }, explainError(err)));
    }
  });

  root.append(el('h1', {}, 'Playground'),
    el('form', { class: 'playground', onsubmit: submit, 'aria-label': 'Generate an image' },
      el('div', { class: 'field' }, el('label', { for: 'pg-model' }, 'Model'), picker),
      formSlot, compare, price,
      el('div', { class: 'buttons' }, generate, explainBtn), status),
    explainSlot, el('h2', {}, 'Results'), gallery);
  pick(first);
}
