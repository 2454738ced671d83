using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Server;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Telemetry;

/// <summary>
/// Metrics and logs as an operator meets them: the real <c>schedsync serve</c> in its own process on a real database,
/// scraped at <c>/metrics</c> like Prometheus does, its stdout read like journald does. Traffic goes to 127.0.0.1 only.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServeTelemetryProcessTests(ITestOutputHelper output)
{
    private const string TwoTasks = """
        tasks:
          backup:
            schedule: "0 3 * * *"
            command: /usr/bin/backup
          report:
            schedule: "@daily"
            command: /usr/bin/report
        """;

    /// <summary>Line 6, column 15: the bad cron expression.</summary>
    private const string InvalidFile = """
        tasks:
          backup:
            schedule: "0 3 * * *"
            command: /usr/bin/backup
          report:
            schedule: "99 * * * *"
            command: /usr/bin/report
        """;

    [Fact]
    public async Task Metrics_expose_the_named_series_and_they_move_after_syncs()
    {
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), TwoTasks);
        var port = FreePort();
        await using var server = await ServeProcess.StartAsync(
            ["serve", "--database", await TestPostgres.CreateDatabaseAsync("metrics"), "--urls", $"http://127.0.0.1:{port}"], folder.Path, port);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };

        var before = await ScrapeAsync(http);
        Assert.Equal(1, before[Series("schedsync_sync_runs_total", ("outcome", "completed"), ("trigger", "startup"))]);
        Assert.Equal(1, before[Series("schedsync_sync_duration_seconds_count", ("outcome", "completed"), ("trigger", "startup"))]);
        Assert.Equal(2, before[Series("schedsync_tasks", ("side", "file"))]);
        Assert.Equal(2, before[Series("schedsync_tasks", ("side", "database"))]);
        Assert.Equal(0, before[Series("schedsync_conflicts_open")]);
        Assert.Equal(0, before[Series("schedsync_exports_pending")]);
        Assert.Equal(1, before[Series("schedsync_file_valid")]);
        Assert.Equal(0, before[Series("schedsync_websocket_clients")]);
        var startedAt = before[Series("schedsync_sync_last_success_seconds")];
        Assert.InRange(startedAt, DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds());
        // ASP.NET Core's own request metrics: the first scrape was a request.
        Assert.Contains(before.Keys, k => k.StartsWith("http_server_request_duration_seconds_count{", StringComparison.Ordinal));

        // A WebSocket client, then an API write: a sync exports it, an event goes out to the client.
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), CancellationToken.None);
        using (var created = await http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "cleanup", schedule = "@hourly", command = "cleanup" })))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using (var sync = await http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        var buffer = new byte[64 * 1024];
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            await socket.ReceiveAsync(buffer, wait.Token); // the event reached the client, so it was counted
        var after = await ScrapeAsync(http);
        Assert.Equal(3, after[Series("schedsync_tasks", ("side", "file"))]);
        Assert.Equal(3, after[Series("schedsync_tasks", ("side", "database"))]);
        Assert.Equal(1, after[Series("schedsync_websocket_clients")]);
        Assert.True(after.Where(kv => kv.Key.StartsWith("schedsync_sync_runs_total{", StringComparison.Ordinal) && kv.Key.Contains("trigger=\"api\"", StringComparison.Ordinal)).Sum(kv => kv.Value) >= 1,
            "no run with trigger api was counted");
        Assert.True(after.Where(kv => kv.Key.StartsWith("schedsync_events_published_total{", StringComparison.Ordinal)).Sum(kv => kv.Value) >= 1, "no event was counted as published");
        Assert.True(after[Series("schedsync_sync_last_success_seconds")] >= startedAt);
        Assert.Contains(after.Keys, k => k.StartsWith("schedsync_sync_duration_seconds_bucket{", StringComparison.Ordinal) && k.Contains("trigger=\"api\"", StringComparison.Ordinal));

        // The file turns invalid and an API write waits for it: file valid 0, one export pending, an invalid_file run.
        await File.WriteAllTextAsync(folder.File("next.yml"), InvalidFile.Replace("\"0 3 * * *\"", "\"0 4 * * *\"", StringComparison.Ordinal));
        File.Move(folder.File("next.yml"), folder.File("schedule_config.yml"), overwrite: true); // as an editor saves: the watcher never sees half a file
        using (var sync = await http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        using (var created = await http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "waiting", schedule = "@hourly", command = "wait" })))
            Assert.True(created.IsSuccessStatusCode, $"POST /api/tasks answered {(int)created.StatusCode}");
        using (var sync = await http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        var invalid = await ScrapeAsync(http);
        output.WriteLine(string.Join("\n", invalid.Where(kv => kv.Key.StartsWith("schedsync_", StringComparison.Ordinal)).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.Equal(0, invalid[Series("schedsync_file_valid")]);
        Assert.Equal(1, invalid[Series("schedsync_exports_pending")]);
        Assert.Equal(4, invalid[Series("schedsync_tasks", ("side", "database"))]);
        Assert.True(invalid[Series("schedsync_sync_runs_total", ("outcome", "invalid_file"), ("trigger", "api"))] >= 2);

        var (stdout, stderr) = await server.StopAsync();
        output.WriteLine(stdout + stderr);
        // The warning an operator reads: what is wrong, where (path:line:col), and that nothing was synced.
        var path = folder.File("schedule_config.yml");
        Assert.Matches(new Regex($@"^\d\d:\d\d:\d\d\.\d\d\d warn ScheduleSync\.Sync\.SyncRunner: sync api: {Regex.Escape(path)} is invalid, nothing was synced in either direction: {Regex.Escape(path)}:6:15: task 'report': schedule '99 \* \* \* \*' is not a valid cron expression", RegexOptions.Multiline), stdout);
        AssertPlainLines(stdout);
    }

    [Fact]
    public async Task Log_format_json_writes_one_json_object_per_line_with_the_invalid_file_warning()
    {
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), InvalidFile);
        var port = FreePort();
        await using var server = await ServeProcess.StartAsync(
            ["serve", "--database", await TestPostgres.CreateDatabaseAsync("logjson"), "--urls", $"http://127.0.0.1:{port}", "--log-format", "json"], folder.Path, port);
        var (stdout, stderr) = await server.StopAsync();
        output.WriteLine(stdout + stderr);

        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        var entries = lines.Select(line => JsonDocument.Parse(line).RootElement).ToList(); // every line parses
        var warning = Assert.Single(entries, e => e.GetProperty("LogLevel").GetString() == "Warning" && e.GetProperty("Category").GetString() == "ScheduleSync.Sync.SyncRunner");
        Assert.Contains($"{folder.File("schedule_config.yml")}:6:15: task 'report'", warning.GetProperty("Message").GetString(), StringComparison.Ordinal);
        Assert.Equal("startup", warning.GetProperty("State").GetProperty("Trigger").GetString());
    }

    [Fact]
    public async Task The_log_format_comes_from_the_environment_and_a_wrong_one_is_refused_before_starting()
    {
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), TwoTasks);
        var database = await TestPostgres.CreateDatabaseAsync("logformat");
        var outcome = await SchedSyncProcess.RunAsync(["serve", "--database", database, "--urls", $"http://127.0.0.1:{FreePort()}"], folder.Path,
            new Dictionary<string, string?> { ["SCHEDSYNC_LOG_FORMAT"] = "xml" });
        output.WriteLine(outcome.ToString());
        Assert.Equal(1, outcome.ExitCode);
        Assert.Contains("SCHEDSYNC_LOG_FORMAT is 'xml': use text or json", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", outcome.Stderr, StringComparison.Ordinal);

        var port = FreePort();
        await using var server = await ServeProcess.StartAsync(["serve", "--database", database, "--urls", $"http://127.0.0.1:{port}"], folder.Path, port,
            new Dictionary<string, string?> { ["SCHEDSYNC_LOG_FORMAT"] = "json" });
        var (stdout, _) = await server.StopAsync();
        Assert.All(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => JsonDocument.Parse(line).Dispose());
    }

    /// <summary>No event ids after the category, no trailing spaces, one message per line.</summary>
    private static void AssertPlainLines(string stdout)
    {
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.False(line.EndsWith(' '), $"trailing space: '{line}'");
            Assert.DoesNotMatch(@"^\S+ \w{4} [\w.]+\[\d+\]", line);
        }
    }

    /// <summary>A series of the "ScheduleSync" meter as the exporter prints it.</summary>
    internal static string Series(string name, params (string Label, string Value)[] labels) =>
        name + "{" + string.Join(',', labels.Select(l => $"{l.Label}=\"{l.Value}\"").Prepend("otel_scope_name=\"ScheduleSync\"")) + "}";

    /// <summary>GET /metrics, as series (name with its labels, as printed) → value; fails unless 200 in the text format.</summary>
    internal static async Task<Dictionary<string, double>> ScrapeAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"/metrics answered {(int)response.StatusCode}: {text}");
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var series = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var space = line.LastIndexOf(' ');
            var (key, value) = (line[..space], line[(space + 1)..]);
            series[key] = value switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, _ => double.Parse(value, CultureInfo.InvariantCulture) };
        }
        return series;
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
