using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace ScheduleSync.Events;

/// <summary>One event as sent to clients: a JSON text message with <c>seq</c>, <c>type</c> and <c>at</c>.</summary>
public sealed record ServerEvent(long Seq, string Type, string Json);

/// <summary>Event feed settings (section "Events").</summary>
public sealed class EventOptions
{
    /// <summary>How many past events a reconnecting client can catch up on with <c>?since=n</c>.</summary>
    public int ReplayBuffer { get; set; } = 4096;
    /// <summary>How many undelivered events one client may have before it is dropped as too slow.</summary>
    public int ClientQueue { get; set; } = 1024;
}

/// <summary>
/// Numbers events (seq + 1 each), keeps the last ones for replay, and fans them out to subscribers through bounded
/// queues: publishing never waits for a client; a client whose queue is full is dropped, never allowed to block others.
/// </summary>
public sealed class EventHub(EventOptions options, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Queue<ServerEvent> _recent = new();
    private readonly List<Subscription> _subscribers = [];
    private long _seq;

    public long LastSeq { get { lock (_gate) return _seq; } }

    public int SubscriberCount { get { lock (_gate) return _subscribers.Count; } }

    public ServerEvent Publish(string type, object payload)
    {
        var node = JsonSerializer.SerializeToNode(payload, JsonDefaults.Options) as JsonObject ?? [];
        lock (_gate)
        {
            var seq = ++_seq;
            var message = new JsonObject { ["seq"] = seq, ["type"] = type, ["at"] = time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture) };
            foreach (var (key, value) in node.ToList())
            {
                node.Remove(key);
                message[key] = value;
            }
            var e = new ServerEvent(seq, type, message.ToJsonString());
            _recent.Enqueue(e);
            while (_recent.Count > options.ReplayBuffer) _recent.Dequeue();
            for (var i = _subscribers.Count - 1; i >= 0; i--)
            {
                var subscriber = _subscribers[i];
                if (!subscriber.Writer.TryWrite(e))
                {
                    _subscribers.RemoveAt(i);
                    subscriber.Drop();
                }
            }
            return e;
        }
    }

    /// <summary>
    /// Subscribes; with <paramref name="since"/> the events after it are queued first, or a <c>resync_required</c>
    /// event when they are no longer in the buffer. Dispose the subscription to leave.
    /// </summary>
    public Subscription Subscribe(long? since = null)
    {
        var channel = Channel.CreateBounded<ServerEvent>(new BoundedChannelOptions(options.ClientQueue)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: that is how a slow client is detected
        });
        lock (_gate)
        {
            if (since is { } after && after != _seq)
            {
                var oldest = _recent.Count > 0 ? _recent.Peek().Seq : _seq + 1;
                var missed = _seq - after;
                // Replay only what fits the client's queue in full: a client is never silently handed a gap. A seq
                // ahead of ours means the client saw another life of this server (seq restarts at 1): resync too.
                if (after > _seq || after + 1 < oldest || missed > options.ClientQueue - 1)
                    channel.Writer.TryWrite(ResyncRequired(after > _seq
                        ? $"seq {after} is ahead of this server's {_seq} (it restarted); reload everything"
                        : $"{missed} events were missed; more than can be replayed (oldest buffered is {oldest}); reload everything"));
                else
                    foreach (var e in _recent.Where(e => e.Seq > after))
                        channel.Writer.TryWrite(e);
            }
            var subscription = new Subscription(this, channel);
            _subscribers.Add(subscription);
            return subscription;
        }
    }

    private ServerEvent ResyncRequired(string reason)
    {
        var message = new JsonObject
        {
            ["seq"] = _seq, ["type"] = "resync_required", ["at"] = time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["reason"] = reason,
        };
        return new ServerEvent(_seq, "resync_required", message.ToJsonString());
    }

    private void Remove(Subscription subscription)
    {
        lock (_gate) _subscribers.Remove(subscription);
        subscription.Writer.TryComplete();
    }

    public sealed class Subscription(EventHub hub, Channel<ServerEvent> channel) : IDisposable
    {
        private readonly CancellationTokenSource _dropped = new();

        internal ChannelWriter<ServerEvent> Writer => channel.Writer;
        public ChannelReader<ServerEvent> Reader => channel.Reader;

        /// <summary>Cancelled when the client is dropped for being too slow: cancels a send it is stuck in.</summary>
        public CancellationToken Dropped => _dropped.Token;

        internal void Drop()
        {
            channel.Writer.TryComplete(new SlowClientException());
            // Not inline: cancelling runs callbacks (aborting the socket), which must not happen under the hub's lock.
            ThreadPool.QueueUserWorkItem(static cts => cts.Cancel(), _dropped, preferLocal: false);
            // (never disposed: a token without timers holds nothing, and a late Cancel must not hit a disposed source)
        }

        public void Dispose()
        {
            hub.Remove(this);
        }
    }
}

public sealed class SlowClientException() : Exception("the client did not keep up with the event feed and was dropped");

internal static class JsonDefaults
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}
