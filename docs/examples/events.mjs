// Follows a ScheduleSync server's events (GET /ws) and never misses one: it remembers the last seq it received and
// reconnects with ?since=<that seq>, so the server replays what happened meanwhile; when the server no longer keeps
// those events it sends resync_required, and the client reloads the full state (GET /api/tasks) before going on.
//
//   node --experimental-websocket docs/examples/events.mjs [BASE_URL] [--since SEQ]
//   (Node 22+ has WebSocket without the flag.) BASE_URL defaults to http://127.0.0.1:5080;
//   SCHEDSYNC_TOKEN (if the server has a token) is sent as ?access_token= on /ws and as a bearer token on /api.
const args = process.argv.slice(2);
const sinceAt = args.indexOf('--since');
let lastSeq = sinceAt >= 0 ? Number(args.splice(sinceAt, 2)[1]) : null;
const base = (args[0] ?? 'http://127.0.0.1:5080').replace(/\/$/, '');
const token = process.env.SCHEDSYNC_TOKEN;

async function reloadTasks() {
  const response = await fetch(`${base}/api/tasks`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) throw new Error(`GET /api/tasks: ${response.status}`);
  return (await response.json()).length;
}

function connect(delayMs = 100) {
  const url = new URL(base.replace(/^http/, 'ws') + '/ws');
  if (lastSeq !== null) url.searchParams.set('since', String(lastSeq));
  if (token) url.searchParams.set('access_token', token);
  const socket = new WebSocket(url);
  socket.onopen = () => { delayMs = 100; console.log(`connected ${base}/ws since=${lastSeq ?? 'now'}`); };
  socket.onmessage = async message => {
    const event = JSON.parse(message.data);
    if (event.type === 'resync_required') {
      // Some events are gone: whatever state this client keeps must be rebuilt from the API.
      const count = await reloadTasks();
      console.log(`resync_required (${event.reason}): reloaded ${count} task(s), continuing after seq ${event.seq}`);
    } else {
      console.log(`event ${event.seq} ${event.type} ${message.data}`);
    }
    lastSeq = event.seq;
  };
  // Closed by the server (restart, "too slow", shutdown) or the network: reconnect and catch up with ?since=.
  socket.onclose = close => {
    console.log(`closed (${close.code} ${close.reason || 'no reason'}); reconnecting in ${delayMs} ms`);
    setTimeout(() => connect(Math.min(delayMs * 2, 5000)), delayMs);
  };
  socket.onerror = () => {}; // onclose follows and reconnects
}

connect();
