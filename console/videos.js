// Videos: make one from the form built from the model's video schema (priced as you type), follow the
// job list (polled while any job runs), play a finished video, delete one.
import { api, blobUrl, el, explainError, money } from './api.js';
import { build } from './form.js';
import { adjustmentsList, attemptsTimeline, explainView } from './results.js';
import { pricer } from './playground.js';

const POLL_MS = 1500;          // how often the list is refreshed while a job is queued or in progress
const LIST_LIMIT = 20;
let timer = null;
const players = new Map();     // video id -> blob: URL, revoked when the view is left

export function leave() {
  clearTimeout(timer);
  timer = null;
  for (const url of players.values()) URL.revokeObjectURL(url);
  players.clear();
}

/** One webhook delivery: its event, where it stands, its tries and the receiver's last answer. */
function webhookLine(d) {
  const answer = d.last_status === null || d.last_status === undefined ? '' : d.last_status === 0 ? ', receiver unreachable' : `, last answer HTTP ${d.last_status}`;
  const next = d.next_attempt_at && d.state !== 'delivered' ? `, next try ${new Date(d.next_attempt_at * 1000).toLocaleTimeString()}` : '';
  const state = { delivered: 'ok', retrying: 'cooling', given_up: 'off', pending: 'sandbox' }[d.state] || '';
  return el('li', {}, 'Webhook ', el('code', {}, d.type || 'event'), ' ', el('span', { class: `badge ${state}` }, (d.state || '').replace('_', ' ')),
    ` · ${d.attempts} ${d.attempts === 1 ? 'try' : 'tries'}${answer}${next}`);
}

function jobRow(v, onDelete, onPlay) {

  const meta = v.metadata || {};
  return el('article', { class: `job status-${v.status}`, 'data-video': v.id },
    el('h3', {}, el('code', {}, v.id)),
    el('p', {}, el('span', { class: `badge st-${v.status}` }, v.status), ` ${v.model} · ${v.seconds || '?'} s · ${v.size || ''}`,
      ` · ${new Date(v.created_at * 1000).toLocaleTimeString()}`, meta.cost !== null && meta.cost !== undefined ? ` · ${money(meta.cost, meta.cost_currency)}` : ''),
    el('label', { for: `prog-${v.id}`, class: 'sr-only' }, `Progress of ${v.id}`),
    el('progress', { id: `prog-${v.id}`, max: 100, value: v.progress || 0 }, `${v.progress || 0}%`),
    v.prompt ? el('p', { class: 'muted' }, v.prompt) : null,
    v.error ? el('p', { class: 'error' }, `${v.error.code || ''}: ${v.error.message || ''}`) : null,
    el('details', {}, el('summary', {}, 'Adjustments and attempts'), adjustmentsList(meta.adjustments), attemptsTimeline(meta.attempts)),
    (meta.webhooks || []).length ? el('ul', { class: 'webhooks', 'aria-label': 'Webhook deliveries' }, meta.webhooks.map(webhookLine)) : null,
    el('div', { class: 'player', id: `player-${v.id}` }),
    el('div', { class: 'buttons' },
      v.status === 'completed' ? el('button', { type: 'button', class: 'play', onclick: () => onPlay(v) }, 'Play') : null,
      el('button', { type: 'button', class: 'secondary', onclick: () => onDelete(v) }, 'Delete')));
}

