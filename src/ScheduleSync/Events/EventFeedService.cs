using Npgsql;

namespace ScheduleSync.Events;

/// <summary>
/// LISTENs for <c>NOTIFY schedsync_events</c> and hands every new row of the event log to the <see cref="EventHub"/>,
/// in seq order, whichever process wrote it (this server, the CLI, plain SQL, another instance). Reads again after a
/// reconnect and every <see cref="EventOptions.PollInterval"/>, so nothing waits for a lost notification; prunes the
/// log to its retention.
/// </summary>
internal sealed partial class EventFeedService(EventHub hub, NpgsqlDataSource dataSource, ILogger<EventFeedService> logger) : BackgroundService
{
    private const int ReadPage = 2_000;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Before the server accepts clients: live events are those committed after this point; earlier ones are
        // replayed from the log on request (?since=).
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
            hub.Start(await SyncEvents.LastSeqAsync(connection, cancellationToken));
        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = hub.Options;
        var lastPrune = DateTime.MinValue;
        return ListenLoop.RunAsync(dataSource, SyncEvents.Channel, logger, beforeListen: null, async (connection, _, ct) =>
        {
            while (!ct.IsCancellationRequested)
            {
                // Whatever was committed before LISTEN (or while reconnecting) is read here too.
                await ReadNewAsync(connection, ct);
                if (DateTime.UtcNow - lastPrune >= options.PruneInterval)
                {
                    lastPrune = DateTime.UtcNow;
                    var pruned = await SyncEvents.PruneAsync(connection, options.RetainEvents, options.RetainAge, ct);
                    if (pruned > 0) Log.Pruned(logger, pruned);
                }
                // Returns after one or more notifications (a burst is read at once), or after the poll interval.
                await connection.WaitAsync(options.PollInterval, ct);
            }
        }, stoppingToken);
    }

    private async Task ReadNewAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        while (true)
        {
            var events = await SyncEvents.ReadAsync(connection, hub.LastSeq, long.MaxValue, ReadPage, ct);
            if (events.Count > 0) hub.Dispatch(events);
            if (events.Count < ReadPage) return;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Debug, Message = "pruned {Count} events from the event log")]
        public static partial void Pruned(ILogger logger, int count);
    }
}
