using System.Net;
using System.Text;
using ScheduleSync.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §6, the event log: every change from any source (the API, the CLI, plain SQL, a conflict resolution) produces
/// its events exactly once, with a <c>task_changed</c> per version of a task, and a client replays what it missed
/// with <c>?since=n</c>, also across a restart of the server. (Issue 10, items 13 and 15.)
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerEventLogTests(ITestOutputHelper output)
{
    private static async Task<string> SendAsync(ServerFixture server, HttpMethod method, string path, object? body = null, HttpStatusCode? expected = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : ServerFixture.Json(body) };
        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if (expected is { } status) Assert.True(response.StatusCode == status, $"{method} {path}: {(int)response.StatusCode} {text}");
        else Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return text;
    }

    /// <summary>
    /// Creates a marker task and waits for its task_changed: events arrive in commit order, so every change committed
    /// before it has been received by then.
    /// </summary>
    private static async Task MarkAsync(ServerFixture server, EventClient client, string marker)
    {
        await SendAsync(server, HttpMethod.Post, "/api/tasks", new { id = marker, schedule = "@hourly", command = "echo " + marker }, HttpStatusCode.Created);
        await client.WaitForAsync("task_changed", e => e.String("id") == marker, TimeSpan.FromSeconds(10));
    }

    private static List<string> TaskChanges(EventClient client, string id) =>
        [.. client.OfType("task_changed").Where(e => e.String("id") == id).Select(e => $"{e.String("action")} {e.Long("version")} {e.String("source")}")];

    [Fact]
    public async Task Delete_then_recreate_then_update_announces_every_version_once()
    {
        await using var server = await ServerFixture.StartAsync("evlog_recreate");
        await using var client = await server.ConnectEventsAsync();

        await SendAsync(server, HttpMethod.Post, "/api/tasks", new { id = "phoenix", schedule = "@hourly", command = "v1" }, HttpStatusCode.Created);
        await SendAsync(server, HttpMethod.Put, "/api/tasks/phoenix", new { schedule = "@hourly", command = "v2" });
        await SendAsync(server, HttpMethod.Delete, "/api/tasks/phoenix", expected: HttpStatusCode.NoContent);
        await SendAsync(server, HttpMethod.Post, "/api/tasks", new { id = "phoenix", schedule = "@hourly", command = "again v1" }, HttpStatusCode.Created);
        await SendAsync(server, HttpMethod.Put, "/api/tasks/phoenix", new { schedule = "@hourly", command = "again v2" });
        await MarkAsync(server, client, "zz-marker");

        var changes = TaskChanges(client, "phoenix");
        output.WriteLine(string.Join("\n", changes));
        Assert.Equal(["created 1 api", "updated 2 api", "deleted 2 api", "created 1 api", "updated 2 api"], changes);
    }

    [Fact]
    public async Task Plain_sql_changes_announce_each_version_exactly_once()
    {
        await using var server = await ServerFixture.StartAsync("evlog_sql");
        await using var client = await server.ConnectEventsAsync();

        // Two versions in one transaction, a statement that changes nothing, then a statement changing two rows.
        await server.ExecuteAsync("""
            BEGIN;
            UPDATE scheduled_tasks SET max_retries = 1 WHERE id = 'nightly-backup';
            UPDATE scheduled_tasks SET max_retries = 2 WHERE id = 'nightly-backup';
            COMMIT;
            """);
        await server.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = max_retries WHERE id = 'nightly-backup'");
        await server.ExecuteAsync("UPDATE scheduled_tasks SET enabled = NOT enabled");
        await client.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("cache-warmup"), TimeSpan.FromSeconds(10));
        await MarkAsync(server, client, "zz-marker");

        Assert.Equal(["updated 2 sql", "updated 3 sql", "updated 4 sql"], TaskChanges(client, "nightly-backup"));
        Assert.Equal(["updated 2 sql"], TaskChanges(client, "cache-warmup"));
        var seqs = client.Events.Select(e => e.Seq).ToList();
        Assert.Equal(seqs.Distinct().Order(), seqs);
    }

    /// <summary>A conflict on nightly-backup: the file says 0 4, the database 0 5 (the watcher is held off so SQL lands first).</summary>
    private static async Task<long> MakeConflictAsync(ServerFixture server, EventClient client)
    {
        var edited = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, edited);
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'nightly-backup'"));
        await SendAsync(server, HttpMethod.Post, "/api/sync");
        var detected = await client.WaitForAsync("sync_conflict_detected", e => e.String("task_id") == "nightly-backup", TimeSpan.FromSeconds(10));
        return detected.Long("conflict_id")!.Value;
    }

    private static void HoldOffWatcher(ScheduleSync.Hosting.ServerOptions o)
    {
        o.WatchDebounce = TimeSpan.FromMinutes(10);
        o.PollInterval = TimeSpan.FromMinutes(10);
    }

    [Fact]
    public async Task An_api_resolve_announces_the_row_and_the_file_it_changed()
    {
        await using var server = await ServerFixture.StartAsync("evlog_api_resolve", options: HoldOffWatcher);
        await using var client = await server.ConnectEventsAsync();
        var conflict = await MakeConflictAsync(server, client);
        var before = client.Events.Count;

        await SendAsync(server, HttpMethod.Post, $"/api/sync/conflicts/{conflict}/resolve", new { choice = "merge", fields = new { schedule = "0 6 * * *" } });
        var resolved = await client.WaitForAsync("sync_conflict_resolved", e => e.Long("conflict_id") == conflict);
        Assert.Equal("merge", resolved.String("choice"));
        var changed = await client.WaitForAsync("task_changed", e => e.String("id") == "nightly-backup" && e.String("source") == "resolve");
        Assert.Equal("updated", changed.String("action"));
        Assert.Equal(3, changed.Long("version"));
        var updated = await client.WaitForAsync("schedule_config_updated", e => e.String("source") == "resolve");
        Assert.Equal(["nightly-backup"], updated.TaskIds);
        await MarkAsync(server, client, "zz-marker");

        Assert.Equal("0 6 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal("0 6 * * *", Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup").Schedule);
        var after = client.Events.Skip(before).Where(e => e.String("id") != "zz-marker" && !e.TaskIds.Contains("zz-marker")).Select(e => e.Type).ToList();
        output.WriteLine(string.Join(", ", after));
        Assert.Equal(["task_changed", "sync_conflict_resolved", "schedule_config_updated"], after);
    }

    [Fact]
    public async Task A_cli_resolve_while_the_server_runs_is_announced_on_the_feed()
    {
        await using var server = await ServerFixture.StartAsync("evlog_cli_resolve", options: HoldOffWatcher);
        await using var client = await server.ConnectEventsAsync();
        var conflict = await MakeConflictAsync(server, client);

        var outcome = await SchedSyncProcess.RunAsync(
            ["conflicts", "resolve", conflict.ToString(System.Globalization.CultureInfo.InvariantCulture), "--keep", "yaml",
             "--config", server.ConfigPath, "--database", server.ConnectionString], server.Folder);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());

        var resolved = await client.WaitForAsync("sync_conflict_resolved", e => e.Long("conflict_id") == conflict, TimeSpan.FromSeconds(10));
        Assert.Equal("keep_yaml", resolved.String("choice"));
        var changed = await client.WaitForAsync("task_changed", e => e.String("id") == "nightly-backup" && e.String("source") == "resolve", TimeSpan.FromSeconds(10));
        Assert.Equal(("updated", 3L), (changed.String("action"), changed.Long("version")));
        await MarkAsync(server, client, "zz-marker");
        Assert.Single(client.OfType("sync_conflict_resolved"));
        Assert.Single(client.OfType("task_changed"), e => e.String("source") == "resolve");
        Assert.Equal("0 4 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
    }

    [Fact]
    public async Task Reconnecting_with_since_after_a_restart_replays_exactly_what_was_missed()
    {
        await using var server = await ServerFixture.StartAsync("evlog_restart");
        var recorder = await server.ConnectEventsAsync();
        long seen;
        await using (var client = await server.ConnectEventsAsync())
        {
            await MarkAsync(server, client, "seen-1");
            seen = client.Events[^1].Seq;
        }

        // Missed: before the restart (an API write, a plain-SQL change and their exports), and after it (an API write).
        await SendAsync(server, HttpMethod.Post, "/api/tasks", new { id = "missed-api", schedule = "@hourly", command = "x" }, HttpStatusCode.Created);
        await server.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 7 WHERE id = 'cache-warmup'");
        await recorder.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("cache-warmup"), TimeSpan.FromSeconds(10));
        var beforeRestart = recorder.Events.Where(e => e.Seq > seen).Select(e => e.Text).ToList();
        await recorder.DisposeAsync();
        await server.RestartAsync();
        await SendAsync(server, HttpMethod.Post, "/api/tasks", new { id = "missed-after-restart", schedule = "@hourly", command = "y" }, HttpStatusCode.Created);

        await using var back = await server.ConnectEventsAsync(since: seen);
        await back.WaitForAsync("task_changed", e => e.String("id") == "missed-after-restart", TimeSpan.FromSeconds(10));
        var replayed = back.Events;
        output.WriteLine($"left after seq {seen}; replayed:\n{string.Join("\n", replayed.Select(e => e.Text))}");
        Assert.DoesNotContain(replayed, e => e.Type == "resync_required");
        Assert.Equal(Enumerable.Range(0, replayed.Count).Select(i => seen + 1 + i), replayed.Select(e => e.Seq));
        Assert.Equal(beforeRestart, replayed.Take(beforeRestart.Count).Select(e => e.Text));
        Assert.Contains(replayed, e => e.Type == "task_changed" && e.String("id") == "missed-api" && e.String("action") == "created");
        Assert.Contains(replayed, e => e.Type == "task_changed" && e.String("id") == "cache-warmup" && e.String("source") == "sql");
    }

    [Fact]
    public async Task Reimporting_many_tasks_after_a_cli_deletion_announces_each_one()
    {
        const int count = 1_200;
        var yaml = new StringBuilder("version: 1\ntasks:\n  keeper:\n    schedule: \"@hourly\"\n    command: keep\n");
        var keeperOnly = yaml.ToString();
        for (var i = 0; i < count; i++)
            yaml.Append(System.Globalization.CultureInfo.InvariantCulture, $"  bulk-{i:D4}:\n    schedule: \"@hourly\"\n    command: echo {i}\n");
        var full = yaml.ToString();
        await using var server = await ServerFixture.StartAsync("evlog_reimport", full, options: HoldOffWatcher);
        Assert.Equal(count + 1L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks"));
        await using var client = await server.ConnectEventsAsync();

        // The CLI deletes them (file and database), then the file gets them back and the server imports them.
        await File.WriteAllTextAsync(server.ConfigPath, keeperOnly);
        var outcome = await SchedSyncProcess.RunAsync(["sync", "--allow-mass-delete", "--config", server.ConfigPath, "--database", server.ConnectionString], server.Folder);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        Assert.Equal(1L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks"));
        await File.WriteAllTextAsync(server.ConfigPath, full);
        await SendAsync(server, HttpMethod.Post, "/api/sync");
        await MarkAsync(server, client, "zz-marker");

        var changes = client.OfType("task_changed").Where(e => e.String("id")!.StartsWith("bulk-", StringComparison.Ordinal))
            .GroupBy(e => e.String("id")!).ToDictionary(g => g.Key, g => g.Select(e => $"{e.String("action")} {e.Long("version")} {e.String("source")}").ToList());
        output.WriteLine($"{changes.Count} tasks announced; {client.Events.Count} events in all; feed end: {client.CloseStatus?.ToString() ?? "open"}");
        Assert.Equal(count, changes.Count);
        Assert.All(changes, kv => Assert.Equal(["deleted 1 yaml", "created 1 yaml"], kv.Value));
        // One for the CLI's deletion, one for the re-import.
        Assert.Equal(2, client.OfType("schedule_config_updated").Count(e => e.String("source") == "yaml" && e.TaskIds.Count == count));
    }

    [Fact]
    public async Task A_since_older_than_the_retention_or_beyond_the_log_gets_resync_required_then_live_events()
    {
        await using var server = await ServerFixture.StartAsync("evlog_retention");
        await using (var client = await server.ConnectEventsAsync())
        {
            for (var i = 0; i < 4; i++) await MarkAsync(server, client, $"early-{i}");
        }
        var last = await server.ScalarAsync<long>("SELECT event_seq FROM sync_state");
        Assert.True(last >= 8, $"only {last} events");
        Assert.Equal(last - 3, await ScheduleSync.Events.SyncEvents.PruneAsync(server.Db, keep: 3, maxAge: TimeSpan.FromDays(7), CancellationToken.None));

        await using var tooOld = await server.ConnectEventsAsync(since: 1);
        await using var kept = await server.ConnectEventsAsync(since: last - 2);
        await using var ahead = await server.ConnectEventsAsync(since: last + 1_000);
        await MarkAsync(server, tooOld, "live");
        await kept.WaitForAsync("task_changed", e => e.String("id") == "live");
        await ahead.WaitForAsync("resync_required", null);

        var resync = tooOld.Events[0];
        Assert.Equal("resync_required", resync.Type);
        Assert.Contains("no longer kept", resync.String("reason"), StringComparison.Ordinal);
        Assert.DoesNotContain(tooOld.Events, e => e.Seq > 1 && e.Seq <= last && e.Type != "resync_required");
        Assert.Equal([last - 1, last], kept.Events.Take(2).Select(e => e.Seq));
        Assert.DoesNotContain(kept.Events, e => e.Type == "resync_required");
        Assert.Contains("ahead of the event log", ahead.Events[0].String("reason"), StringComparison.Ordinal);
        // After resync_required a client starts over: the live events from there on reach it.
        await MarkAsync(server, kept, "after-resync");
        await ahead.WaitForAsync("task_changed", e => e.String("id") == "after-resync");
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("")]
    public async Task A_since_that_is_not_a_seq_is_refused_with_400(string since)
    {
        await using var server = await ServerFixture.StartAsync("evlog_since");
        var uri = new Uri($"ws://{server.BaseAddress.Authority}/ws?since={Uri.EscapeDataString(since)}");
        Assert.Equal(HttpStatusCode.BadRequest, await EventClient.RefusedStatusAsync(uri, null));

        using var response = await server.Http.GetAsync($"/ws?since={Uri.EscapeDataString(since)}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await ServerFixture.ReadJsonAsync(response);
        Assert.Contains("since", problem.GetProperty("errors").GetProperty("since")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(0, server.Hub.SubscriberCount);
    }
}
