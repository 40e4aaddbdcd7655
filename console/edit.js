// Edits: drop or pick images, paint a mask over the first one, send it all as multipart to /v1/images/edits.
// The mask follows OpenAI's convention: a PNG the size of the first image, transparent where the image
// should change, opaque elsewhere.
import { api, el, explainError, postForm } from './api.js';
import { build } from './form.js';
import { errorCard, explainView, imageCard } from './results.js';
import { pricer } from './playground.js';

const PREVIEW_MAX_PX = 512;   // the painting canvas' largest side on screen; the mask is made at full size
const PAINT = 'rgb(255, 40, 80)';
const MAX_INPUTS = 16;         // images taken from one drop; the model's own limit is the gateway's to enforce (400)

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`${file.name} is not an image this browser can read`));
    img.src = URL.createObjectURL(file);
  });
}

/** A blank PNG of this size as a data: URL: what a dry run needs to price an edit (the price and shape
 * depend on the inputs' sizes, not their pixels), a few hundred bytes instead of the upload. */
function blank(width, height) {
  return el('canvas', { width, height }).toDataURL('image/png');
}

/** A canvas over the image to paint the area to change; pointer (mouse, pen, touch) paints. */
function painter(img, brush) {
  const scale = Math.min(1, PREVIEW_MAX_PX / Math.max(img.naturalWidth, img.naturalHeight));
  const w = Math.round(img.naturalWidth * scale), h = Math.round(img.naturalHeight * scale);
  const base = el('canvas', { width: w, height: h, class: 'base', 'aria-hidden': 'true' });
  base.getContext('2d').drawImage(img, 0, 0, w, h);
  const paint = el('canvas', { width: w, height: h, class: 'paint', id: 'mask-canvas', tabindex: '0',
    role: 'img', 'aria-label': 'Mask: paint over the part of the image to change', 'aria-describedby': 'mask-help' });
  const ctx = paint.getContext('2d');
  let painting = false, last = null, painted = false;
  const at = (e) => { const r = paint.getBoundingClientRect(); return [(e.clientX - r.left) * (w / r.width), (e.clientY - r.top) * (h / r.height)]; };
  // Opaque paint (the canvas is shown see-through by CSS): the mask is fully transparent wherever it was painted.
  const stroke = (p) => {
    ctx.strokeStyle = ctx.fillStyle = PAINT;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.lineWidth = Number(brush.value);
    ctx.beginPath();
    if (last) {
      ctx.moveTo(...last);
      ctx.lineTo(...p);
      ctx.stroke();
    } else {
      ctx.arc(p[0], p[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
    }
    last = p;
    painted = true;
    paint.dispatchEvent(new Event('painted', { bubbles: true }));
  };
  paint.addEventListener('pointerdown', (e) => { painting = true; last = null; paint.setPointerCapture(e.pointerId); stroke(at(e)); });
  paint.addEventListener('pointermove', (e) => { if (painting) stroke(at(e)); });
  paint.addEventListener('pointerup', () => { painting = false; last = null; });
  paint.addEventListener('pointercancel', () => { painting = false; last = null; });
  // Keyboard: arrows move the brush (a ring shows where), Space paints there; Shift+arrows paint as they move.
  const ring = el('div', { class: 'brush-ring', 'aria-hidden': 'true', hidden: true });
  let cursor = [w / 2, h / 2];
  const showRing = () => {
    const r = Number(brush.value);
    ring.hidden = false;
    ring.style.cssText = `left:${((cursor[0] - r / 2) / w) * 100}%;top:${((cursor[1] - r / 2) / h) * 100}%;`
      + `width:${(r / w) * 100}%;height:${(r / h) * 100}%`;
  };
  paint.addEventListener('focus', showRing);
  paint.addEventListener('blur', () => { ring.hidden = true; });
  paint.addEventListener('keydown', (e) => {
    const step = Math.max(4, Number(brush.value) / 2);
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      const from = cursor;
      cursor = [Math.min(w, Math.max(0, cursor[0] + moves[e.key][0])), Math.min(h, Math.max(0, cursor[1] + moves[e.key][1]))];
      if (e.shiftKey) { last = from; stroke(cursor); last = null; }
      showRing();
    } else if (e.key === ' ') {
      e.preventDefault();
      last = null;
      stroke(cursor);
      last = null;
    }
  });
  return {
    element: el('div', { class: 'canvas-stack', style: `width:${w}px;aspect-ratio:${w}/${h}` }, base, paint, ring),
    clear() { ctx.clearRect(0, 0, w, h); painted = false; },
    all() { ctx.fillStyle = PAINT; ctx.fillRect(0, 0, w, h); painted = true; },
    get painted() { return painted; },
    /** The mask at the image's own size: opaque, with the painted area cut out (transparent). */
    mask() {
      const full = el('canvas', { width: img.naturalWidth, height: img.naturalHeight });
      const m = full.getContext('2d');
      m.fillStyle = '#000';
      m.fillRect(0, 0, full.width, full.height);
      m.globalCompositeOperation = 'destination-out';
      m.drawImage(paint, 0, 0, full.width, full.height);
      return new Promise((resolve) => full.toBlob(resolve, 'image/png'));
    },
  };
}

export async function render(root, { models, arg }) {
  const usable = models.filter((m) => m.operations.includes('edit') && m.schemas && m.schemas.edit);
  if (!usable.length) { root.append(el('h1', {}, 'Edit images'), el('p', {}, 'No model here takes edits.')); return; }
  let model = usable.find((m) => m.id === arg) || usable.find((m) => m.id === 'gpt-image-1') || usable[0];
  const picker = el('select', { id: 'ed-model' }, usable.map((m) => el('option', { value: m.id, selected: m.id === model.id }, `${m.name || m.id} (${m.id})`)));
  const files = el('input', { type: 'file', id: 'ed-files', accept: 'image/png,image/jpeg,image/webp', multiple: true });
  const drop = el('div', { class: 'dropzone', id: 'ed-drop' }, el('label', { for: 'ed-files' }, 'Images to edit: drop them here or choose files'), files);
  const thumbs = el('ul', { class: 'thumbs', 'aria-label': 'Chosen images' });
  const brush = el('input', { type: 'range', id: 'ed-brush', min: 4, max: 120, value: 36 });
  const canvasSlot = el('div', { class: 'canvas-slot' }, el('p', { class: 'muted' }, 'Choose an image to paint a mask on it.'));
  const formSlot = el('div', {});
  const price = el('p', { id: 'ed-price', class: 'price', 'aria-live': 'polite' });
  const status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const explainSlot = el('div', { id: 'ed-explain' });
  const gallery = el('div', { id: 'ed-gallery', class: 'gallery' });
  const submitBtn = el('button', { type: 'submit', id: 'ed-submit' }, 'Edit');
  let chosen = [];   // [{file, img}]
  let canvas = null;
  let form = null;

  // The dry run prices the edit as JSON with a tiny stand-in image: the price depends on the fields, not pixels.
  let standIns = [blank(1024, 1024)];
  const bodies = (forPrice) => {
    const values = form.values();
    if (!forPrice) return [{ model: model.id, ...values }];
    return [{ model: model.id, ...values, prompt: values.prompt || 'a placeholder prompt to price the request',
      images: standIns.map((url) => ({ image_url: url })) }];
  };
  const explainBody = () => ({ operation: 'edit', request: { ...bodies(true)[0], images: undefined },
    images: chosen.length ? chosen.map((c) => `${c.img.naturalWidth}x${c.img.naturalHeight}`) : undefined,
    mask: Boolean(canvas && canvas.painted) });
  const reprice = () => pricer('/v1/images/edits', bodies, price, form)();

  const pick = (m) => {
    model = m;
    form = build(m.schemas.edit, reprice);
    formSlot.replaceChildren(form.element);
    history.replaceState(null, '', `#/edit/${encodeURIComponent(m.id)}`);
    reprice();
  };
  picker.addEventListener('change', () => pick(usable.find((m) => m.id === picker.value)));

  const choose = async (list) => {
    status.textContent = '';
    try {
      chosen = await Promise.all([...list].slice(0, MAX_INPUTS).map(async (file) => ({ file, img: await loadImage(file) })));
    } catch (err) { status.textContent = err.message; return; }
    thumbs.replaceChildren(...chosen.map((c, i) => el('li', {}, el('img', { src: c.img.src, alt: `Input ${i + 1}: ${c.file.name}` }),
      el('span', { class: 'muted' }, `${c.img.naturalWidth}×${c.img.naturalHeight}`))));
    if (chosen.length) {
      standIns = chosen.map((c) => blank(c.img.naturalWidth, c.img.naturalHeight));
      reprice();
      canvas = painter(chosen[0].img, brush);
      canvasSlot.replaceChildren(canvas.element);
    }
  };
  files.addEventListener('change', () => choose(files.files));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); choose(e.dataTransfer.files); });

  const submit = async (e) => {
    e.preventDefault();
    const body = bodies(false)[0];
    if (!chosen.length) { status.textContent = 'Choose at least one image to edit.'; files.focus(); return; }
    if (!body.prompt) { form.showError('prompt', 'Write a prompt first.'); return; }
    const data = new FormData();
    for (const [k, v] of Object.entries(body)) data.append(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
    const field = chosen.length > 1 ? 'image[]' : 'image';
    chosen.forEach((c) => data.append(field, c.file, c.file.name));
    if (canvas && canvas.painted) data.append('mask', await canvas.mask(), 'mask.png');
    submitBtn.disabled = true;
    status.textContent = `Editing${canvas && canvas.painted ? ' the masked area' : ''}…`;
    try {
      const answer = await postForm('/v1/images/edits', data);
      gallery.prepend(imageCard(answer, body));
      form.showAdjustments(answer.metadata.adjustments);
      status.textContent = 'Done.';
    } catch (err) {
      gallery.prepend(errorCard(model.id, explainError(err)));
      if (err.param) form.showError(err.param, err.message);
      status.textContent = 'Failed.';
    }
    submitBtn.disabled = false;
  };

  const explainBtn = el('button', { type: 'button', class: 'secondary', id: 'ed-explain-btn' }, 'Explain');
  explainBtn.addEventListener('click', async () => {
    try { explainSlot.replaceChildren(explainView(await api('/v1/explain', { method: 'POST', body: explainBody() }))); }
    catch (err) { explainSlot.replaceChildren(el('p', { class: 'error', role: 'alert' }, explainError(err))); }
  });

  root.append(el('h1', {}, 'Edit images'),
    el('form', { class: 'playground', onsubmit: submit, 'aria-label': 'Edit images' },
      el('div', { class: 'field' }, el('label', { for: 'ed-model' }, 'Model'), picker),
      drop, thumbs,
      el('fieldset', { class: 'mask' }, el('legend', {}, 'Mask (optional): paint where the image should change'),
        el('p', { id: 'mask-help', class: 'muted' }, 'Paint with the mouse, a pen or a finger; or focus the image and use the arrow keys '
          + 'to move the brush, Space to paint, Shift+arrows to paint while moving.'),
        canvasSlot,
        el('div', { class: 'buttons' },
          el('label', { for: 'ed-brush' }, 'Brush'), brush,
          el('button', { type: 'button', class: 'secondary', onclick: () => canvas && canvas.clear() }, 'Clear mask'),
          el('button', { type: 'button', class: 'secondary', onclick: () => canvas && canvas.all() }, 'Mask everything'))),
      formSlot, price, el('div', { class: 'buttons' }, submitBtn, explainBtn), status),
    explainSlot, el('h2', {}, 'Results'), gallery);
  pick(model);
}
