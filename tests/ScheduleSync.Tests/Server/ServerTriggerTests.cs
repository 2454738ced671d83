using System.Diagnostics;
using System.Net;
using System.Text;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §4 "Triggers" against a running server: a file edit reaches the database, an API write and a plain-SQL change
/// reach the file, both sides changing one field become a conflict that resolution settles, and an invalid file holds
/// API writes back until it is fixed. Each test prints the latencies it measured.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerTriggerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Sed_edit_of_the_file_reaches_the_database_and_the_event_feed()
    {
        await using var server = await ServerFixture.StartAsync("trigger_sed");
        await using var events = await server.ConnectEventsAsync();

        var latencies = new List<(TimeSpan Database, TimeSpan Event)>();
        for (var round = 1; round <= 5; round++)
        {
            var command = $"warm-cache --round {round}";
            var previous = round == 1 ? "warm-cache" : $"warm-cache --round {round - 1}";
            var start = Stopwatch.GetTimestamp();
            // sed -i writes a temp file and renames it over the target, as most editors do.
            await ServerFixture.RunAsync("/usr/bin/sed", "-i", $"s|command: {previous}$|command: {command}|", server.ConfigPath);
            var sedDone = Stopwatch.GetElapsedTime(start);
            var expectedFile = server.FileBytes();
            Assert.Contains($"command: {command}\n", Encoding.UTF8.GetString(expectedFile), StringComparison.Ordinal);

            var toDatabase = await ServerFixture.WaitUntilAsync(
                async () => await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'cache-warmup'") == command,
                Patience, $"the database to have command '{command}'", start);
            var updated = await events.WaitForAsync("schedule_config_updated",
                e => e.TaskIds.Contains("cache-warmup") && e.ArrivedAt > start, Patience);
            var toEvent = Stopwatch.GetElapsedTime(start, updated.ArrivedAt);
            // "yaml" when the watcher's run imports it; a NOTIFY-triggered run that happens to pick the edit up calls it
            // "database" (Changes_synced_together_are_announced_with_the_side_each_came_from pins that down).
            Assert.NotEqual("api", updated.String("source"));
            Assert.NotNull(updated.Long("sync_run_id"));
            var changed = await events.WaitForAsync("task_changed", e => e.String("id") == "cache-warmup" && e.Long("version") == round + 1);
            Assert.Equal("updated", changed.String("action"));

            // An import does not write the file back: it is exactly what sed left.
            Assert.Equal(expectedFile, server.FileBytes());
            latencies.Add((toDatabase, toEvent));
            // Let the NOTIFY of this import be handled before the next edit, so the watcher is what picks the next one up.
            await Task.Delay(100);
            output.WriteLine($"round {round}: sed ran {ServerFixture.Ms(sedDone)}; file edit -> database {ServerFixture.Ms(toDatabase)}; -> event {ServerFixture.Ms(toEvent)} (source {updated.String("source")})");
        }
        output.WriteLine($"file edit -> database: median {ServerFixture.Ms(ServerFixture.Percentile([.. latencies.Select(l => l.Database)], 0.5))}, "
            + $"max {ServerFixture.Ms(latencies.Max(l => l.Database))}; -> event: max {ServerFixture.Ms(latencies.Max(l => l.Event))}");
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    [Fact]
    public async Task Api_create_is_appended_to_the_file_keeping_every_other_byte()
    {
        await using var server = await ServerFixture.StartAsync("trigger_api_create");
        await using var events = await server.ConnectEventsAsync();
        var before = server.FileBytes();

        var clock = Stopwatch.StartNew();
        using var response = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new
        {
            id = "report-weekly",
            name = "Weekly report",
            schedule = "0 6 * * 1",
            command = "report --weekly",
            tags = new[] { "reports" },
            max_retries = 3,
        }));
        var elapsed = clock.Elapsed;

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/tasks/report-weekly", response.Headers.Location?.OriginalString);
        Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        Assert.Equal("\"1\"", response.Headers.ETag?.Tag);
        var body = await ServerFixture.ReadJsonAsync(response);
        Assert.Equal("report-weekly", body.GetProperty("id").GetString());
        Assert.Equal(1, body.GetProperty("version").GetInt64());
        Assert.Equal(3, body.GetProperty("max_retries").GetInt32());

        // The response comes after the export: the file already holds the task, and only gained bytes.
        var after = server.FileBytes();
        var inserted = ServerFixtureAssert.OnlyInserted(before, after);
        Assert.Contains("report-weekly:", inserted, StringComparison.Ordinal);
        var task = Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "report-weekly");
        Assert.Equal("report --weekly", task.Command);
        Assert.Equal(["reports"], task.Tags.ToArray());
        Assert.Equal(3, task.MaxRetries);

        var changed = await events.WaitForAsync("task_changed", e => e.String("id") == "report-weekly");
        Assert.Equal("created", changed.String("action"));
        Assert.Equal(1, changed.Long("version"));
        var updated = await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("report-weekly"));
        // Written from the database side: by the run the API asked for ("api"), or by the run its NOTIFY started first ("database").
        Assert.Contains(updated.String("source"), (string[])["api", "database"]);
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        output.WriteLine($"POST /api/tasks (commit + file export) answered in {ServerFixture.Ms(elapsed)}; "
            + $"task_changed events for the one create: {events.OfType("task_changed").Count(e => e.String("id") == "report-weekly")}");
    }

    [Fact]
    public async Task Api_create_sends_one_task_changed_event_per_change()
    {
        await using var server = await ServerFixture.StartAsync("trigger_api_events");
        await using var events = await server.ConnectEventsAsync();

        using (var response = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "one-event", schedule = "@daily", command = "echo one" })))
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("one-event"));
        // A marker: a later change to another task, exported by a later sync run. NOTIFYs arrive in commit order and
        // runs are serialised, so a run the create's NOTIFY asked for has published before the marker's event; events
        // reach the client in seq order. Once the marker is here, any second task_changed for one-event is too.
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 4 WHERE id = 'nightly-backup'"));
        await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("nightly-backup"), Patience);

        var changes = events.OfType("task_changed").Where(e => e.String("id") == "one-event").ToList();
        Assert.True(changes.Count == 1, $"one create, {changes.Count} task_changed events:\n{string.Join("\n", changes)}");
    }

    [Fact]
    public async Task Sql_update_reaches_the_file_and_the_event_feed_without_a_manual_sync()
    {
        await using var server = await ServerFixture.StartAsync("trigger_sql");
        await using var events = await server.ConnectEventsAsync();
        var before = Encoding.UTF8.GetString(server.FileBytes());

        var start = Stopwatch.GetTimestamp();
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET command = '/usr/local/bin/backup.sh --full', max_retries = 2 WHERE id = 'nightly-backup'"));
        var toFile = await ServerFixture.WaitUntilAsync(
            () => File.ReadAllText(server.ConfigPath).Contains("backup.sh --full", StringComparison.Ordinal),
            Patience, "the file to have the SQL change", start);
        var updated = await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("nightly-backup"), Patience);
        var toEvent = Stopwatch.GetElapsedTime(start, updated.ArrivedAt);
        Assert.Equal("database", updated.String("source"));
        var changed = await events.WaitForAsync("task_changed", e => e.String("id") == "nightly-backup");
        Assert.Equal("updated", changed.String("action"));
        Assert.Equal(2, changed.Long("version"));

        // The task's block is replaced in place; every byte before it and after it is as the person wrote it.
        var after = File.ReadAllText(server.ConfigPath);
        var blockStart = before.IndexOf("  nightly-backup:", StringComparison.Ordinal);
        var blockEnd = before.IndexOf("  cache-warmup:", StringComparison.Ordinal);
        Assert.StartsWith(before[..blockStart], after, StringComparison.Ordinal);
        Assert.EndsWith(before[blockEnd..], after, StringComparison.Ordinal);
        var task = Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup");
        Assert.Equal("/usr/local/bin/backup.sh --full", task.Command);
        Assert.Equal(2, task.MaxRetries);
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        output.WriteLine($"SQL UPDATE -> file {ServerFixture.Ms(toFile)}; -> event {ServerFixture.Ms(toEvent)}");
    }

    public static TheoryData<string, string?, string> Resolutions => new()
    {
        { "keep_yaml", null, "0 4 * * *" },
        { "keep_db", null, "0 5 * * *" },
        { "merge", "0 6 * * *", "0 6 * * *" },
    };

    [Theory]
    [MemberData(nameof(Resolutions))]
    public async Task Both_sides_changing_one_field_is_a_conflict_that_resolution_settles_on_both_sides(string choice, string? mergedSchedule, string expected)
    {
        // The watcher would import the file edit before the SQL change lands: make it wait far longer than the test.
        await using var server = await ServerFixture.StartAsync("trigger_conflict_" + choice, options: o =>
        {
            o.WatchDebounce = TimeSpan.FromMinutes(10);
            o.PollInterval = TimeSpan.FromMinutes(10);
        });
        await using var events = await server.ConnectEventsAsync();

        // The file first (a plain write, in place), then SQL: the NOTIFY-triggered sync sees both changes.
        var edited = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, edited);
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'nightly-backup'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
        {
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
            Assert.Equal(1, (await ServerFixture.ReadJsonAsync(sync)).GetProperty("open_conflicts").GetInt32());
        }
        var detected = await events.WaitForAsync("sync_conflict_detected", e => e.String("task_id") == "nightly-backup");
        var conflictId = detected.Long("conflict_id")!.Value;
        Assert.Single(events.OfType("sync_conflict_detected"));

        // While open, neither side is overwritten.
        Assert.Equal(edited, File.ReadAllText(server.ConfigPath));
        Assert.Equal("0 5 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        using (var show = await server.Http.GetAsync($"/api/sync/conflicts/{conflictId}"))
        {
            Assert.Equal(HttpStatusCode.OK, show.StatusCode);
            var text = await show.Content.ReadAsStringAsync();
            Assert.Contains("0 4 * * *", text, StringComparison.Ordinal);
            Assert.Contains("0 5 * * *", text, StringComparison.Ordinal);
        }

        object request = mergedSchedule is null ? new { choice } : new { choice, fields = new { schedule = mergedSchedule } };
        using (var resolve = await server.Http.PostAsync($"/api/sync/conflicts/{conflictId}/resolve", ServerFixture.Json(request)))
            Assert.True(resolve.StatusCode == HttpStatusCode.OK, await resolve.Content.ReadAsStringAsync());
        var resolved = await events.WaitForAsync("sync_conflict_resolved", e => e.Long("conflict_id") == conflictId);
        Assert.Equal(choice, resolved.String("choice"));

        Assert.Equal(expected, await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal(expected, Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup").Schedule);
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts WHERE status = 'open'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(0, (await ServerFixture.ReadJsonAsync(sync)).GetProperty("open_conflicts").GetInt32());
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        Assert.Equal(expected, await server.ScalarAsync<string>("SELECT content->>'schedule' FROM sync_base WHERE task_id = 'nightly-backup'"));
    }

    [Fact]
    public async Task Invalid_file_keeps_api_writes_pending_until_the_file_is_fixed()
    {
        await using var server = await ServerFixture.StartAsync("trigger_invalid");
        await using var events = await server.ConnectEventsAsync();
        var valid = File.ReadAllText(server.ConfigPath);

        // A person mid-edit: the file does not parse.
        const string garbage = "version: 1\ntasks:\n  nightly-backup:\n    schedule: \"0 3 * * *\n    command: [\n";
        await File.WriteAllTextAsync(server.ConfigPath, garbage);
        await events.WaitForAsync("sync_error", timeout: Patience);

        var seqBefore = server.Hub.LastSeq;
        using (var response = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "while-invalid", schedule = "@hourly", command = "echo waiting" })))
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            Assert.StartsWith("pending", ServerFixture.Header(response, "ScheduleSync-Export"), StringComparison.Ordinal);
            output.WriteLine($"ScheduleSync-Export: {ServerFixture.Header(response, "ScheduleSync-Export")}");
        }
        var error = await events.WaitForAsync("sync_error", e => e.Seq > seqBefore);
        Assert.Contains("invalid", error.String("reason"), StringComparison.Ordinal);
        Assert.Equal("echo waiting", await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'while-invalid'"));
        Assert.Equal(garbage, File.ReadAllText(server.ConfigPath));
        using (var ready = await server.Http.GetAsync("/readyz"))
            output.WriteLine($"/readyz while the file is invalid: {(int)ready.StatusCode} {await ready.Content.ReadAsStringAsync()}");

        // The person saves a valid file again: the pending task is exported, the rest is what they wrote.
        var start = Stopwatch.GetTimestamp();
        await File.WriteAllTextAsync(server.ConfigPath, valid);
        var exported = await ServerFixture.WaitUntilAsync(
            () => File.ReadAllText(server.ConfigPath).Contains("while-invalid:", StringComparison.Ordinal), Patience, "the pending export", start);
        var inserted = ServerFixtureAssert.OnlyInserted(Encoding.UTF8.GetBytes(valid), server.FileBytes());
        Assert.Contains("echo waiting", inserted, StringComparison.Ordinal);
        await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("while-invalid"));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        output.WriteLine($"file fixed -> pending task exported in {ServerFixture.Ms(exported)}");
    }

    /// <summary>
    /// One run can carry a file edit and a database change at once (coalesced triggers). The event names a single
    /// <c>source</c>, taken from the trigger (SyncCoordinator.SourceOf), so the file edit is announced as coming from
    /// the database. Each changed task should be announced with the side it came from.
    /// </summary>
    [Fact]
    public async Task Changes_synced_together_are_announced_with_the_side_each_came_from()
    {
        await using var server = await ServerFixture.StartAsync("bug_source_label", options: o =>
        {
            o.WatchDebounce = TimeSpan.FromMinutes(10);
            o.PollInterval = TimeSpan.FromMinutes(10);
        });
        await using var events = await server.ConnectEventsAsync();

        // The watcher waits (long debounce); the NOTIFY of the SQL change triggers one run that sees both changes.
        await File.WriteAllTextAsync(server.ConfigPath, File.ReadAllText(server.ConfigPath).Replace("command: warm-cache", "command: warm-cache --all", StringComparison.Ordinal));
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 4 WHERE id = 'nightly-backup'"));
        await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("cache-warmup"), Patience);
        await events.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("nightly-backup"), Patience);
        Assert.Equal("warm-cache --all", await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'cache-warmup'"));
        Assert.Equal(4, Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup").MaxRetries);

        var updates = events.OfType("schedule_config_updated");
        Assert.All(updates.Where(e => e.TaskIds.Contains("cache-warmup")), e => Assert.Equal("yaml", e.String("source")));
        Assert.All(updates.Where(e => e.TaskIds.Contains("nightly-backup")), e => Assert.Equal("database", e.String("source")));
    }

    // ---- Regressions: bugs found while writing these tests (each test failed on the code of that time, see the report of
    // the server-tests branch; fixed since). The summaries describe the bug as it was.

    /// <summary>
    /// Any deletion that reaches the sync fails: SyncRunner passes <c>deletes.ToArray()</c> (a string[]) to
    /// <c>ExecuteAsync(…, params object[] parameters)</c>, and array covariance makes the string[] the params array
    /// itself, so <c>$1</c> is the first id, not an array ("42809: op ANY/ALL (array) requires array on right side").
    /// SyncRunner.cs lines 233 (sync_base deletes) and 260/264 (closing conflicts) have the same call. Every later
    /// sync fails the same way, in both directions. On top, TasksApi.ExportAsync copies the exception message, which
    /// has a line break, into the ScheduleSync-Export header: Kestrel throws and the committed DELETE answers 500.
    /// </summary>
    [Fact]
    public async Task Api_delete_removes_the_task_and_its_own_comment_from_the_file()
    {
        await using var server = await ServerFixture.StartAsync("bug_delete_api");
        await using var events = await server.ConnectEventsAsync();
        var before = File.ReadAllText(server.ConfigPath);

        using var response = await server.Http.DeleteAsync("/api/tasks/nightly-backup");

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        var start = before.IndexOf("  # Runs every night; owned by ops.", StringComparison.Ordinal);
        var end = before.IndexOf("  cache-warmup:", StringComparison.Ordinal);
        Assert.Equal(before[..start] + before[end..], File.ReadAllText(server.ConfigPath));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
        var changed = await events.WaitForAsync("task_changed", e => e.String("id") == "nightly-backup");
        Assert.Equal("deleted", changed.String("action"));
    }

    /// <summary>The same SyncRunner deletion bug from the file side (see the test above).</summary>
    [Fact]
    public async Task Task_removed_from_the_file_is_deleted_from_the_database()
    {
        await using var server = await ServerFixture.StartAsync("bug_delete_file");
        await using var events = await server.ConnectEventsAsync();

        // The person deletes the cache-warmup block (its key line and the three lines of its fields).
        await ServerFixture.RunAsync("/usr/bin/sed", "-i", "/^  cache-warmup:/,+3d", server.ConfigPath);
        Assert.DoesNotContain("cache-warmup", File.ReadAllText(server.ConfigPath), StringComparison.Ordinal);

        await ServerFixture.WaitUntilAsync(async () => await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks WHERE id = 'cache-warmup'") == 0,
            Patience, "the database to drop cache-warmup");
        Assert.Empty(events.OfType("sync_error"));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    /// <summary>The same SyncRunner deletion bug from the database side (see the tests above).</summary>
    [Fact]
    public async Task Sql_delete_is_removed_from_the_file()
    {
        await using var server = await ServerFixture.StartAsync("bug_delete_sql");
        await using var events = await server.ConnectEventsAsync();

        Assert.Equal(1, await server.ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = 'cache-warmup'"));

        await ServerFixture.WaitUntilAsync(() => !File.ReadAllText(server.ConfigPath).Contains("cache-warmup", StringComparison.Ordinal),
            Patience, "the file to drop cache-warmup");
        Assert.Empty(events.OfType("sync_error"));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    /// <summary>
    /// SPEC §1's own example ends a task with <c>tags: [ops, backup]</c>. The loader's entry end stops before the
    /// closing bracket (YamlDotNet reports a flow collection's end with Start == End, which ScheduleLoader.Track skips),
    /// so replacing the block in place leaves a stray <c>]</c>, the write-back check refuses it, and every sync fails.
    /// </summary>
    [Fact]
    public async Task Sql_update_of_a_task_whose_last_field_is_a_flow_list_reaches_the_file()
    {
        const string specExample = """
            version: 1
            tasks:
              nightly-backup:
                schedule: "0 3 * * *"
                command: /usr/local/bin/backup.sh
                tags: [ops, backup]
              cache-warmup:
                schedule: "*/5 * * * *"
                command: warm-cache

            """;
        await using var server = await ServerFixture.StartAsync("bug_flow_end", specExample);
        await using var events = await server.ConnectEventsAsync();

        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET command = 'backup.sh --full' WHERE id = 'nightly-backup'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.True(sync.StatusCode == HttpStatusCode.OK, await sync.Content.ReadAsStringAsync());

        Assert.Empty(events.OfType("sync_error"));
        var task = Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup");
        Assert.Equal("backup.sh --full", task.Command);
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    /// <summary>
    /// The same bug from ScheduleSync's own layout: ScheduleWriter.RenderTask puts <c>tags: [...]</c> last, so a task
    /// created with tags through the API can never be updated in the file afterwards.
    /// </summary>
    [Fact]
    public async Task Api_update_of_a_task_created_with_tags_reaches_the_file()
    {
        await using var server = await ServerFixture.StartAsync("bug_flow_api");
        using (var created = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "tagged", schedule = "@daily", command = "echo v1", tags = new[] { "reports" } })))
            Assert.Equal("done", ServerFixture.Header(created, "ScheduleSync-Export"));

        using var updated = await server.Http.PutAsync("/api/tasks/tagged", ServerFixture.Json(new { schedule = "@daily", command = "echo v2", tags = new[] { "reports" } }));

        Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        Assert.Equal("done", ServerFixture.Header(updated, "ScheduleSync-Export"));
        Assert.Equal("echo v2", Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "tagged").Command);
    }

    /// <summary>
    /// ScheduleWriter.IsSafePlain asks ScheduleLoader.Resolve about <c>new Scalar(value)</c>, whose style is Any, not
    /// Plain, so Resolve always answers String: "true", "2024", "null", "yes" are written unquoted and read back as a
    /// boolean, number, null. The write-back check then refuses the text and every later sync fails (the API write is
    /// committed, its export never happens, and no other change moves in either direction).
    /// </summary>
    [Theory]
    [InlineData("command", "true")]
    [InlineData("name", "2024")]
    [InlineData("description", "null")]
    public async Task Api_create_with_text_that_reads_as_another_yaml_type_is_exported_quoted(string field, string value)
    {
        await using var server = await ServerFixture.StartAsync("bug_plain_" + field);
        var body = new Dictionary<string, string> { ["id"] = "looks-typed", ["schedule"] = "@daily", ["command"] = "echo typed" };
        body[field] = value;

        using var response = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(body));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "looks-typed");
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    /// <summary>
    /// A person mid-edit who has typed <c>tags: [ops,</c> and saved: YamlDotNet's scanner throws
    /// InvalidOperationException (not YamlException) on an unclosed flow list followed by a less-indented line, and
    /// ScheduleLoader lets it escape. The sync fails with "Operation is not valid due to the current state of the
    /// object." instead of naming the file, line and column; GET /api/sync/status answers 500; the server still
    /// believes the file is valid. Minimal input: <c>"a: [b\nc: d\n"</c>.
    /// </summary>
    [Fact]
    public async Task Unclosed_flow_list_mid_edit_is_reported_as_an_invalid_file_with_its_location()
    {
        await using var server = await ServerFixture.StartAsync("bug_unclosed_flow");
        await using var events = await server.ConnectEventsAsync();

        var midEdit = File.ReadAllText(server.ConfigPath).Replace("tags: [ops, backup]   # keep these", "tags: [ops,", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, midEdit);
        var error = await events.WaitForAsync("sync_error", timeout: Patience);

        Assert.Contains("invalid", error.String("reason"), StringComparison.Ordinal);
        Assert.True(error.Json.TryGetProperty("problems", out var problems) && problems.GetArrayLength() > 0, error.Text);
        using var status = await server.Http.GetAsync("/api/sync/status");
        Assert.True(status.StatusCode == HttpStatusCode.OK, await status.Content.ReadAsStringAsync());
        Assert.False((await ServerFixture.ReadJsonAsync(status)).GetProperty("file_valid").GetBoolean());
        Assert.Equal(midEdit, File.ReadAllText(server.ConfigPath));
    }
}
