using System.Net;
using ScheduleSync.Tests.Yaml;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §2 step 5 through the API: a PUT that changes one field changes one line of the file; a file the writer cannot
/// edit in place (JSON style) still takes API writes and <c>POST /api/sync</c> answers 200 (issue 10 item 6).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerWriteBackTests
{
    [Fact]
    public async Task A_put_changing_one_field_changes_one_line_of_the_file()
    {
        await using var server = await ServerFixture.StartAsync("writeback_put", FieldWriteBackTests.Rich);

        using var response = await server.Http.PutAsync("/api/tasks/rich", ServerFixture.Json(new
        {
            name = "Rich task",
            description = "Folded text that continues here.\n",
            schedule = "*/5 * * * *",
            timezone = "UTC",
            command = "/usr/bin/run --all",
            args = new Dictionary<string, object> { ["target"] = "s3", ["keep"] = 7, ["mail"] = "kpi@example.com" },
            enabled = false,
            timeout_seconds = 3600,
            max_retries = 2,
            tags = new[] { "ops", "backup" },
        }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        var expected = FieldWriteBackTests.Rich.Replace(
            "    schedule: \"0 3 * * *\"        # double-quoted\n", "    schedule: \"*/5 * * * *\"      # double-quoted\n", StringComparison.Ordinal);
        Assert.Equal(expected, File.ReadAllText(server.ConfigPath));
        Assert.Equal(1, FieldWriteBackTests.LinesDiffering(FieldWriteBackTests.Rich, expected));
    }

    [Fact]
    public async Task A_json_style_file_takes_api_writes_and_post_sync_answers_200()
    {
        const string json = """{"version": 1, "tasks": {"a": {"schedule": "@daily", "command": "run-a"}}}""" + "\n";
        await using var server = await ServerFixture.StartAsync("writeback_json", json);

        await server.ExecuteAsync("UPDATE scheduled_tasks SET command = 'run-a --sql' WHERE id = 'a'");
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        Assert.Equal("run-a --sql", server.ParseFile().ValidTasks.Single().Command);

        using (var response = await server.Http.PutAsync("/api/tasks/a", ServerFixture.Json(new { schedule = "@hourly", command = "run-a" })))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        }
        Assert.Equal("@hourly", server.ParseFile().ValidTasks.Single().Schedule);
    }
}
