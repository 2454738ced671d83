// Follows /ws: every event goes to the listeners; after a disconnect it reconnects with ?since=<last seq> so nothing
// is missed, and when the server no longer has those events (resync_required) the listeners reload everything.
import { token } from './api.js';

const listeners = new Set();
let lastSeq = null;
let socket = null;
let retry = 0;
let statusHandler = () => {};

export function onEvent(listener) { listeners.add(listener); return () => listeners.delete(listener); }
export function onStatus(handler) { statusHandler = handler; }
export function lastSeen() { return lastSeq; }

export function connect() {
  if (socket && socket.readyState <= WebSocket.OPEN) return;
  const params = new URLSearchParams();
  if (lastSeq !== null) params.set('since', String(lastSeq));
  const t = token();
  if (t) params.set('access_token', t); // browsers cannot put headers on a WebSocket
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = params.toString();
  const ws = new WebSocket(`${scheme}://${location.host}/ws${query ? '?' + query : ''}`);
  socket = ws;
  ws.addEventListener('open', () => { retry = 0; statusHandler(true); });
  ws.addEventListener('message', message => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    if (typeof event.seq === 'number') lastSeq = event.seq;
    for (const listener of listeners) listener(event);
  });
  ws.addEventListener('close', () => {
    if (socket !== ws) return;
    socket = null;
    statusHandler(false);
    // 0.5 s, 1 s, 2 s … at most 10 s between attempts.
    const delay = Math.min(10000, 500 * 2 ** retry++);
    setTimeout(connect, delay);
  });
}

/** Drops the connection and connects again at once (e.g. after a token was entered). */
export function reconnect() {
  const old = socket;
  socket = null;
  old?.close();
  retry = 0;
  connect();
}
