// A request form generated from a model's compiled request schema (GET /v1/models/{id}?schema=true): the
// same schema that validates the request. Enums become selects, bounded numbers sliders, the shape fields
// the model's own ratio / tier / size pickers; each field shows how the gateway handles it (its mode).
import { el } from './api.js';

const MODES = {
  passthrough: 'sent to the provider as is',
  renamed: 'sent under the provider\'s own name',
  converted: 'converted to what the provider takes',
  emulated: 'done by the gateway (the provider has no such option)',
};
const HIDDEN = new Set(['model', 'stream', 'image', 'mask', 'input_reference']);
const ADVANCED = new Set(['user', 'webhook_url', 'idempotency_key', 'response_format', 'moderation']);
let counter = 0;

/** A JSON Schema pattern (found anywhere unless anchored) as an HTML `pattern` (always the whole value). */
function htmlPattern(pattern) {
  if (!pattern) return null;
  const start = pattern.startsWith('^') ? pattern.slice(1) : `.*${pattern}`;
  const whole = start.endsWith('$') && !start.endsWith('\\$') ? start.slice(0, -1) : `${start}.*`;
  // browsers compile `pattern` with the v flag, stricter than JSON Schema's regexes (an unescaped `/` in a class):
  // a pattern the browser cannot compile is left to the gateway, which checks it anyway (400 naming the field)
  try { new RegExp(`^(?:${whole})$`, 'v'); return whole; } catch { return null; }
}

function isAlias(prop) { return /^alias of /.test(prop.description || ''); }

function ratioBox(ratio) {
  const [w, h] = ratio.split(':').map(Number);
  const scale = 18 / Math.max(w, h);
  return el('span', { class: 'ratio-box', 'aria-hidden': 'true', style: `width:${Math.max(4, w * scale)}px;height:${Math.max(4, h * scale)}px` });
}

/** Radio buttons (a real radio group: arrow keys move, one tab stop) with a "model default" choice. */
function radios(name, id, values, labelOf = (v) => v, decorate = null) {
  const group = el('div', { class: 'radios', role: 'radiogroup', id });
  const all = [['', 'default'], ...values.map((v) => [v, labelOf(v)])];
  all.forEach(([value, label], i) => {
    const rid = `${id}-${i}`;
    group.append(el('span', { class: 'radio' },
      el('input', { type: 'radio', name: `${name}-${id}`, id: rid, value, checked: value === '' }),
      el('label', { for: rid }, decorate && value ? decorate(value) : null, label)));
  });
  return group;
}

function control(name, prop, shape, id) {
  const examples = prop.examples || [];
  if (name === 'prompt') {
    return el('textarea', { id, rows: 3, required: true, maxlength: prop.maxLength, placeholder: 'Describe what to make' });
  }
  if (name === 'aspect_ratio' && shape.aspect_ratios) return radios(name, id, shape.aspect_ratios, (v) => v, ratioBox);
  if (name === 'resolution' && shape.resolutions) return radios(name, id, shape.resolutions);
  if (prop.enum) {
    const values = prop.enum.some((v) => typeof v === 'string') ? prop.enum.filter((v) => typeof v === 'string') : prop.enum;
    const dflt = prop.default !== undefined ? ` (${prop.default})` : '';
    return el('select', { id }, el('option', { value: '' }, `model default${dflt}`),
      values.map((v) => el('option', { value: JSON.stringify(v) }, String(v))));
  }
  const numeric = prop.type === 'integer' || prop.type === 'number';
  if (numeric && prop.minimum !== undefined && prop.maximum !== undefined) {
    const start = prop.default !== undefined ? prop.default : prop.minimum;
    return el('span', { class: 'slider' },
      el('input', { id, type: 'range', min: prop.minimum, max: prop.maximum, step: prop.type === 'integer' ? 1 : 'any',
        value: start, 'data-untouched': '' }),
      el('output', { for: id, id: `${id}-out` }, prop.default !== undefined ? String(start) : 'default'));
  }
  const list = examples.length ? `${id}-list` : null;
  const datalist = list ? el('datalist', { id: list }, examples.map((v) => el('option', { value: String(v) }))) : null;
  if (numeric || (prop.anyOf && prop.anyOf.some((s) => s.type === 'number'))) {
    return el('span', {}, el('input', { id, type: 'number', min: prop.minimum, max: prop.maximum, step: 'any', list, inputmode: 'decimal' }), datalist);
  }
  if (prop.type === 'boolean') {
    return el('select', { id }, el('option', { value: '' }, 'model default'),
      el('option', { value: 'true' }, 'yes'), el('option', { value: 'false' }, 'no'));
  }
  if (prop.type === 'string' || prop.pattern || examples.length) {
    return el('span', {}, el('input', { id, type: 'text', list, pattern: htmlPattern(prop.pattern),
      maxlength: prop.maxLength, autocomplete: 'off', placeholder: examples.length ? `e.g. ${examples[0]}` : '' }), datalist);
  }
  return null;   // objects, arrays and unions the form can't express: the API still takes them
}

