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

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = hub.Options;
        var backoff = TimeSpan.FromMilliseconds(250);
        var lastPrune = DateTime.MinValue;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {SyncEvents.Channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                backoff = TimeSpan.FromMilliseconds(250);
                while (!stoppingToken.IsCancellationRequested)
                {
                    // Whatever was committed before LISTEN (or while reconnecting) is read here too.
                    await ReadNewAsync(connection, stoppingToken);
                    if (DateTime.UtcNow - lastPrune >= options.PruneInterval)
                    {
                        lastPrune = DateTime.UtcNow;
                        var pruned = await SyncEvents.PruneAsync(connection, options.RetainEvents, options.RetainAge, stoppingToken);
                        if (pruned > 0) Log.Pruned(logger, pruned);
                    }
                    // Returns after one or more notifications (a burst is read at once), or after the poll interval.
                    await connection.WaitAsync(options.PollInterval, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Expected while the database restarts: one line, no stack trace.
                if (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or ObjectDisposedException)
                    Log.ListenFailed(logger, e.Message, backoff.TotalMilliseconds);
                else
                    Log.ListenCrashed(logger, e, backoff.TotalMilliseconds);
                await Task.Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
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
        [LoggerMessage(Level = LogLevel.Warning, Message = "event log LISTEN connection lost ({Reason}); reconnecting in {DelayMs} ms")]
        public static partial void ListenFailed(ILogger logger, string reason, double delayMs);

        [LoggerMessage(Level = LogLevel.Error, Message = "event log LISTEN connection failed; reconnecting in {DelayMs} ms")]
        public static partial void ListenCrashed(ILogger logger, Exception exception, double delayMs);

        [LoggerMessage(Level = LogLevel.Debug, Message = "pruned {Count} events from the event log")]
        public static partial void Pruned(ILogger logger, int count);
    }
}
