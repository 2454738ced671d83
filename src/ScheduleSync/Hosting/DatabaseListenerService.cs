using Npgsql;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// LISTENs for the change trigger's NOTIFY, so a change made with plain SQL (a DBA, the scheduler, another service)
/// is written to the file within a second. Reconnects with backoff; after a reconnect a sync covers what was missed.
/// </summary>
internal sealed partial class DatabaseListenerService(SyncCoordinator coordinator, NpgsqlDataSource dataSource, ILogger<DatabaseListenerService> logger) : BackgroundService
{
    public const string Channel = "schedsync_changes";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await coordinator.Started.WaitAsync(stoppingToken);
        var backoff = TimeSpan.FromMilliseconds(250);
        var first = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                var pending = 0;
                connection.Notification += (_, _) => Interlocked.Exchange(ref pending, 1);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                if (!first) coordinator.Trigger("notify");
                first = false;
                backoff = TimeSpan.FromMilliseconds(250);
                while (!stoppingToken.IsCancellationRequested)
                {
                    // Wait returns after one or more notifications were delivered; many in a burst make one sync.
                    await connection.WaitAsync(stoppingToken);
                    if (Interlocked.Exchange(ref pending, 0) == 1)
                        coordinator.Trigger("notify");
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Expected while the database restarts (the embedded cluster's watchdog brings it back): one line.
                if (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or ObjectDisposedException)
                    Log.ListenFailed(logger, e.Message, backoff.TotalMilliseconds);
                else
                    Log.ListenCrashed(logger, e, backoff.TotalMilliseconds);
                await Task.Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "LISTEN connection lost ({Reason}); reconnecting in {DelayMs} ms")]
        public static partial void ListenFailed(ILogger logger, string reason, double delayMs);

        [LoggerMessage(Level = LogLevel.Error, Message = "LISTEN connection failed; reconnecting in {DelayMs} ms")]
        public static partial void ListenCrashed(ILogger logger, Exception exception, double delayMs);
    }
}
