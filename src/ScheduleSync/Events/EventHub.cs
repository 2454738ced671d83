using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Npgsql;

namespace ScheduleSync.Events;

/// <summary>One event as sent to clients: a JSON text message with <c>seq</c>, <c>type</c> and <c>at</c>.</summary>
public sealed record ServerEvent(long Seq, string Type, string Json);

/// <summary>Event feed settings (section "Events").</summary>
public sealed class EventOptions
{
    /// <summary>
    /// How many undelivered live events one client may have before it is dropped as too slow (it can reconnect with
    /// <c>?since=</c> and catch up from the log). Large enough for the burst of one bulk import.
    /// </summary>
    public int ClientQueue { get; set; } = 16_384;
    /// <summary>The log keeps at most this many events…</summary>
    public int RetainEvents { get; set; } = 10_000;
    /// <summary>…and none older than this.</summary>
    public TimeSpan RetainAge { get; set; } = TimeSpan.FromDays(7);
    /// <summary>How often the server prunes the log.</summary>
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromMinutes(1);
    /// <summary>How often the log is read even without a NOTIFY (a safety net; NOTIFY is the normal path).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Fans the event log out to WebSocket clients. <see cref="EventFeedService"/> reads new rows of <c>sync_events</c>
/// in seq order and hands them to <see cref="Dispatch"/>; each client gets them through a bounded queue: dispatching
/// never waits for a client, and a client whose queue is full is dropped, never allowed to block others. A client
/// that reconnects with <c>?since=n</c> first gets what it missed from the table (also after a restart of the server,
/// or from another instance), then the live events.
/// </summary>
public sealed class EventHub(EventOptions options, NpgsqlDataSource dataSource, TimeProvider time)
{
    private const int ReplayPage = 512;
    private readonly Lock _gate = new();
    private readonly List<Subscription> _subscribers = [];
    private long _seq;

    /// <summary>The last event handed to clients: every event up to it has been dispatched.</summary>
    public long LastSeq { get { lock (_gate) return _seq; } }

    public int SubscriberCount { get { lock (_gate) return _subscribers.Count; } }

    internal EventOptions Options => options;

    /// <summary>Sets where live dispatching starts (the log's end when the server starts).</summary>
    internal void Start(long seq)
    {
        lock (_gate) _seq = Math.Max(_seq, seq);
    }

    /// <summary>Hands events read from the log (in seq order, each once) to every client.</summary>
    internal void Dispatch(IReadOnlyList<ServerEvent> events)
    {
        lock (_gate)
        {
            foreach (var e in events)
            {
                if (e.Seq <= _seq) continue;
                // Events were pruned before this server read them (it lagged behind the retention): say so.
                if (e.Seq != _seq + 1)
                    Fan(ResyncRequired(e.Seq - 1, $"events {_seq + 1}..{e.Seq - 1} were pruned before they could be sent; reload everything"));
                Fan(e);
                EventTelemetry.EventsPublished.Add(1, new KeyValuePair<string, object?>("type", e.Type));
                _seq = e.Seq;
            }
        }
    }

    private void Fan(ServerEvent e)
    {
        for (var i = _subscribers.Count - 1; i >= 0; i--)
        {
            var subscriber = _subscribers[i];
            if (!subscriber.Writer.TryWrite(e))
            {
                _subscribers.RemoveAt(i);
                subscriber.Drop();
                EventTelemetry.EventsDropped.Add(1);
            }
        }
    }

    /// <summary>
    /// Subscribes. Live events after the current <see cref="LastSeq"/> are queued from now on; with
    /// <paramref name="since"/>, <see cref="Subscription.ReadAllAsync"/> first replays the events after it from the
    /// log, or sends <c>resync_required</c> when they are no longer kept. Dispose the subscription to leave.
    /// </summary>
    public Subscription Subscribe(long? since = null, long committed = 0)
    {
        var channel = Channel.CreateBounded<ServerEvent>(new BoundedChannelOptions(options.ClientQueue)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: that is how a slow client is detected
        });
        lock (_gate)
        {
            var subscription = new Subscription(this, channel, since, Math.Max(_seq, since is null ? committed : 0));
            _subscribers.Add(subscription);
            return subscription;
        }
    }

    /// <summary>The newest seq committed to the event log (whether or not this server has broadcast it yet).</summary>
    public Task<long> CommittedSeqAsync(CancellationToken ct) => WithConnectionAsync(c => SyncEvents.LastSeqAsync(c, ct), ct);

