using System.Net;
using System.Text;
using ScheduleSync.Hosting;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// Issue 10 through the HTTP API: a refused mass deletion is not slipped through by an API write and is allowed with
/// <c>POST /api/sync?allow_mass_delete=true</c>; a row broken with SQL is served with its problems (not 500) and
/// reported; a write to a task frozen by an open conflict says so in <c>ScheduleSync-Export</c>.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerSyncSafetyTests
{
    // The watcher would sync each edit on its own: these tests decide when syncs run.
    private static void NoWatcher(ServerOptions o)
    {
        o.WatchDebounce = TimeSpan.FromMinutes(10);
        o.PollInterval = TimeSpan.FromMinutes(10);
    }

    private static string TasksYaml(int count)
    {
        var yaml = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < count; i++) yaml.Append($"  t{i:00}:\n    schedule: \"@daily\"\n    command: c{i}\n");
        return yaml.ToString();
    }

    [Fact]
    public async Task Api_write_does_not_slip_a_refused_mass_deletion_through_and_the_api_parameter_allows_it()
    {
        await using var server = await ServerFixture.StartAsync("safety_api_guard", TasksYaml(21), NoWatcher);
        Assert.Equal(21L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks"));
        await File.WriteAllTextAsync(server.ConfigPath, TasksYaml(10)); // t10..t20 gone: 11 of 21

        using (var refused = await server.Http.PostAsync("/api/sync", null))
        {
            var summary = await ServerFixture.ReadJsonAsync(refused);
            Assert.Equal("refused", summary.GetProperty("status").GetString());
            Assert.Contains("POST /api/sync?allow_mass_delete=true", summary.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        // 11 of 22 is "not more than half": the share no longer trips the guard, the refusal must still hold.
        using (var created = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "added", schedule = "@hourly", command = "a" })))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var export = ServerFixture.Header(created, "ScheduleSync-Export");
            Assert.StartsWith("pending; sync refused", export, StringComparison.Ordinal);
            Assert.Contains("allow_mass_delete=true", export, StringComparison.Ordinal);
        }
        Assert.Equal(22L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks"));
        Assert.DoesNotContain("added", await File.ReadAllTextAsync(server.ConfigPath), StringComparison.Ordinal);
        using (var status = await server.Http.GetAsync("/api/sync/status"))
            Assert.Contains("allow_mass_delete=true", (await ServerFixture.ReadJsonAsync(status)).GetProperty("refusal").GetString(), StringComparison.Ordinal);

        using (var allowed = await server.Http.PostAsync("/api/sync?allow_mass_delete=true", null))
        {
            var summary = await ServerFixture.ReadJsonAsync(allowed);
            Assert.Equal(("completed", 11, 1), (summary.GetProperty("status").GetString(), summary.GetProperty("deletes").GetInt32(), summary.GetProperty("exports").GetInt32()));
        }
        Assert.Equal(11L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks"));
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    [Fact]
    public async Task Sql_row_breaking_a_rule_is_served_with_its_problems_reported_and_synced_once_fixed_through_the_api()
    {
        await using var server = await ServerFixture.StartAsync("safety_api_invalid", options: NoWatcher);
        var file = server.FileBytes();
        await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = 'every tuesday' WHERE id = 'nightly-backup'");

        string etag;
        using (var get = await server.Http.GetAsync("/api/tasks/nightly-backup"))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            var task = await ServerFixture.ReadJsonAsync(get);
            Assert.True(task.GetProperty("invalid").GetBoolean());
            Assert.Equal("every tuesday", task.GetProperty("schedule").GetString());
            Assert.Contains(task.GetProperty("problems").EnumerateArray(), p => p.GetString()!.Contains("every tuesday", StringComparison.Ordinal));
            etag = get.Headers.ETag!.Tag;
        }
        using (var list = await server.Http.GetAsync("/api/tasks"))
        {
            var tasks = (await ServerFixture.ReadJsonAsync(list)).EnumerateArray().ToList();
            Assert.Equal(2, tasks.Count);
            Assert.False(tasks.Single(t => t.GetProperty("id").GetString() == "cache-warmup").TryGetProperty("invalid", out _));
        }
        using (var sync = await server.Http.PostAsync("/api/sync", null))
        {
            var summary = await ServerFixture.ReadJsonAsync(sync);
            Assert.Equal("nightly-backup", Assert.Single(summary.GetProperty("invalid_task_ids").EnumerateArray()).GetString());
            Assert.Contains("every tuesday", summary.GetProperty("error").GetString(), StringComparison.Ordinal);
        }
        using (var status = await server.Http.GetAsync("/api/sync/status"))
            Assert.Equal("nightly-backup", Assert.Single((await ServerFixture.ReadJsonAsync(status)).GetProperty("invalid_tasks").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(file, server.FileBytes());

        using var replace = new HttpRequestMessage(HttpMethod.Put, "/api/tasks/nightly-backup")
        {
            Content = ServerFixture.Json(new { name = "Nightly backup", schedule = "0 4 * * *", command = "/usr/local/bin/backup.sh", tags = new[] { "ops", "backup" } }),
        };
        replace.Headers.TryAddWithoutValidation("If-Match", etag);
        using (var fixedTask = await server.Http.SendAsync(replace))
        {
            Assert.Equal(HttpStatusCode.OK, fixedTask.StatusCode);
            Assert.Equal("done", ServerFixture.Header(fixedTask, "ScheduleSync-Export"));
        }
        Assert.Equal("0 4 * * *", Assert.Single(server.ParseFile().ValidTasks, t => t.Id == "nightly-backup").Schedule);
        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }

    [Fact]
    public async Task Api_write_to_a_task_frozen_by_an_open_conflict_answers_frozen_with_the_conflict_id()
    {
        await using var server = await ServerFixture.StartAsync("safety_api_frozen", options: NoWatcher);
        var edited = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(server.ConfigPath, edited);
        await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'nightly-backup'");
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(1, (await ServerFixture.ReadJsonAsync(sync)).GetProperty("open_conflicts").GetInt32());
        var conflict = await server.ScalarAsync<long>("SELECT id FROM sync_conflicts WHERE status = 'open'");

        using var response = await server.Http.PutAsync("/api/tasks/nightly-backup",
            ServerFixture.Json(new { schedule = "0 6 * * *", command = "/usr/local/bin/backup.sh" }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"frozen; conflict {conflict}", ServerFixture.Header(response, "ScheduleSync-Export"));
        Assert.Equal(edited, File.ReadAllText(server.ConfigPath));
        Assert.Equal("0 6 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));

        // An unfrozen task's write still says "done".
        using var other = await server.Http.PutAsync("/api/tasks/cache-warmup", ServerFixture.Json(new { schedule = "*/5 * * * *", command = "warm-cache --all", enabled = false }));
        Assert.Equal("done", ServerFixture.Header(other, "ScheduleSync-Export"));
        Assert.Contains("command: warm-cache --all", File.ReadAllText(server.ConfigPath), StringComparison.Ordinal);
    }
}
