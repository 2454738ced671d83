// Sync status (file valid or not, runs, pending work, sync now) and conflicts (list; one conflict side by side with
// keep file / keep database / merge, the result shown before it is applied).
import { api, ApiError } from './api.js';
import { h, show, display, same, timeElement, notice, rerender } from './dom.js';
import { TASK_FIELDS } from './tasks.js';

function debounce(fn, ms = 120) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---------------------------------------------------------------- status
function problemItem(text) {
  // "path:line:column: message" — the position set apart so it can be found in an editor.
  const m = /^(.*?):(\d+):(\d+): (.*)$/s.exec(text);
  return m ? h('li', {}, h('code', {}, `${m[2]}:${m[3]}`), ' ', m[4], h('span', { class: 'muted' }, ` (${m[1]})`)) : h('li', {}, text);
}

function statusContent(s) {
  const file = !s.file_exists ? h('span', { class: 'pill bad' }, 'missing')
    : s.file_valid ? h('span', { class: 'pill good' }, 'valid') : h('span', { class: 'pill bad' }, 'invalid');
  return [
    h('div', { class: 'grid2' },
      h('section', { class: 'panel', 'aria-labelledby': 'file-title' },
        h('h2', { id: 'file-title' }, 'File'),
        h('dl', { class: 'fields' },
          h('dt', {}, 'path'), h('dd', {}, h('code', {}, s.config_path)),
          h('dt', {}, 'state'), h('dd', { id: 'file-state' }, file),
          h('dt', {}, 'checksum'), h('dd', {}, h('code', {}, (s.file_checksum ?? '').slice(0, 16)))),
        s.file_problems?.length ? [h('h3', {}, `${s.file_problems.length} problem${s.file_problems.length === 1 ? '' : 's'}`),
          h('ul', { id: 'file-problems' }, s.file_problems.map(problemItem)),
          h('p', { class: 'muted' }, 'Nothing is synced in either direction until the file is valid; API changes wait as pending exports.')] : null),
      h('section', { class: 'panel', 'aria-labelledby': 'db-title' },
        h('h2', { id: 'db-title' }, 'Database and pending work'),
        h('dl', { class: 'fields', id: 'pending' },
          h('dt', {}, 'tasks'), h('dd', {}, String(s.database_tasks)),
          h('dt', {}, 'change counter'), h('dd', {}, `${s.change_counter} (synced: ${s.synced_change_counter ?? 'never'})`),
          h('dt', {}, 'pending exports'), h('dd', { 'data-field': 'pending_exports' }, `${s.pending_exports} to the file`),
          h('dt', {}, 'pending imports'), h('dd', { 'data-field': 'pending_imports' }, `${s.pending_imports} to the database`),
          h('dt', {}, 'open conflicts'), h('dd', {}, s.open_conflicts ? h('a', { href: '#/conflicts' }, String(s.open_conflicts)) : '0')))),
    h('section', { 'aria-labelledby': 'runs-title' },
      h('h2', { id: 'runs-title' }, 'Last sync runs'),
      (s.recent_runs ?? []).length === 0 ? h('p', {}, 'No run yet.') :
        h('table', { class: 'cards', id: 'runs' },
          h('thead', {}, h('tr', {}, ['Run', 'Trigger', 'Status', 'Started', 'Into database', 'Into file', 'Conflicts', 'Error'].map(c => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, s.recent_runs.map(r => h('tr', {},
            h('td', { 'data-label': 'Run' }, String(r.id)),
            h('td', { 'data-label': 'Trigger' }, r.trigger),
            h('td', { 'data-label': 'Status' }, r.status),
            h('td', { 'data-label': 'Started' }, timeElement(r.started_at)),
            h('td', { 'data-label': 'Into database' }, `+${r.inserts} ~${r.updates} −${r.deletes}`),
            h('td', { 'data-label': 'Into file' }, String(r.exports)),
            h('td', { 'data-label': 'Conflicts' }, String(r.conflicts)),
            h('td', { 'data-label': 'Error' }, r.error ?? '')))))),
  ];
}

export async function statusView() {
  const content = h('div', { id: 'status-content' });
  const message = h('div', {});
  const load = async () => content.replaceChildren(...statusContent((await api('GET', '/api/sync/status')).data).flat().filter(Boolean));
  await load();
  const button = h('button', {
    type: 'button', id: 'sync-now', onclick: async () => {
      button.disabled = true;
      message.replaceChildren(notice('', 'Syncing…'));
      try {
        const { data: r } = await api('POST', '/api/sync');
        const text = r.status === 'no_op' ? `Nothing changed since the last sync (${r.open_conflicts} open conflict(s)).`
          : r.status === 'completed' ? `Sync run ${r.run_id}: ${r.inserts} inserted, ${r.updates} updated, ${r.deletes} deleted in the database; ${r.exports} written to the file; ${r.new_conflicts} new conflict(s), ${r.open_conflicts} open.`
            : `Sync ${r.status}: ${r.error ?? ''}`;
        message.replaceChildren(notice(r.status === 'completed' || r.status === 'no_op' ? 'good' : 'bad', text));
        await load();
      } catch (e) {
        message.replaceChildren(notice('bad', e.message));
      } finally {
        button.disabled = false;
      }
    },
  }, 'Sync now');
  show('Sync status', h('h1', {}, 'Sync status'), h('div', { class: 'actions' }, button), message, content);
  const reload = debounce(load, 150);
  // A file that goes back to what was last synced is a no-op sync and sends no event: look again now and then.
  const poll = setInterval(() => { if (content.isConnected) load().catch(() => {}); else clearInterval(poll); }, 3000);
  return { onEvent: () => reload() };
}

// ---------------------------------------------------------------- conflicts
export async function conflictsView() {
  const holder = h('div', {});
  async function load() {
    const { data } = await api('GET', '/api/sync/conflicts');
    holder.replaceChildren(data.length === 0 ? h('p', { id: 'no-conflicts' }, 'No open conflicts: the file and the database agree.') :
      h('table', { class: 'cards', id: 'conflicts' },
        h('thead', {}, h('tr', {}, ['Conflict', 'Task', 'Detected', 'Fields that differ'].map(c => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, data.map(c => h('tr', { 'data-id': String(c.id), 'data-task': c.task_id },
          h('td', { 'data-label': 'Conflict' }, h('a', { href: `#/conflicts/${c.id}` }, `Conflict ${c.id}`)),
          h('td', { 'data-label': 'Task' }, h('a', { href: `#/tasks/${encodeURIComponent(c.task_id)}` }, c.task_id)),
          h('td', { 'data-label': 'Detected' }, timeElement(c.detected_at)),
          h('td', { 'data-label': 'Fields that differ' }, (c.diff ?? []).map(d => h('span', { class: 'tag' }, d.field, d.changed_on_both_sides ? ' (both sides)' : ''))))))));
  }
  await load();
  show('Conflicts', h('h1', {}, 'Conflicts'), takeFlashHere(), holder);
  const reload = debounce(load, 150);
  return { onEvent: e => { if (/conflict|schedule_config_updated|task_changed|resync_required/.test(e.type)) reload(); } };
}

let conflictFlash = null;
function takeFlashHere() {
  const f = conflictFlash;
  conflictFlash = null;
  return f ? notice(f.kind, f.text) : null;
}

const STRING_FIELDS = new Set(['name', 'description', 'schedule', 'timezone', 'command']);

/** A typed value as the API takes it: text fields as typed, the others as JSON (true, 30, ["a","b"], {"k":1}). */
function parseTyped(field, text) {
  if (STRING_FIELDS.has(field)) return field === 'description' && text === '' ? null : text;
  if (field === 'tags' && !text.trim().startsWith('[')) return text.split(',').map(t => t.trim()).filter(Boolean);
  return JSON.parse(text);
}

export async function conflictView(id, explanation = null) {
  const c = (await api('GET', `/api/sync/conflicts/${id}`)).data;
  const title = `Conflict ${c.id}: ${c.task_id}`;
  if (c.status !== 'open') {
    show(title, h('h1', {}, title), explanation,
      notice('good', `Resolved (${c.choice}) by ${c.resolved_by ?? 'someone'}`, c.resolved_at ? [' at ', timeElement(c.resolved_at)] : null, '.'),
      c.result ? h('dl', { class: 'fields' }, TASK_FIELDS.flatMap(f => [h('dt', {}, f), h('dd', {}, display(c.result[f]))])) : h('p', {}, 'The task was deleted.'),
      h('p', {}, h('a', { href: '#/conflicts' }, 'All conflicts')));
    return null;
  }

  const { base, yaml, db } = c;
  const conflicting = base
    ? TASK_FIELDS.filter(f => yaml && db && !same(yaml[f], base[f]) && !same(db[f], base[f]) && !same(yaml[f], db[f]))
    : TASK_FIELDS.filter(f => yaml && db && !same(yaml[f], db[f]));
  const differs = f => !(same(base?.[f], yaml?.[f]) && same(yaml?.[f], db?.[f]));

  const cell = (side, version, f, label) => {
    const changed = base && version && !same(version[f], base[f]);
    return h('td', { 'data-label': label, class: changed ? 'changed' : undefined },
      version ? display(version[f]) : h('span', { class: 'muted' }, side === 'base' ? '(none)' : '(deleted)'),
      changed ? h('span', { class: 'visually-hidden' }, ' (changed)') : null);
  };
  const versions = h('table', { class: 'cards', id: 'versions' },
    h('caption', { class: 'visually-hidden' }, 'Base, file and database versions, field by field'),
    h('thead', {}, h('tr', {}, ['Field', 'Base (last agreed)', 'File', 'Database'].map(t => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, TASK_FIELDS.filter(differs).map(f => h('tr', { class: conflicting.includes(f) ? 'both' : undefined, 'data-field': f },
      h('th', { scope: 'row', class: 'field-name' }, f, conflicting.includes(f) ? h('div', { class: 'muted' }, 'changed on both sides') : null),
      cell('base', base, f, 'Base'), cell('yaml', yaml, f, 'File'), cell('db', db, f, 'Database')))));

  const work = h('div', { id: 'resolution' });
  const staleNote = h('div', {});
  let busy = false; // the person is choosing: live changes do not redraw under them

  function preview(choice, result, fields, sources) {
    busy = true;
    const apply = h('button', { type: 'button', id: 'apply' }, 'Apply');
    apply.addEventListener('click', () => resolve(choice, fields, apply));
    work.replaceChildren(h('section', { class: 'panel', 'aria-labelledby': 'preview-title', id: 'preview' },
      h('h2', { id: 'preview-title', tabindex: '-1' }, `Result of ${choice === 'keep_yaml' ? 'keeping the file' : choice === 'keep_db' ? 'keeping the database' : 'the merge'}`),
      result ? h('dl', { class: 'fields' }, TASK_FIELDS.flatMap(f => [h('dt', {}, f), h('dd', { 'data-field': f }, display(result[f]),
        sources?.[f] ? h('span', { class: 'muted' }, ` — ${sources[f]}`) : null)]))
        : h('p', {}, `The task "${c.task_id}" will be deleted on both sides.`),
      h('p', {}, 'This goes to both the file and the database.'),
      h('div', { class: 'actions' }, apply, h('button', { type: 'button', class: 'secondary', onclick: () => { busy = false; work.replaceChildren(); } }, 'Cancel'))));
    work.querySelector('h2').focus();
  }

  function mergeForm() {
    busy = true;
    const groups = conflicting.map(f => {
      const name = `pick-${f}`;
      const other = h('input', { type: 'text', id: `${name}-other-value`, 'aria-label': `${f}: your own value`, autocomplete: 'off' });
      const radio = (value, label, content) => h('label', {}, h('input', { type: 'radio', name, value }), ` ${label}: `, content);
      other.addEventListener('focus', () => { work.querySelector(`input[name="${name}"][value="other"]`).checked = true; });
      return h('fieldset', { 'data-field': f },
        h('legend', {}, f),
        radio('yaml', 'File', display(yaml[f])),
        radio('db', 'Database', display(db[f])),
        h('label', {}, h('input', { type: 'radio', name, value: 'other' }), ' Other: '), other,
        h('p', { class: 'error', id: `${name}-error`, hidden: true }));
    });
    const error = h('div', {});
    const form = h('form', {
      id: 'merge-form', 'aria-labelledby': 'merge-title', onsubmit: event => {
        event.preventDefault();
        const result = {};
        const sources = {};
        const fields = {};
        const missing = [];
        for (const f of TASK_FIELDS) {
          if (conflicting.includes(f)) {
            const picked = form.querySelector(`input[name="pick-${f}"]:checked`)?.value;
            const errorBox = form.querySelector(`#pick-${f}-error`);
            errorBox.hidden = true;
            if (!picked) { missing.push(f); errorBox.textContent = `Pick a value for ${f}.`; errorBox.hidden = false; continue; }
            if (picked === 'other') {
              try { fields[f] = parseTyped(f, form.querySelector(`#pick-${f}-other-value`).value); }
              catch (e) { missing.push(f); errorBox.textContent = `${f}: not valid JSON (${e.message}).`; errorBox.hidden = false; continue; }
              sources[f] = 'typed';
            } else {
              fields[f] = (picked === 'yaml' ? yaml : db)[f] ?? null;
              sources[f] = picked === 'yaml' ? 'from the file' : 'from the database';
            }
            result[f] = fields[f];
          } else if (base && !same(db[f], base[f])) {
            result[f] = db[f]; sources[f] = 'changed in the database only';
          } else {
            result[f] = yaml[f]; if (base && !same(yaml[f], base[f])) sources[f] = 'changed in the file only';
          }
        }
        if (missing.length > 0) {
          error.replaceChildren(notice('bad', `Choose a value for: ${missing.join(', ')}.`));
          form.querySelector(`input[name="pick-${missing[0]}"]`)?.focus();
          return;
        }
        error.replaceChildren();
        previewArea.replaceChildren();
        preview('merge', result, fields, sources);
        work.prepend(form);
        work.querySelector('#preview h2').focus();
      },
    },
      h('h2', { id: 'merge-title' }, 'Merge'),
      h('p', {}, conflicting.length ? 'Pick the value each field changed on both sides should have; fields changed on one side only take that side\'s value.' : 'No field is changed on both sides; the merge takes each side\'s changes.'),
      groups, error,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show the result'), h('button', { type: 'button', class: 'secondary', onclick: () => { busy = false; work.replaceChildren(); } }, 'Cancel')));
    const previewArea = h('div', {});
    work.replaceChildren(form, previewArea);
    form.querySelector('input')?.focus();
  }

  async function resolve(choice, fields, button) {
    button.disabled = true;
    try {
      // The page shows versions; if either side moved since, the person has not seen what they would overwrite.
      const now = (await api('GET', `/api/sync/conflicts/${id}`)).data;
      if (now.status === 'open' && (!same(now.yaml, yaml) || !same(now.db, db))) {
        await conflictView(id, notice('bad', 'Not applied: the task changed on one side after this conflict was shown. These are the newest versions; review them and choose again.'));
        return;
      }
      // The versions decided on go along: a run may refresh the conflict between this check and the POST.
      const shown = { yaml, db };
      await api('POST', `/api/sync/conflicts/${id}/resolve`, { body: choice === 'merge' ? { choice, fields, shown } : { choice, shown } });
      conflictFlash = { kind: 'good', text: `Conflict ${id} on "${c.task_id}" resolved (${choice.replace('_', ' ').replace('yaml', 'file').replace('db', 'database')}); both sides now hold the result.` };
      location.hash = '#/conflicts';
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 409) {
        await conflictView(id, notice('bad', h('strong', {}, 'Not applied. '), e.message));
      } else if (e.status === 400 && e.problem.errors) {
        const errs = e.fieldErrors();
        work.prepend(notice('bad', e.problem.detail ?? e.problem.title, h('ul', {}, Object.entries(errs).map(([f, m]) => h('li', {}, `${f}: ${m.join(' ')}`)))));
        button.disabled = false;
      } else {
        work.prepend(notice('bad', e.message));
        button.disabled = false;
      }
    }
  }

  show(title,
    h('h1', {}, title),
    explanation, staleNote,
    h('p', {}, 'Detected ', timeElement(c.detected_at), '. Both sides changed task ', h('a', { href: `#/tasks/${encodeURIComponent(c.task_id)}` }, c.task_id),
      ' since they last agreed; it is not synced until someone decides. Highlighted cells differ from the base; fields in bold changed on both sides.'),
    versions,
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Resolve' },
      h('button', { type: 'button', id: 'keep-yaml', onclick: () => preview('keep_yaml', yaml, null, null) }, 'Keep file'),
      h('button', { type: 'button', id: 'keep-db', onclick: () => preview('keep_db', db, null, null) }, 'Keep database'),
      yaml && db ? h('button', { type: 'button', id: 'merge', onclick: mergeForm }, 'Merge…') : null),
    work,
    h('p', {}, h('a', { href: '#/conflicts' }, 'All conflicts')));

  const reload = debounce(() => {
    if (!busy) rerender({ keepFocus: true });
    else staleNote.replaceChildren(notice('warn', 'This task just changed on one side; applying now will be refused. ', h('button', { type: 'button', class: 'link', onclick: () => rerender() }, 'Show the newest versions'), '.'));
  }, 150);
  return { onEvent: e => { if (e.conflict_id === id || e.id === c.task_id || e.task_id === c.task_id || e.task_ids?.includes(c.task_id) || e.type === 'resync_required') reload(); } };
}