export async function render(root, { models, arg }) {
  const usable = models.filter((m) => m.kind === 'video' && m.schemas && m.schemas.video);
  const list = el('div', { id: 'jobs', class: 'jobs', 'aria-live': 'polite' });
  const status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const price = el('p', { id: 'vid-price', class: 'price', 'aria-live': 'polite' });
  const explainSlot = el('div', { id: 'vid-explain' });
  const formSlot = el('div', {});
  let model = usable.find((m) => m.id === arg) || usable.find((m) => m.id === 'sora-2') || usable[0];
  let form = null;

  const play = async (v) => {
    const slot = document.getElementById(`player-${v.id}`);
    slot.replaceChildren(el('p', { class: 'muted' }, 'Loading the video…'));
    try {
      const url = players.get(v.id) || await blobUrl(`/v1/videos/${encodeURIComponent(v.id)}/content`);
      players.set(v.id, url);
      const video = el('video', { controls: true, src: url, 'aria-label': `Video ${v.id}`, playsinline: true });
      slot.replaceChildren(video);
      video.play().catch(() => {});   // autoplay may be refused; the controls are there
    } catch (err) {
      slot.replaceChildren(el('p', { class: 'error', role: 'alert' }, explainError(err)));
    }
  };
  const remove = async (v) => {
    try {
      await api(`/v1/videos/${encodeURIComponent(v.id)}`, { method: 'DELETE' });
      status.textContent = `Deleted ${v.id}.`;
    } catch (err) { status.textContent = explainError(err); }
    refresh();
  };
  const refresh = async () => {
    clearTimeout(timer);
    try {
      const page = await api(`/v1/videos?limit=${LIST_LIMIT}`);
      const open = new Set([...list.querySelectorAll('.player video')].map((v) => v.closest('.job').dataset.video));
      const rows = page.data.map((v) => {
        const row = jobRow(v, remove, play);
        const old = list.querySelector(`[data-video="${CSS.escape(v.id)}"] .player`);
        if (open.has(v.id) && old) row.querySelector('.player').replaceWith(old);
        return row;
      });
      list.replaceChildren(...(rows.length ? rows : [el('p', { class: 'muted' }, 'No videos yet.')]));
      const busy = (v) => v.status === 'queued' || v.status === 'in_progress'
        || ((v.metadata || {}).webhooks || []).some((d) => d.state === 'pending');
      if (page.data.some(busy)) timer = setTimeout(refresh, POLL_MS);
    } catch (err) {
      list.replaceChildren(el('p', { class: 'error', role: 'alert' }, explainError(err)));
    }
  };

  root.append(el('h1', {}, 'Videos'));
  if (model) {
    const picker = el('select', { id: 'vid-model' }, usable.map((m) => el('option', { value: m.id, selected: m.id === model.id }, `${m.name || m.id} (${m.id})`)));
    const bodies = (forPrice) => {
      const values = form.values();
      if (forPrice && !values.prompt) values.prompt = 'a placeholder prompt to price the request';
      return [{ model: model.id, ...values }];
    };
    const reprice = () => pricer('/v1/videos', bodies, price, form)();
    const pick = (m) => {
      model = m;
      form = build(m.schemas.video, reprice);
      formSlot.replaceChildren(form.element);
      history.replaceState(null, '', `#/videos/${encodeURIComponent(m.id)}`);
      reprice();
    };
    picker.addEventListener('change', () => pick(usable.find((m) => m.id === picker.value)));
    const create = el('button', { type: 'submit', id: 'vid-create' }, 'Make the video');
    const submit = async (e) => {
      e.preventDefault();
      const body = bodies(false)[0];
      if (!body.prompt) { form.showError('prompt', 'Write a prompt first.'); return; }
      create.disabled = true;
      try {
        const v = await api('/v1/videos', { method: 'POST', body });
        status.textContent = `Queued ${v.id}.`;
        form.showAdjustments(v.metadata && v.metadata.adjustments);
      } catch (err) {
        status.textContent = explainError(err);
        if (err.param) form.showError(err.param, err.message);
      }
      create.disabled = false;
      refresh();
    };
    const explainBtn = el('button', { type: 'button', class: 'secondary', id: 'vid-explain-btn' }, 'Explain');
    explainBtn.addEventListener('click', async () => {
      try { explainSlot.replaceChildren(explainView(await api('/v1/explain', { method: 'POST', body: { operation: 'video', request: bodies(true)[0] } }))); }
      catch (err) { explainSlot.replaceChildren(el('p', { class: 'error', role: 'alert' }, explainError(err))); }
    });
    root.append(el('form', { class: 'playground', onsubmit: submit, 'aria-label': 'Make a video' },
      el('div', { class: 'field' }, el('label', { for: 'vid-model' }, 'Model'), picker),
      formSlot, price, el('div', { class: 'buttons' }, create, explainBtn), status), explainSlot);
    pick(model);
  }
  root.append(el('h2', {}, 'Jobs'), el('button', { type: 'button', class: 'secondary', onclick: () => refresh() }, 'Refresh'), list);
  refresh();
}
