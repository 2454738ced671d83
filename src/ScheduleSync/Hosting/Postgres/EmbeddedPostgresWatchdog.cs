using Npgsql;

namespace ScheduleSync.Hosting;

/// <summary>
/// Restarts the embedded cluster when its postmaster dies (killed, crashed) while the server runs (SPEC §8: "restarted
/// by a server that finds it dead"). Meanwhile requests answer 503 (<see cref="DatabaseOutageHandler"/>); afterwards
/// the pool drops the connections to the dead server, so the next requests work again.
/// </summary>
internal sealed partial class EmbeddedPostgresWatchdog(
    EmbeddedPostgres cluster, NpgsqlDataSource dataSource, ILogger<EmbeddedPostgresWatchdog> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (cluster.IsServerRunning)
                    continue;
                Log.ServerDied(logger, cluster.DataDirectory);
                var started = await cluster.RestartIfDeadAsync(stoppingToken);
                dataSource.Clear();
                Log.ServerRestarted(logger, started ? "restarted it" : "another process had restarted it");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is EmbeddedPostgresException or NpgsqlException or IOException or ObjectDisposedException)
            {
                Log.RestartFailed(logger, e);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "embedded PostgreSQL in {DataDirectory} is not running; restarting it (requests answer 503 meanwhile)")]
        public static partial void ServerDied(ILogger logger, string dataDirectory);

        [LoggerMessage(Level = LogLevel.Information, Message = "embedded PostgreSQL is back: {How}")]
        public static partial void ServerRestarted(ILogger logger, string how);

        [LoggerMessage(Level = LogLevel.Error, Message = "could not restart embedded PostgreSQL; trying again")]
        public static partial void RestartFailed(ILogger logger, Exception exception);
    }
}
