// Tasks: the list (search, filters, next runs), one task (all fields, next 10 runs, history as field diffs), and the
// create/edit form (the API's validation messages at their fields; If-Match so a stale edit is refused).
import { api, ApiError } from './api.js';
import { h, show, display, same, timeElement, viewerZone, notice, rerender } from './dom.js';

export const TASK_FIELDS = ['name', 'description', 'schedule', 'timezone', 'command', 'args', 'enabled', 'timeout_seconds', 'max_retries', 'tags'];
const SOURCES = { yaml: 'the file', api: 'the API', sql: 'SQL', db: 'the database', resolve: 'a conflict resolution', sync: 'the sync' };

const filters = { q: '', tag: '', enabled: '', validity: '' };
let flash = null; // a message for the next view (e.g. "saved") after a navigation

export function setFlash(kind, text) { flash = { kind, text }; }
function takeFlash() {
  const f = flash;
  flash = null;
  return f ? notice(f.kind, f.text) : null;
}

function debounce(fn, ms = 120) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

const path = id => `/api/tasks/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------- next runs (cached while still in the future)
const nextRunCache = new Map();
async function nextRuns(task, count) {
  const key = `${task.id}|${task.schedule}|${task.timezone}|${count}`;
  const cached = nextRunCache.get(key);
  if (cached && cached.runs.length > 0 && new Date(cached.runs[0]) > new Date()) return cached.runs;
  const { data } = await api('GET', `${path(task.id)}/next-runs?count=${count}`);
  nextRunCache.set(key, { runs: data.runs });
  return data.runs;
}

/** Runs at most four requests at a time, so a long list does not flood the server. */
async function inParallel(items, work, width = 4) {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    while (queue.length > 0) await work(queue.shift());
  }));
}

// ---------------------------------------------------------------- the list
export async function tasksView() {
  let tasks = (await api('GET', '/api/tasks')).data;
  const tableHolder = h('div', {});
  const count = h('p', { role: 'status', class: 'muted', id: 'task-count' });
  const tagSelect = h('select', { id: 'filter-tag', name: 'tag', onchange: e => { filters.tag = e.target.value; renderTable(); } });

  function fillTags() {
    const tags = [...new Set(tasks.flatMap(t => t.tags ?? []))].sort();
    if (filters.tag && !tags.includes(filters.tag)) tags.unshift(filters.tag);
    tagSelect.replaceChildren(h('option', { value: '' }, 'any tag'), ...tags.map(t => h('option', { value: t }, t)));
    tagSelect.value = filters.tag;
  }

  function matches(task) {
    const q = filters.q.trim().toLowerCase();
    if (q && ![task.id, task.name, task.description, task.command, task.schedule, ...(task.tags ?? [])].some(v => (v ?? '').toLowerCase().includes(q))) return false;
    if (filters.tag && !(task.tags ?? []).includes(filters.tag)) return false;
    if (filters.enabled && String(task.enabled === true) !== filters.enabled) return false;
    if (filters.validity === 'invalid' && !task.invalid) return false;
    if (filters.validity === 'valid' && task.invalid) return false;
    return true;
  }

  function renderTable() {
    const shown = tasks.filter(matches);
    count.textContent = `${shown.length} of ${tasks.length} task${tasks.length === 1 ? '' : 's'} shown`;
    if (shown.length === 0) {
      tableHolder.replaceChildren(h('p', {}, tasks.length === 0 ? 'No tasks yet.' : 'No task matches these filters.'));
      return;
    }
    const rows = shown.map(task => {
      const inTaskZone = h('td', { 'data-label': 'Next run (task zone)', class: 'next-task-zone' }, task.invalid ? '—' : '…');
      const inViewerZone = h('td', { 'data-label': `Next run (${viewerZone})`, class: 'next-viewer-zone' }, task.invalid ? '—' : '…');
      const row = h('tr', { 'data-id': task.id },
        h('td', { 'data-label': 'Task' }, h('a', { href: `#/tasks/${encodeURIComponent(task.id)}` }, task.id),
          task.name && task.name !== task.id ? h('div', { class: 'muted' }, task.name) : null,
          task.invalid ? h('div', {}, h('span', { class: 'pill bad' }, 'invalid'), h('ul', { class: 'plain problems' }, (task.problems ?? []).map(p => h('li', {}, p)))) : null),
        h('td', { 'data-label': 'Schedule', class: 'schedule' }, h('code', {}, task.schedule ?? '')),
        h('td', { 'data-label': 'Time zone', class: 'timezone' }, task.timezone ?? ''),
        inTaskZone, inViewerZone,
        h('td', { 'data-label': 'Enabled', class: 'enabled' }, task.enabled ? h('span', { class: 'pill good' }, 'yes') : h('span', { class: 'pill off' }, 'no')),
        h('td', { 'data-label': 'Tags' }, (task.tags ?? []).map(t => h('span', { class: 'tag' }, t))));
      row._fill = runs => {
        inTaskZone.replaceChildren(runs[0] ? timeElement(runs[0], task.timezone) : 'never');
        inViewerZone.replaceChildren(runs[0] ? timeElement(runs[0], viewerZone) : 'never');
      };
      return row;
    });
    tableHolder.replaceChildren(h('table', { class: 'cards', id: 'tasks-table' },
      h('caption', { class: 'visually-hidden' }, 'Tasks'),
      h('thead', {}, h('tr', {}, ['Task', 'Schedule', 'Time zone', 'Next run (task zone)', `Next run (your zone, ${viewerZone})`, 'Enabled', 'Tags'].map(c => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
    const valid = rows.filter(r => !shown.find(t => t.id === r.dataset.id)?.invalid).slice(0, 200);
    inParallel(valid, async row => {
      const task = shown.find(t => t.id === row.dataset.id);
      try { row._fill(await nextRuns(task, 1)); } catch { row._fill([]); }
    });
  }

  const search = h('input', { id: 'filter-q', type: 'search', name: 'q', value: filters.q, oninput: debounce(e => { filters.q = e.target.value; renderTable(); }, 80) });
  const enabled = h('select', { id: 'filter-enabled', name: 'enabled', onchange: e => { filters.enabled = e.target.value; renderTable(); } },
    h('option', { value: '' }, 'any'), h('option', { value: 'true' }, 'enabled'), h('option', { value: 'false' }, 'disabled'));
  enabled.value = filters.enabled;
  const validity = h('select', { id: 'filter-validity', name: 'validity', onchange: e => { filters.validity = e.target.value; renderTable(); } },
    h('option', { value: '' }, 'any'), h('option', { value: 'valid' }, 'valid only'), h('option', { value: 'invalid' }, 'invalid only'));
  validity.value = filters.validity;

  fillTags();
  show('Tasks',
    h('h1', {}, 'Tasks'),
    takeFlash(),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks', onsubmit: e => e.preventDefault() },
      h('div', {}, h('label', { for: 'filter-q' }, 'Search'), search),
      h('div', {}, h('label', { for: 'filter-tag' }, 'Tag'), tagSelect),
      h('div', {}, h('label', { for: 'filter-enabled' }, 'Enabled'), enabled),
      h('div', {}, h('label', { for: 'filter-validity' }, 'Validity'), validity),
      h('a', { class: 'button', href: '#/tasks/new' }, 'New task')),
    count, tableHolder);
  renderTable();

  const reload = debounce(async () => {
    tasks = (await api('GET', '/api/tasks')).data;
    fillTags();
    renderTable();
  });
  return { onEvent: e => { if (/task_changed|schedule_config_updated|resync_required|sync_conflict/.test(e.type)) reload(); } };
}

// ---------------------------------------------------------------- one task
function historyEntry(entry) {
  const before = entry.before ? JSON.parse(entry.before) : null;
  const after = entry.after ? JSON.parse(entry.after) : null;
  const empty = v => v === null || v === undefined || (typeof v === 'object' && Object.keys(v).length === 0);
  const changed = TASK_FIELDS.filter(f => !same(before?.[f], after?.[f]) && !(before === null && empty(after?.[f])));
  const what = { create: 'created', insert: 'created', update: 'changed', delete: 'deleted' }[entry.action] ?? entry.action;
  return h('li', {},
    h('div', {}, h('strong', {}, what), ` from ${SOURCES[entry.source] ?? entry.source} by `, h('code', {}, entry.actor), ', ', timeElement(entry.at),
      entry.sync_run_id ? h('span', { class: 'muted' }, ` (sync run ${entry.sync_run_id})`) : null),
    changed.length === 0 ? h('p', { class: 'muted' }, 'no field changed') :
      h('table', { class: 'diff cards' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
        h('tbody', {}, changed.map(f => h('tr', {},
          h('th', { scope: 'row' }, f),
          h('td', { 'data-label': 'Before' }, before ? h('del', {}, display(before[f])) : h('span', { class: 'muted' }, '(new)')),
          h('td', { 'data-label': 'After' }, after ? h('ins', {}, display(after[f])) : h('span', { class: 'muted' }, '(deleted)')))))));
}

export async function taskView(id) {
  let task;
  try {
    task = (await api('GET', path(id))).data;
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 500)) throw e;
    show(id, h('h1', {}, id), takeFlash(), notice('bad', e.status === 404 ? `Task "${id}" does not exist (it may have been deleted).` : e.message),
      h('p', {}, h('a', { href: '#/tasks' }, 'Back to the tasks')));
    return { onEvent: e2 => { if (e2.id === id || e2.task_ids?.includes(id)) rerender({ keepFocus: true }); } };
  }
  const [runs, history] = await Promise.all([
    nextRuns(task, 10).catch(() => []),
    api('GET', `${path(id)}/history`).then(r => r.data).catch(() => []),
  ]);

  const deleteArea = h('div', {});
  function askDelete() {
    const confirmButton = h('button', { type: 'button', class: 'danger', onclick: doDelete }, `Delete ${id}`);
    deleteArea.replaceChildren(h('div', { class: 'panel', role: 'group', 'aria-label': 'Confirm delete' },
      h('p', {}, `Delete task "${id}"? It is removed from the database and from the file.`),
      h('div', { class: 'actions' }, confirmButton, h('button', { type: 'button', class: 'secondary', onclick: () => deleteArea.replaceChildren() }, 'Cancel'))));
    confirmButton.focus();
  }
  async function doDelete() {
    try {
      await api('DELETE', path(id), { ifMatch: task.version });
      setFlash('good', `Task "${id}" deleted.`);
      location.hash = '#/tasks';
    } catch (e) {
      deleteArea.replaceChildren(notice('bad', e.status === 412
        ? `Not deleted: the task changed since this page showed it (now version ${(e.headers.get('ETag') ?? '').replaceAll('"', '')}). Look at the current version and try again.`
        : e.message));
    }
  }

  const fields = [['id', task.id], ...TASK_FIELDS.map(f => [f, task[f]]),
    ['version', task.version], ['updated', task.updated_at ? timeElement(task.updated_at) : null], ['updated by', task.updated_by], ['content hash', task.content_hash]];
  show(id,
    h('h1', {}, task.name && task.name !== id ? `${task.name} (${id})` : id),
    takeFlash(),
    task.invalid ? notice('bad', 'This task is invalid in the database: ', h('ul', {}, (task.problems ?? []).map(p => h('li', {}, p)))) : null,
    h('div', { class: 'actions' },
      h('a', { class: 'button', href: `#/tasks/${encodeURIComponent(id)}/edit` }, 'Edit'),
      h('button', { type: 'button', class: 'secondary', onclick: askDelete }, 'Delete…'),
      h('a', { class: 'button secondary', href: '#/tasks' }, 'All tasks')),
    deleteArea,
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'fields-title' }, h('h2', { id: 'fields-title' }, 'Fields'),
        h('dl', { class: 'fields', id: 'task-fields' }, fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, v instanceof Node ? v : display(v))]))),
      h('section', { 'aria-labelledby': 'runs-title' }, h('h2', { id: 'runs-title' }, 'Next 10 runs'),
        runs.length === 0 ? h('p', {}, 'No upcoming run.') :
          h('table', { class: 'cards', id: 'next-runs' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, `In the task's zone (${task.timezone})`), h('th', { scope: 'col' }, `In yours (${viewerZone})`))),
            h('tbody', {}, runs.map(r => h('tr', {}, h('td', { 'data-label': task.timezone }, timeElement(r, task.timezone)), h('td', { 'data-label': viewerZone }, timeElement(r, viewerZone)))))))),
    h('section', { 'aria-labelledby': 'history-title' }, h('h2', { id: 'history-title' }, 'History'),
      history.length === 0 ? h('p', {}, 'No history.') : h('ol', { class: 'history', id: 'history' }, [...history].reverse().map(historyEntry))));

  const reload = debounce(() => { if (location.hash === `#/tasks/${encodeURIComponent(id)}`) rerender({ keepFocus: true }); });
  return { onEvent: e => { if (e.id === id || e.task_id === id || e.task_ids?.includes(id) || e.type === 'resync_required') reload(); } };
}

