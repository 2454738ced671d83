// The page: hash routes (#/tasks, #/tasks/new, #/tasks/{id}, #/tasks/{id}/edit, #/status, #/conflicts, #/conflicts/{id}),
// each view a function that renders into <main> and may return a handler for live events.
import { api, onTokenNeeded, setToken, token } from './api.js';
import { h, show, focusMain } from './dom.js';
import * as live from './live.js';
import { tasksView, taskView, taskFormView } from './tasks.js';
import { statusView, conflictsView, conflictView } from './sync.js';

const routes = [
  [/^#\/tasks\/?$/, () => tasksView(), 'tasks'],
  [/^#\/tasks\/new$/, () => taskFormView(null), 'tasks'],
  [/^#\/tasks\/([^/]+)\/edit$/, m => taskFormView(decodeURIComponent(m[1])), 'tasks'],
  [/^#\/tasks\/([^/]+)$/, m => taskView(decodeURIComponent(m[1])), 'tasks'],
  [/^#\/status$/, () => statusView(), 'status'],
  [/^#\/conflicts\/?$/, () => conflictsView(), 'conflicts'],
  [/^#\/conflicts\/(\d+)$/, m => conflictView(Number(m[1])), 'conflicts'],
];

let current = null; // { onEvent(event) } of the view on screen
let routeNumber = 0;

async function route(options = {}) {
  const hash = location.hash || '#/tasks';
  const found = routes.map(([pattern, view, nav]) => [hash.match(pattern), view, nav]).find(([m]) => m);
  document.querySelectorAll('[data-nav]').forEach(a => a.toggleAttribute('aria-current', false));
  if (!found) {
    show('Not found', h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/tasks' }, 'Go to the tasks.')));
    focusMain();
    return;
  }
  const [match, view, nav] = found;
  document.querySelector(`[data-nav="${nav}"]`)?.setAttribute('aria-current', 'page');
  const mine = ++routeNumber;
  current = null;
  try {
    const controller = await view(match);
    if (mine !== routeNumber) return; // the person moved on meanwhile
    current = controller ?? null;
    if (!options.keepFocus) focusMain();
  } catch (error) {
    if (mine !== routeNumber) return;
    show('Error', h('h1', {}, 'Something went wrong'), h('div', { class: 'notice bad', role: 'alert' }, error.message));
    focusMain();
  }
}

// ---- the token: asked once per tab when the server answers 401, kept in sessionStorage ----
let pendingToken = null;
onTokenNeeded(message => {
  pendingToken ??= new Promise(resolve => {
    const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true });
    const form = h('form', {
      class: 'panel', 'aria-labelledby': 'token-title',
      onsubmit: event => {
        event.preventDefault();
        setToken(input.value.trim());
        pendingToken = null;
        updateTokenButton();
        live.reconnect();
        resolve();
      },
    },
      h('h1', { id: 'token-title' }, 'Sign in'),
      message ? h('p', { class: 'error-text', role: 'alert' }, message) : null,
      h('p', {}, 'This server needs its API token (the --token given to schedsync serve). It is kept for this tab only.'),
      h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
      h('button', { type: 'submit' }, 'Continue'));
    show('Sign in', form);
    input.focus();
  });
  return pendingToken;
});

function updateTokenButton() {
  document.getElementById('forget-token').hidden = !token();
}

document.getElementById('forget-token').addEventListener('click', () => {
  setToken(null);
  updateTokenButton();
  location.reload();
});

// ---- live: one connection for the whole page; the view on screen decides what to reload ----
const liveLabel = document.getElementById('live');
live.onStatus(open => {
  liveLabel.textContent = open ? 'live' : 'offline: reconnecting…';
  liveLabel.classList.toggle('off', !open);
});

let badgeTimer = null;
live.onEvent(event => {
  current?.onEvent?.(event);
  if (/conflict|resync|schedule_config_updated/.test(event.type)) {
    clearTimeout(badgeTimer);
    badgeTimer = setTimeout(updateConflictBadge, 150);
  }
});

async function updateConflictBadge() {
  try {
    const { data } = await api('GET', '/api/sync/conflicts');
    const badge = document.getElementById('conflict-count');
    badge.replaceChildren(String(data.length), h('span', { class: 'visually-hidden' }, ' open'));
    badge.hidden = data.length === 0;
  } catch { /* the view shows errors; the badge is a hint */ }
}

window.addEventListener('hashchange', () => route());
window.addEventListener('rerender', e => route(e.detail));
updateTokenButton();
route().then(() => { updateConflictBadge(); live.connect(); });
