using Npgsql;

namespace ScheduleSync.Events;

/// <summary>
/// A LISTEN that stays up while the database restarts: opens a connection, LISTENs on a channel, and hands the
/// connection to the caller until it fails; then reconnects after a backoff (250 ms, doubling to 30 s), logging one
/// line for the expected failures and the stack trace for the others. Used by the event feed and the change listener.
/// </summary>
internal static partial class ListenLoop
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <param name="beforeListen">Called on each new connection before LISTEN (to attach a notification handler).</param>
    /// <param name="listening">Runs while the connection is good; its bool says whether this is a reconnect.</param>
    public static async Task RunAsync(NpgsqlDataSource dataSource, string channel, ILogger logger,
        Action<NpgsqlConnection>? beforeListen, Func<NpgsqlConnection, bool, CancellationToken, Task> listening, CancellationToken stoppingToken)
    {
        var backoff = FirstBackoff;
        var reconnect = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                beforeListen?.Invoke(connection);
                await using (var listen = new NpgsqlCommand($"LISTEN {channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                backoff = FirstBackoff;
                var reconnected = reconnect;
                reconnect = true;
                await listening(connection, reconnected, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                reconnect = true;
                // Expected while the database restarts (the embedded cluster's watchdog brings it back): one line.
                if (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or ObjectDisposedException)
                    Log.ListenFailed(logger, channel, e.Message, backoff.TotalMilliseconds);
                else
                    Log.ListenCrashed(logger, e, channel, backoff.TotalMilliseconds);
                await Task.Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "LISTEN {Channel} connection lost ({Reason}); reconnecting in {DelayMs} ms")]
        public static partial void ListenFailed(ILogger logger, string channel, string reason, double delayMs);

        [LoggerMessage(Level = LogLevel.Error, Message = "LISTEN {Channel} connection failed; reconnecting in {DelayMs} ms")]
        public static partial void ListenCrashed(ILogger logger, Exception exception, string channel, double delayMs);
    }
}
