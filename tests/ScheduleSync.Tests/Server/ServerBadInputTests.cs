using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// Input that used to get a 500 or a bare 400 (issue 10, item 15): text that is not text, keys given twice below the
/// top level, query values the framework could not bind, field values with a choice that takes none. Each gets a 400
/// problem that names the field or parameter, and nothing is stored.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerBadInputTests(ITestOutputHelper output)
{
    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] WithByte(string before, byte bad, string after) => [.. Utf8(before), bad, .. Utf8(after)];

    public static TheoryData<string, string, string, byte[], string> BadBodies => new()
    {
        // case, method, path, body bytes, the errors key that must name the problem
        { "lone surrogate in a value", "POST", "/api/tasks", Utf8("""{ "id": "t1", "schedule": "@daily", "command": "run \ud800" }"""), "command" },
        { "lone low surrogate in the name", "PUT", "/api/tasks/nightly-backup", Utf8("""{ "name": "\udc00", "schedule": "@daily", "command": "x" }"""), "name" },
        { "lone surrogate in an args key", "POST", "/api/tasks", Utf8("""{ "id": "t1", "schedule": "@daily", "command": "x", "args": { "\ud800": "v" } }"""), "args" },
        { "lone surrogate in an args value", "POST", "/api/tasks", Utf8("""{ "id": "t1", "schedule": "@daily", "command": "x", "args": { "a": "\ud800" } }"""), "args.a" },
        { "lone surrogate in a tag", "POST", "/api/tasks", Utf8("""{ "id": "t1", "schedule": "@daily", "command": "x", "tags": ["ok", "\ud800"] }"""), "tags[1]" },
        { "invalid UTF-8 in a value", "POST", "/api/tasks", WithByte("""{ "id": "t1", "schedule": "@daily", "command": "x""", 0xFF, "\" }"), "command" },
        { "invalid UTF-8 in a key", "POST", "/api/tasks", WithByte("""{ "id": "t1", "schedule": "@daily", "command": "x", "args": { "k""", 0xC3, "\": 1 } }"), "args" },
        { "duplicate key in args", "POST", "/api/tasks", Utf8("""{ "id": "t1", "schedule": "@daily", "command": "x", "args": { "a": 1, "a": 2 } }"""), "args.a" },
        { "lone surrogate in a fields value", "POST", "/api/sync/conflicts/1/resolve", Utf8("""{ "choice": "merge", "fields": { "schedule": "\ud800" } }"""), "fields.schedule" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Body_with_invalid_text_or_a_nested_duplicate_key_is_a_400_naming_the_field(string name, string method, string path, byte[] body, string errorKey)
    {
        await using var server = await ServerFixture.StartAsync("bad_body");
        var tasksBefore = await server.DatabaseHashesAsync();
        var auditBefore = await server.ScalarAsync<long>("SELECT count(*) FROM task_audit");
        var fileBefore = server.FileBytes();

        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{name}: {method} {path} -> {(int)response.StatusCode} {text}");

        var errors = AssertProblem(response, text);
        Assert.True(errors.TryGetProperty(errorKey, out var messages), $"{name}: no errors[\"{errorKey}\"] in {text}");
        Assert.NotEqual(0, messages.GetArrayLength());
        Assert.Equal(tasksBefore, await server.DatabaseHashesAsync());
        Assert.Equal(auditBefore, await server.ScalarAsync<long>("SELECT count(*) FROM task_audit"));
        Assert.Equal(fileBefore, server.FileBytes());
    }

    [Theory]
    [InlineData("/api/tasks?enabled=maybe", "enabled", "true or false")]
    [InlineData("/api/sync/conflicts?status=bogus", "status", "open, resolved or all")]
    public async Task Query_value_that_is_not_allowed_is_a_400_naming_the_parameter(string path, string parameter, string allowed)
    {
        await using var server = await ServerFixture.StartAsync("bad_query");

        using var response = await server.Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"GET {path} -> {(int)response.StatusCode} {text}");

        var errors = AssertProblem(response, text);
        Assert.True(errors.TryGetProperty(parameter, out var messages), $"no errors[\"{parameter}\"] in {text}");
        Assert.Contains(allowed, messages[0].GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("keep_db")]
    [InlineData("keep_yaml")]
    public async Task Keep_one_side_with_field_values_is_refused_and_the_conflict_stays_open(string choice)
    {
        var (server, edited, conflictId) = await StartWithScheduleConflictAsync("keep_with_fields_" + choice);
        await using var owner = server;
        var auditBefore = await server.ScalarAsync<long>("SELECT count(*) FROM task_audit");

        using var response = await server.Http.PostAsync($"/api/sync/conflicts/{conflictId}/resolve",
            ServerFixture.Json(new { choice, fields = new { schedule = "0 6 * * *" } }));
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{choice} with fields -> {(int)response.StatusCode} {text}");

        var errors = AssertProblem(response, text);
        Assert.Contains("merge", errors.GetProperty("fields")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal("open", await server.ScalarAsync<string>("SELECT status FROM sync_conflicts WHERE id = $1", conflictId));
        Assert.Equal("0 5 * * *", await server.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'nightly-backup'"));
        Assert.Equal(edited, File.ReadAllText(server.ConfigPath));
        Assert.Equal(auditBefore, await server.ScalarAsync<long>("SELECT count(*) FROM task_audit"));
    }

    [Fact]
    public async Task A_resolution_carrying_versions_that_are_no_longer_current_is_refused_even_after_a_run_refreshed_the_conflict()
    {
        var (server, edited, conflictId) = await StartWithScheduleConflictAsync("resolve_shown_stale");
        await using var owner = server;
        JsonElement shown;
        using (var get = await server.Http.GetAsync($"/api/sync/conflicts/{conflictId}"))
            shown = await ServerFixture.ReadJsonAsync(get);
        Assert.Equal("0 5 * * *", shown.GetProperty("db").GetProperty("schedule").GetString());

        // The database side changes again, and a run refreshes the stored conflict before the client's decision arrives.
        Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *' WHERE id = 'nightly-backup'"));
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        using (var get = await server.Http.GetAsync($"/api/sync/conflicts/{conflictId}"))
            Assert.Equal("0 6 * * *", (await ServerFixture.ReadJsonAsync(get)).GetProperty("db").GetProperty("schedule").GetString());

        using var response = await server.Http.PostAsync($"/api/sync/conflicts/{conflictId}/resolve",
            ServerFixture.Json(new { choice = "keep_db", shown = new { yaml = shown.GetProperty("yaml"), db = shown.GetProperty("db") } }));
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"resolve with stale versions -> {(int)response.StatusCode} {text}");
        Assert.True(response.StatusCode == HttpStatusCode.Conflict, $"expected 409, got {(int)response.StatusCode}: {text}");
        Assert.Contains("changed since", text, StringComparison.Ordinal);
        Assert.Equal("open", await server.ScalarAsync<string>("SELECT status FROM sync_conflicts WHERE id = $1", conflictId));
        Assert.Equal(edited, File.ReadAllText(server.ConfigPath));

        // With the versions as they are now, the same decision is applied.
        JsonElement current;
        using (var get = await server.Http.GetAsync($"/api/sync/conflicts/{conflictId}"))
            current = await ServerFixture.ReadJsonAsync(get);
        using var applied = await server.Http.PostAsync($"/api/sync/conflicts/{conflictId}/resolve",
            ServerFixture.Json(new { choice = "keep_db", shown = new { yaml = current.GetProperty("yaml"), db = current.GetProperty("db") } }));
        Assert.Equal(HttpStatusCode.OK, applied.StatusCode);
        Assert.Equal("resolved", await server.ScalarAsync<string>("SELECT status FROM sync_conflicts WHERE id = $1", conflictId));
    }

    /// <summary>
    /// A server (no watcher, no polling) where nightly-backup's schedule changed in the file (0 4) and in the database
    /// (0 5): one open conflict. Returns the file's text and the conflict's id.
    /// </summary>
    private static async Task<(ServerFixture Server, string Edited, long ConflictId)> StartWithScheduleConflictAsync(string name)
    {
        var server = await ServerFixture.StartAsync(name, options: o =>
        {
            o.WatchDebounce = TimeSpan.FromMinutes(10);
            o.PollInterval = TimeSpan.FromMinutes(10);
        });
        try
        {
            var edited = File.ReadAllText(server.ConfigPath).Replace("schedule: \"0 3 * * *\"", "schedule: \"0 4 * * *\"", StringComparison.Ordinal);
            await File.WriteAllTextAsync(server.ConfigPath, edited);
            Assert.Equal(1, await server.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'nightly-backup'"));
            using (var sync = await server.Http.PostAsync("/api/sync", null))
                Assert.Equal(1, (await ServerFixture.ReadJsonAsync(sync)).GetProperty("open_conflicts").GetInt32());
            return (server, edited, await server.ScalarAsync<long>("SELECT id FROM sync_conflicts WHERE status = 'open'"));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>A 400 served as problem+json; returns its <c>errors</c>.</summary>
    private static JsonElement AssertProblem(HttpResponseMessage response, string text)
    {
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"expected 400, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(text);
        Assert.Equal(400, problem.RootElement.GetProperty("status").GetInt32());
        return problem.RootElement.GetProperty("errors").Clone();
    }
}
