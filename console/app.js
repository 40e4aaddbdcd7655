// The console's shell: the key form, the model catalog shared by every view, and a hash router.
import { api, ApiError, el, explainError, keys } from './api.js';
import * as catalog from './catalog.js';
import * as playground from './playground.js';
import * as edit from './edit.js';
import * as videos from './videos.js';
import * as usage from './usage.js';

const VIEWS = { catalog, playground, edit, videos, usage };
const state = { models: null, modelsError: null, current: null };
const notice = document.getElementById('notice');

export function showNotice(message, kind = 'error') {
  notice.textContent = message;
  notice.className = `notice ${kind}`;
  notice.hidden = !message;
}

/** Every model with routes, lifecycle, prices and schemas: one call, kept until the key changes. */
export async function models() {
  if (!state.models) {
    state.models = api('/v1/models?detail=true&schema=true').then((r) => r.data);
    state.models.catch(() => { state.models = null; });
  }
  return state.models;
}

async function checkKey() {
  try {
    await models();
    showNotice('');
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showNotice(keys.get()
        ? `The gateway refused this key: ${err.message} Enter a valid gateway key above.`
        : 'This gateway needs a key: enter your gateway key above (it stays in this tab only).');
    } else {
      showNotice(explainError(err));
    }
    return false;
  }
}

async function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'catalog').split('/');
  const view = VIEWS[name] || catalog;
  const main = document.getElementById('main');
  if (state.current && state.current.leave) state.current.leave();
  document.querySelectorAll('nav a').forEach((a) => {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  main.replaceChildren();
  state.current = view;
  if (!(await checkKey())) {
    main.append(el('h1', {}, 'Enter a gateway key'),
      el('p', { class: 'empty' }, 'The console calls this gateway\'s API with your key; type it in the Gateway key field at the top. '
        + 'It is kept in this tab only (sessionStorage) and forgotten when the tab closes.'));
    main.querySelector('h1').tabIndex = -1;
    main.querySelector('h1').focus();
    return;
  }
  await view.render(main, { models: await models(), arg: decodeURIComponent(rest.join('/')) });
  const heading = main.querySelector('h1');
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

document.getElementById('key').value = keys.get();
document.getElementById('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  keys.set(document.getElementById('key').value.trim());
  state.models = null;
  route();
});
document.getElementById('key-forget').addEventListener('click', () => {
  keys.set('');
  document.getElementById('key').value = '';
  state.models = null;
  route();
});
window.addEventListener('hashchange', route);
route();