    private ServerEvent ResyncRequired(long seq, string reason)
    {
        var message = new JsonObject
        {
            ["seq"] = seq, ["type"] = "resync_required", ["at"] = time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
            ["reason"] = reason,
        };
        return new ServerEvent(seq, "resync_required", message.ToJsonString());
    }

    /// <summary>The events a subscriber missed: (since, upTo] from the log, in pages; resync_required when some are gone.</summary>
    private async IAsyncEnumerable<ServerEvent> ReplayAsync(long since, long upTo, [EnumeratorCancellation] CancellationToken ct)
    {
        if (since >= upTo)
        {
            // Ahead of what this server has sent: fine when those events are in the log and still to come here (another
            // instance sent them); a seq the log never reached comes from another database.
            var last = await WithConnectionAsync(c => SyncEvents.LastSeqAsync(c, ct), ct);
            if (since > last)
                yield return ResyncRequired(upTo, $"seq {since} is ahead of the event log (at {last}); reload everything");
            yield break;
        }
        var cursor = since;
        while (cursor < upTo)
        {
            // A connection per page: a client that reads slowly does not hold one while it is sent to.
            var page = await WithConnectionAsync(c => SyncEvents.ReadAsync(c, cursor, upTo, ReplayPage, ct), ct);
            if (page.Count == 0 || page[0].Seq != cursor + 1)
            {
                var oldest = await WithConnectionAsync(c => SyncEvents.FirstSeqAsync(c, ct), ct);
                yield return ResyncRequired(upTo, $"events after {cursor} are no longer kept (the oldest kept is {oldest?.ToString(CultureInfo.InvariantCulture) ?? "none"}); reload everything");
                yield break;
            }
            foreach (var e in page) yield return e;
            cursor = page[^1].Seq;
        }
    }

    private async Task<T> WithConnectionAsync<T>(Func<NpgsqlConnection, Task<T>> read, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await read(connection);
    }

    private void Remove(Subscription subscription)
    {
        lock (_gate) _subscribers.Remove(subscription);
        subscription.Writer.TryComplete();
    }

    public sealed class Subscription : IDisposable
    {
        private readonly EventHub _hub;
        private readonly Channel<ServerEvent> _channel;
        private readonly CancellationTokenSource _dropped = new();

        internal Subscription(EventHub hub, Channel<ServerEvent> channel, long? since, long liveFrom)
        {
            _hub = hub;
            _channel = channel;
            Since = since;
            LiveFrom = liveFrom;
        }

        /// <summary>The seq the client said it has seen (null: only live events).</summary>
        public long? Since { get; }

        /// <summary>Live events after this seq are queued; a replay covers (Since, LiveFrom].</summary>
        public long LiveFrom { get; }

        internal ChannelWriter<ServerEvent> Writer => _channel.Writer;
        public ChannelReader<ServerEvent> Reader => _channel.Reader;

        /// <summary>Cancelled when the client is dropped for being too slow: cancels a send it is stuck in.</summary>
        public CancellationToken Dropped => _dropped.Token;

        /// <summary>What the client missed (from the log), then the live events, each once and in order.</summary>
        public async IAsyncEnumerable<ServerEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken ct)
        {
            var sent = LiveFrom;
            if (Since is { } since)
            {
                sent = Math.Max(since, LiveFrom);
                await foreach (var e in _hub.ReplayAsync(since, LiveFrom, ct))
                {
                    // After resync_required the client starts over: everything live from here on is new to it.
                    if (e.Type == "resync_required") sent = LiveFrom;
                    yield return e;
                }
            }
            await foreach (var e in _channel.Reader.ReadAllAsync(ct))
            {
                if (e.Seq <= sent && e.Type != "resync_required") continue;
                sent = Math.Max(sent, e.Seq);
                yield return e;
            }
        }

        internal void Drop()
        {
            _channel.Writer.TryComplete(new SlowClientException());
            // Not inline: cancelling runs callbacks (aborting the socket), which must not happen under the hub's lock.
            ThreadPool.QueueUserWorkItem(static cts => cts.Cancel(), _dropped, preferLocal: false);
            // (never disposed: a token without timers holds nothing, and a late Cancel must not hit a disposed source)
        }

        public void Dispose()
        {
            _hub.Remove(this);
        }
    }
}

public sealed class SlowClientException() : Exception("the client did not keep up with the event feed and was dropped");
