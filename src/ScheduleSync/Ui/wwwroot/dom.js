// Builds DOM nodes from data without ever parsing data as HTML (no innerHTML): nothing a task holds can run as script.
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'value') node.value = value;
    else if (key === 'checked') node.checked = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the content of main, puts the focus there (so screen readers and keyboards start at the new view) and sets the title. */
export function show(title, ...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat().filter(Boolean));
  document.title = `${title} — ScheduleSync`;
}

export function focusMain() {
  const heading = document.querySelector('main h1');
  (heading ?? document.getElementById('main')).setAttribute('tabindex', '-1');
  (heading ?? document.getElementById('main')).focus({ preventScroll: false });
}

export function announce(text) {
  const region = document.getElementById('announce');
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, ...children);
}

/** A field value as a person reads it: strings as they are, absent values as "(none)", everything else as JSON. */
export function display(value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '(none)');
  if (typeof value === 'string') return value === '' ? h('span', { class: 'muted' }, '(empty)') : value;
  if (Array.isArray(value) && value.every(v => typeof v === 'string')) return value.length === 0 ? h('span', { class: 'muted' }, '(none)') : value.join(', ');
  if (typeof value === 'object' && Object.keys(value).length === 0) return h('span', { class: 'muted' }, '(none)');
  return h('code', {}, JSON.stringify(value));
}

/** Same value as comparable text (for "differs" checks). */
export function same(a, b) {
  return JSON.stringify(normal(a)) === JSON.stringify(normal(b));
}

function normal(v) {
  if (v === undefined) return null;
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.keys(v).sort().map(k => [k, normal(v[k])]));
  return v;
}

const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
export { viewerZone };

/** An instant shown in a given IANA zone (or the viewer's), e.g. "Thu 3 Dec 2026, 03:00 UTC". */
export function when(iso, zone) {
  if (!iso) return '';
  const date = new Date(iso);
  try {
    return new Intl.DateTimeFormat('en-GB', {
      weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
      timeZone: zone ?? viewerZone, timeZoneName: 'short',
    }).format(date);
  } catch {
    return iso; // a zone the browser does not know: the server's own text
  }
}

export function timeElement(iso, zone) {
  return h('time', { datetime: iso }, when(iso, zone));
}

/** Renders the current route again (fresh data; the new view takes over live events). */
export function rerender(options) {
  window.dispatchEvent(new CustomEvent('rerender', { detail: options ?? {} }));
}