// ---------------------------------------------------------------- create / edit
const FORM_FIELDS = [
  // name, label, kind, hint
  ['id', 'ID', 'text', 'Lowercase letters, digits and dashes; cannot change later.'],
  ['name', 'Name', 'text', 'Defaults to the ID.'],
  ['description', 'Description', 'textarea', null],
  ['schedule', 'Schedule', 'text', 'Cron: minute hour day month weekday, e.g. 0 3 * * * — or @daily, @hourly.'],
  ['timezone', 'Time zone', 'text', 'IANA name such as Europe/Berlin; empty for the file\'s default.'],
  ['command', 'Command', 'text', null],
  ['args', 'Arguments (JSON object)', 'textarea', 'e.g. {"verbose": true}'],
  ['enabled', 'Enabled', 'checkbox', null],
  ['timeout_seconds', 'Timeout (seconds)', 'number', 'Empty for none.'],
  ['max_retries', 'Max retries', 'number', null],
  ['tags', 'Tags', 'text', 'Comma-separated.'],
];

export async function taskFormView(id) {
  const creating = id === null;
  let task = null;
  if (!creating) task = (await api('GET', path(id))).data;
  const inputs = {};
  const errors = {};
  const summary = h('div', { tabindex: '-1', id: 'form-summary' });
  const staleNote = h('div', {});

  const fieldBlocks = FORM_FIELDS.filter(([name]) => creating || name !== 'id').map(([name, label, kind, hint]) => {
    const inputId = `field-${name}`;
    const value = task ? task[name] : undefined;
    const described = [hint ? `${inputId}-hint` : null, `${inputId}-error`].filter(Boolean).join(' ');
    let input;
    if (kind === 'textarea') input = h('textarea', { id: inputId, name, 'aria-describedby': described, value: name === 'args' ? (value && Object.keys(value).length ? JSON.stringify(value, null, 2) : '') : (value ?? '') });
    else if (kind === 'checkbox') input = h('input', { id: inputId, name, type: 'checkbox', checked: task ? task.enabled : true, 'aria-describedby': described });
    else input = h('input', {
      id: inputId, name, type: kind === 'number' ? 'number' : 'text', inputmode: kind === 'number' ? 'numeric' : undefined, min: kind === 'number' ? '0' : undefined,
      'aria-describedby': described, required: ['id', 'schedule', 'command'].includes(name) ? true : undefined, autocomplete: 'off', spellcheck: 'false',
      value: name === 'tags' ? (value ?? []).join(', ') : (value ?? (name === 'max_retries' && creating ? '0' : '')),
    });
    inputs[name] = input;
    errors[name] = h('p', { class: 'error', id: `${inputId}-error`, hidden: true });
    const block = h('div', { class: `field${kind === 'checkbox' ? ' check' : ''}`, 'data-field': name },
      kind === 'checkbox' ? [input, ' ', h('label', { for: inputId }, label)] : [h('label', { for: inputId }, label), input],
      hint ? h('p', { class: 'hint', id: `${inputId}-hint` }, hint) : null,
      errors[name]);
    return block;
  });

  function clearErrors() {
    summary.replaceChildren();
    for (const name of Object.keys(errors)) {
      errors[name].hidden = true;
      errors[name].textContent = '';
      inputs[name].removeAttribute('aria-invalid');
      inputs[name].closest('.field').classList.remove('invalid');
    }
  }

  function showErrors(byField, title) {
    const items = [];
    for (const [field, messages] of Object.entries(byField)) {
      const target = errors[field];
      if (target) {
        target.textContent = messages.join(' ');
        target.hidden = false;
        inputs[field].setAttribute('aria-invalid', 'true');
        inputs[field].closest('.field').classList.add('invalid');
        items.push(h('li', {}, h('a', { href: `#field-${field}`, onclick: e => { e.preventDefault(); inputs[field].focus(); } }, `${field}: ${messages.join(' ')}`)));
      } else {
        items.push(h('li', {}, `${field}: ${messages.join(' ')}`));
      }
    }
    summary.replaceChildren(notice('bad', h('p', {}, title), h('ul', {}, items)));
    summary.focus();
  }

  function body() {
    const b = {};
    const problems = {};
    const text = name => inputs[name]?.value.trim() ?? '';
    if (creating) b.id = text('id');
    for (const name of ['name', 'description', 'schedule', 'timezone', 'command']) if (text(name) !== '') b[name] = text(name);
    if (text('args') !== '') {
      try { b.args = JSON.parse(text('args')); } catch (e) { problems.args = [`args is not valid JSON: ${e.message}`]; }
    }
    b.enabled = inputs.enabled.checked;
    if (text('timeout_seconds') !== '') b.timeout_seconds = Number(text('timeout_seconds'));
    if (text('max_retries') !== '') b.max_retries = Number(text('max_retries'));
    b.tags = text('tags').split(',').map(t => t.trim()).filter(t => t !== '');
    return { b, problems };
  }

  const submit = h('button', { type: 'submit' }, creating ? 'Create task' : 'Save');
  async function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    const { b, problems } = body();
    if (Object.keys(problems).length > 0) { showErrors(problems, 'Not saved: fix the marked fields.'); return; }
    submit.disabled = true;
    try {
      const result = creating
        ? await api('POST', '/api/tasks', { body: b })
        : await api('PUT', path(id), { body: b, ifMatch: task.version });
      const exported = result.headers.get('ScheduleSync-Export') ?? '';
      setFlash(exported.startsWith('pending') ? 'warn' : 'good',
        exported.startsWith('pending') ? `Saved in the database; the file is not updated yet (${exported.slice(9)}).` : `Saved: "${result.data.id}" is in the database and in the file.`);
      location.hash = `#/tasks/${encodeURIComponent(result.data.id)}`;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 400 && e.problem.errors) showErrors(e.fieldErrors(), e.problem.title ?? 'Not saved.');
      else if (e.status === 409) showErrors({ id: [e.message] }, 'Not saved: a task with this ID exists.');
      else if (e.status === 412) {
        const now = (e.headers.get('ETag') ?? '').replaceAll('"', '');
        summary.replaceChildren(notice('bad',
          h('p', {}, h('strong', {}, 'Not saved: this task was changed elsewhere since you opened it'), ` (you edited version ${task.version}; it is now version ${now}). Saving would have overwritten that change, so nothing was stored.`),
          h('p', {}, 'Your edits are still in the form. ', h('button', { type: 'button', class: 'link', onclick: () => rerender() }, 'Load the current version'), ' (drops your edits), or ',
            h('a', { href: `#/tasks/${encodeURIComponent(id)}` }, 'look at it first'), '.')));
        summary.focus();
      } else {
        summary.replaceChildren(notice('bad', e.message));
        summary.focus();
      }
    } finally {
      submit.disabled = false;
    }
  }

  const title = creating ? 'New task' : `Edit ${id}`;
  show(title,
    h('h1', {}, title),
    !creating ? h('p', { class: 'muted' }, `Editing version ${task.version}.`) : null,
    staleNote, summary,
    h('form', { id: 'task-form', novalidate: true, onsubmit: onSubmit, 'aria-label': title },
      fieldBlocks,
      h('div', { class: 'actions' }, submit,
        h('a', { class: 'button secondary', href: creating ? '#/tasks' : `#/tasks/${encodeURIComponent(id)}` }, 'Cancel'))));

  return {
    onEvent: e => {
      if (!creating && (e.id === id || e.task_ids?.includes(id)))
        staleNote.replaceChildren(notice('warn', `This task was just changed elsewhere (${e.source ? 'from ' + (SOURCES[e.source] ?? e.source) : 'by a sync'}). Saving your edit will be refused; `,
          h('button', { type: 'button', class: 'link', onclick: () => rerender() }, 'load the current version'), '.'));
    },
  };
}
