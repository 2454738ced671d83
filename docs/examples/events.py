#!/usr/bin/env python3
"""Follows a ScheduleSync server's events (GET /ws) and never misses one: it remembers the last seq it received and
reconnects with ?since=<that seq>, so the server replays what happened meanwhile; when the server no longer keeps
those events it sends resync_required, and the client reloads the full state (GET /api/tasks) before going on.

    python3 docs/examples/events.py [BASE_URL] [--since SEQ]

Needs the `websockets` package (Debian: apt-get install python3-websockets; or pip install websockets).
BASE_URL defaults to http://127.0.0.1:5080; SCHEDSYNC_TOKEN (if the server has a token) is sent as ?access_token= on
/ws and as a bearer token on /api."""
import asyncio
import json
import os
import sys
import urllib.parse
import urllib.request

import websockets


def reload_tasks(base, token):
    request = urllib.request.Request(base + "/api/tasks")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request) as response:
        return len(json.load(response))


async def follow(base, last_seq, token):
    delay = 0.1
    while True:
        query = {}
        if last_seq is not None:
            query["since"] = str(last_seq)
        if token:
            query["access_token"] = token
        url = base.replace("http", "ws", 1) + "/ws" + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            async with websockets.connect(url) as socket:
                delay = 0.1
                print(f"connected {base}/ws since={'now' if last_seq is None else last_seq}", flush=True)
                async for text in socket:
                    event = json.loads(text)
                    if event["type"] == "resync_required":
                        # Some events are gone: whatever state this client keeps must be rebuilt from the API.
                        count = await asyncio.to_thread(reload_tasks, base, token)
                        print(f"resync_required ({event['reason']}): reloaded {count} task(s), "
                              f"continuing after seq {event['seq']}", flush=True)
                    else:
                        print(f"event {event['seq']} {event['type']} {text}", flush=True)
                    last_seq = event["seq"]
                print(f"closed ({socket.close_code} {socket.close_reason or 'no reason'}); "
                      f"reconnecting in {int(delay * 1000)} ms", flush=True)
        except (OSError, websockets.exceptions.WebSocketException) as error:
            # Closed by the server (restart, "too slow", shutdown) or the network: reconnect and catch up with ?since=.
            print(f"closed ({error}); reconnecting in {int(delay * 1000)} ms", flush=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def main():
    args = sys.argv[1:]
    since = None
    if "--since" in args:
        at = args.index("--since")
        since = int(args[at + 1])
        del args[at:at + 2]
    base = (args[0] if args else "http://127.0.0.1:5080").rstrip("/")
    try:
        asyncio.run(follow(base, since, os.environ.get("SCHEDSYNC_TOKEN")))
    except KeyboardInterrupt:
        pass


main()
