using Npgsql;
using ScheduleSync.Events;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// LISTENs for the change trigger's NOTIFY, so a change made with plain SQL (a DBA, the scheduler, another service)
/// is written to the file within a second. Reconnects with backoff; after a reconnect a sync covers what was missed.
/// </summary>
internal sealed class DatabaseListenerService(SyncCoordinator coordinator, NpgsqlDataSource dataSource, ILogger<DatabaseListenerService> logger) : BackgroundService
{
    public const string Channel = "schedsync_changes";

    private int _pending;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await coordinator.Started.WaitAsync(stoppingToken);
        await ListenLoop.RunAsync(dataSource, Channel, logger,
            connection => connection.Notification += (_, _) => Interlocked.Exchange(ref _pending, 1),
            async (connection, reconnected, ct) =>
            {
                // After a reconnect, a sync covers what was missed while the connection was down.
                if (reconnected) coordinator.Trigger("notify");
                while (!ct.IsCancellationRequested)
                {
                    // Wait returns after one or more notifications were delivered; many in a burst make one sync.
                    await connection.WaitAsync(ct);
                    if (Interlocked.Exchange(ref _pending, 0) == 1)
                        coordinator.Trigger("notify");
                }
            }, stoppingToken);
    }
}