function read(name, prop, node) {
  const group = node.matches('.radios') ? node : null;
  if (group) {
    const checked = group.querySelector('input:checked');
    return checked && checked.value ? checked.value : undefined;
  }
  const input = node.matches('input, select, textarea') ? node : node.querySelector('input, select, textarea');
  if (input.type === 'range') return input.hasAttribute('data-untouched') && prop.default === undefined ? undefined : Number(input.value);
  const raw = input.value.trim();
  if (raw === '') return undefined;
  if (input.tagName === 'SELECT') return JSON.parse(raw);
  if (input.type === 'number') return Number(raw);
  return raw;
}

/**
 * build(schema, onChange) -> { element, values(), showAdjustments(list), showError(param, message) }.
 * `values()` holds only what the user set: the rest is the model's default, as the API would apply it.
 */
export function build(schema, onChange = () => {}) {
  const prefix = `f${++counter}`;
  const shape = schema['x-mediagate-shape'] || {};
  const fields = new Map();
  const main = el('div', { class: 'fields' });
  const advanced = el('div', { class: 'fields' });
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (HIDDEN.has(name) || isAlias(prop) || (prop.enum && prop.enum.length === 1 && prop.enum[0] === false)) continue;
    const id = `${prefix}-${name}`;
    const node = control(name, prop, shape, id);
    if (!node) continue;
    const mode = prop['x-mediagate-mode'];
    const described = prop.description ? `${id}-desc` : null;
    const inputs = node.matches('input, select, textarea') ? [node] : [...node.querySelectorAll('input, select, textarea')];
    if (described) inputs.forEach((i) => i.setAttribute('aria-describedby', `${described} ${id}-adj`));
    const isGroup = node.matches('.radios');
    const label = isGroup ? el('span', { class: 'label', id: `${id}-label` }, name) : el('label', { for: id }, name);
    if (isGroup) node.setAttribute('aria-labelledby', `${id}-label`);
    const wrap = el('div', { class: 'field', 'data-param': name },
      el('div', { class: 'field-head' }, label, mode ? el('span', { class: `mode mode-${mode}`, title: MODES[mode] || mode }, mode) : null),
      node,
      prop.description ? el('small', { id: described, class: 'muted' }, prop.description) : null,
      el('p', { class: 'adjusted-note', id: `${id}-adj`, 'aria-live': 'polite', hidden: true }),
      el('p', { class: 'field-error', id: `${id}-err`, role: 'alert', hidden: true }));
    fields.set(name, { prop, node, wrap });
    (ADVANCED.has(name) ? advanced : main).append(wrap);
    node.addEventListener('input', (e) => {
      if (e.target.type === 'range') {
        e.target.removeAttribute('data-untouched');
        document.getElementById(`${id}-out`).textContent = e.target.value;
      }
      onChange(name);
    });
    node.addEventListener('change', () => onChange(name));
  }
  const element = el('div', { class: 'generated-form' }, main,
    advanced.children.length ? el('details', { class: 'advanced' }, el('summary', {}, 'More options'), advanced) : null);

  return {
    element,
    fields,
    values() {
      const out = {};
      for (const [name, f] of fields) {
        const v = read(name, f.prop, f.node);
        if (v !== undefined) out[name] = v;
      }
      return out;
    },
    set(name, value) {
      const f = fields.get(name);
      if (!f) return;
      const input = f.node.matches('input, select, textarea') ? f.node : f.node.querySelector('input, select, textarea');
      input.value = input.tagName === 'SELECT' ? JSON.stringify(value) : String(value);
    },
    /** Mark each field the gateway changed: what was asked, what is used, and why. */
    showAdjustments(adjustments) {
      for (const [, f] of fields) {
        f.wrap.classList.remove('adjusted');
        f.wrap.querySelector('.adjusted-note').hidden = true;
      }
      for (const a of adjustments || []) {
        const f = fields.get(a.param) || (a.param === 'seconds' && fields.get('duration'));
        if (!f) continue;
        f.wrap.classList.add('adjusted');
        const note = f.wrap.querySelector('.adjusted-note');
        note.textContent = `Adjusted: asked ${fmt(a.requested)}, gets ${fmt(a.applied)} — ${a.reason}`;
        note.hidden = false;
      }
    },
    showError(param, message) {
      for (const [name, f] of fields) {
        const box = f.wrap.querySelector('.field-error');
        const mine = message && name === param;
        box.hidden = !mine;
        box.textContent = mine ? message : '';
        f.wrap.classList.toggle('invalid', Boolean(mine));
      }
    },
  };
}

export function fmt(v) {
  if (v === null || v === undefined) return 'nothing';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
