using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Server;

namespace ScheduleSync.Tests.Telemetry;

/// <summary>
/// The token rule for <c>/metrics</c>, and the log lines of runs that did not do what was asked, on a real server
/// (Kestrel on loopback, real PostgreSQL) whose log lines are captured as they are written.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerTelemetryTests
{
    private const string Token = "metrics-token-5c81e0";

    private static readonly Action<ServerOptions> NoWatcher = o =>
    {
        o.WatchDebounce = TimeSpan.FromMinutes(10);
        o.PollInterval = TimeSpan.FromMinutes(10);
    };

    [Fact]
    public async Task Metrics_need_the_token_when_one_is_configured()
    {
        await using var server = await ServerFixture.StartAsync("metrics_token", options: o => o.Token = Token);
        using var anonymous = server.NewClient();
        using (var response = await anonymous.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.DoesNotContain("schedsync_", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using var wrong = server.NewClient("not-the-token");
        using (var response = await wrong.GetAsync("/metrics"))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);

        var series = await ServeTelemetryProcessTests.ScrapeAsync(server.Http); // with the token
        Assert.Equal(2, series[ServeTelemetryProcessTests.Series("schedsync_tasks", ("side", "database"))]);
    }

    [Fact]
    public async Task Metrics_are_open_on_loopback_without_a_token_like_the_api()
    {
        await using var server = await ServerFixture.StartAsync("metrics_open");
        var series = await ServeTelemetryProcessTests.ScrapeAsync(server.NewClient());
        Assert.Equal(1, series[ServeTelemetryProcessTests.Series("schedsync_file_valid")]);
    }

    [Fact]
    public async Task New_conflicts_a_refused_mass_deletion_and_no_op_runs_are_logged_at_the_right_level_saying_what()
    {
        var log = new CapturingLoggerProvider();
        await using var server = await ServerFixture.StartAsync("log_levels", Tasks(6), NoWatcher, builder =>
        {
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Services.AddSingleton<ILoggerProvider>(log);
        });

        // Nothing changed: a no-op, said at debug level only.
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        Assert.Contains(log.Lines, l => l.Level == LogLevel.Debug && l.Message.StartsWith("sync api: nothing changed", StringComparison.Ordinal));
        Assert.DoesNotContain(log.Lines, l => l.Level > LogLevel.Debug && l.Message.Contains("nothing changed", StringComparison.Ordinal));

        // Both sides change one field of t1: a new conflict, a warning naming the task and how to resolve it.
        await File.WriteAllTextAsync(server.ConfigPath, Tasks(6).Replace("command: run-t1", "command: file-t1", StringComparison.Ordinal));
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET command = 'db-t1' WHERE id = 't1'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        var conflict = Assert.Single(log.Lines, l => l.Message.Contains("new conflict", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, conflict.Level);
        Assert.Equal("ScheduleSync.Sync.SyncRunner", conflict.Category);
        Assert.Contains("1 new conflict(s), tasks t1:", conflict.Message, StringComparison.Ordinal);
        Assert.Contains("schedsync conflicts resolve", conflict.Message, StringComparison.Ordinal);

        // Five of six tasks gone from the file: refused, a warning that says how to allow it.
        await File.WriteAllTextAsync(server.ConfigPath, Tasks(1).Replace("command: run-t1", "command: file-t1", StringComparison.Ordinal));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        // The UPDATE's NOTIFY may start a run of its own that meets the same file: each refusal is a warning; the API's is one line.
        Assert.All(log.Lines.Where(l => l.Message.Contains("refused", StringComparison.Ordinal)), l => Assert.Equal(LogLevel.Warning, l.Level));
        var refused = Assert.Single(log.Lines, l => l.Message.StartsWith("sync api refused, nothing was synced: ", StringComparison.Ordinal));
        Assert.Contains("allow_mass_delete=true", refused.Message, StringComparison.Ordinal);
        Assert.All(log.Lines, l => Assert.False(l.Message.EndsWith(' '), $"trailing space: '{l.Message}'"));
    }

    private static string Tasks(int count)
    {
        var yaml = new StringBuilder("tasks:\n");
        for (var i = 0; i < count; i++) yaml.Append($"  t{i}:\n    schedule: \"@hourly\"\n    command: run-t{i}\n");
        return yaml.ToString();
    }

    private sealed record LogLine(LogLevel Level, string Category, string Message);

    /// <summary>Keeps every line the server logs (from ScheduleSync's own categories).</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<LogLine> _lines = new();

        public IReadOnlyList<LogLine> Lines => [.. _lines];

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<LogLine> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => category.StartsWith("ScheduleSync", StringComparison.Ordinal);

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel)) lines.Enqueue(new LogLine(logLevel, category, formatter(state, exception)));
            }
        }
    }
}
