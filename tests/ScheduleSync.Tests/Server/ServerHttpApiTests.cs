using System.Globalization;
using System.Net;
using System.Text.Json;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §5 over real HTTP: every refused request is a problem response that names what is wrong and stores nothing
/// (rows, audit, file bytes), the bearer token guards /api and /ws, and the read endpoints answer.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerHttpApiTests(ITestOutputHelper output)
{
    private const string ValidTask = """{ "id": "nightly-backup", "schedule": "0 4 * * *", "command": "/usr/local/bin/backup.sh" }""";

    public static TheoryData<string, string, string, string?, string?, int, string?> RefusedRequests => new()
    {
        // case, method, path, body, If-Match, status, errors key
        { "stale If-Match", "PUT", "/api/tasks/nightly-backup", ValidTask, "\"7\"", 412, null },
        { "stale If-Match on delete", "DELETE", "/api/tasks/nightly-backup", null, "\"7\"", 412, null },
        { "existing id", "POST", "/api/tasks", ValidTask, null, 409, null },
        { "unknown task", "GET", "/api/tasks/no-such-task", null, null, 404, null },
        { "unknown task replaced", "PUT", "/api/tasks/no-such-task", """{ "schedule": "@daily", "command": "x" }""", null, 404, null },
        { "unknown task deleted", "DELETE", "/api/tasks/no-such-task", null, null, 404, null },
        { "unknown task history", "GET", "/api/tasks/no-such-task/history", null, null, 404, null },
        { "unknown task next runs", "GET", "/api/tasks/no-such-task/next-runs?count=3", null, null, 404, null },
        { "unknown conflict", "POST", "/api/sync/conflicts/999/resolve", """{ "choice": "keep_db" }""", null, 404, null },
        { "malformed JSON", "POST", "/api/tasks", """{ "id": "half", "schedule": """, null, 400, null },
        { "invalid cron", "POST", "/api/tasks", """{ "id": "bad-cron", "schedule": "61 * * * *", "command": "x" }""", null, 400, "schedule" },
        { "unknown field", "POST", "/api/tasks", """{ "id": "typo", "shedule": "@daily", "command": "x" }""", null, 400, "shedule" },
        { "unknown field on replace", "PUT", "/api/tasks/nightly-backup", """{ "schedule": "@daily", "command": "x", "retries": 3 }""", null, 400, "retries" },
        { "id not matching the URL", "PUT", "/api/tasks/nightly-backup", """{ "id": "other", "schedule": "@daily", "command": "x" }""", null, 400, "id" },
        { "bad If-Match", "PUT", "/api/tasks/nightly-backup", ValidTask, "version-one", 400, null },
        { "invalid resolution", "POST", "/api/sync/conflicts/1/resolve", """{ "choice": "keep_both" }""", null, 400, "choice" },
        { "shown versions not an object", "POST", "/api/sync/conflicts/1/resolve", """{ "choice": "keep_db", "shown": 5 }""", null, 400, "shown" },
        { "shown versions with another key", "POST", "/api/sync/conflicts/1/resolve", """{ "choice": "keep_db", "shown": { "yaml": null, "base": null } }""", null, 400, "shown" },
        { "oversized body", "POST", "/api/tasks", "{ \"id\": \"big\", \"schedule\": \"@daily\", \"command\": \"" + new string('x', 4000) + "\" }", null, 413, null },
    };

    [Theory]
    [MemberData(nameof(RefusedRequests))]
    public async Task Refused_request_is_a_problem_response_and_stores_nothing(string name, string method, string path, string? body, string? ifMatch, int status, string? errorKey)
    {
        await using var server = await ServerFixture.StartAsync("api_refused", options: o => o.MaxRequestBodyBytes = 1024);
        var tasksBefore = await server.DatabaseHashesAsync();
        var versionsBefore = await server.ScalarAsync<long>("SELECT sum(version) FROM scheduled_tasks");
        var auditBefore = await server.ScalarAsync<long>("SELECT count(*) FROM task_audit");
        var fileBefore = server.FileBytes();

        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null) request.Content = ServerFixture.RawJson(body);
        if (ifMatch is not null) request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{name}: {method} {path} -> {(int)response.StatusCode} {text}");

        Assert.Equal(status, (int)response.StatusCode);
        using var problem = JsonDocument.Parse(text);
        Assert.Equal(status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.RootElement.GetProperty("title").GetString()));
        if (errorKey is not null)
        {
            var errors = problem.RootElement.GetProperty("errors");
            Assert.True(errors.TryGetProperty(errorKey, out var messages), $"no errors[\"{errorKey}\"] in {text}");
            Assert.NotEqual(0, messages.GetArrayLength());
        }
        if (status == 412) Assert.Equal("\"1\"", response.Headers.ETag?.Tag);

        Assert.Equal(tasksBefore, await server.DatabaseHashesAsync());
        Assert.Equal(versionsBefore, await server.ScalarAsync<long>("SELECT sum(version) FROM scheduled_tasks"));
        Assert.Equal(auditBefore, await server.ScalarAsync<long>("SELECT count(*) FROM task_audit"));
        Assert.Equal(fileBefore, server.FileBytes());
    }

    /// <summary>
    /// RFC 9457 problems are served as <c>application/problem+json</c>. The 404 and 409 answers are built as
    /// <c>TypedResults.NotFound(new ProblemDetails …)</c> / <c>TypedResults.Conflict(…)</c>, which serialise the object
    /// as plain <c>application/json</c>; the 400/412/413/401 answers (TypedResults.Problem / ValidationProblem) are right.
    /// </summary>
    [Theory]
    [InlineData("GET", "/api/tasks/no-such-task", null)]
    [InlineData("PUT", "/api/tasks/no-such-task", """{ "schedule": "@daily", "command": "x" }""")]
    [InlineData("DELETE", "/api/tasks/no-such-task", null)]
    [InlineData("GET", "/api/tasks/no-such-task/history", null)]
    [InlineData("POST", "/api/sync/conflicts/999/resolve", """{ "choice": "keep_db" }""")]
    [InlineData("POST", "/api/tasks", ValidTask)]
    [InlineData("PUT", "/api/tasks/nightly-backup", """{ "schedule": "61 * * * *", "command": "x" }""")]
    public async Task Every_error_answer_is_served_as_problem_json(string method, string path, string? body)
    {
        await using var server = await ServerFixture.StartAsync("api_problem_type");
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null) request.Content = ServerFixture.RawJson(body);

        using var response = await server.Http.SendAsync(request);

        Assert.False(response.IsSuccessStatusCode);
        Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json",
            $"{method} {path} -> {(int)response.StatusCode} served as {response.Content.Headers.ContentType}");
    }

    [Fact]
    public async Task With_a_token_every_api_and_ws_request_needs_it()
    {
        const string token = "s3cret-token-for-tests";
        // With a token the server may listen on every address.
        await using var server = await ServerFixture.StartAsync("api_token", options: o =>
        {
            o.Token = token;
            o.Urls = "http://0.0.0.0:0";
        });
        using var anonymous = server.NewClient();
        using var wrong = server.NewClient("not-the-token");
        var fileBefore = server.FileBytes();

        using (var response = await anonymous.GetAsync("/api/tasks"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Bearer", Assert.Single(response.Headers.WwwAuthenticate).Scheme);
            Assert.Equal(401, (await ServerFixture.ReadJsonAsync(response)).GetProperty("status").GetInt32());
        }
        using (var response = await wrong.GetAsync("/api/tasks"))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using (var response = await anonymous.PostAsync("/api/tasks", ServerFixture.Json(new { id = "sneaky", schedule = "@daily", command = "x" })))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using (var response = await anonymous.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks WHERE id = 'sneaky'"));
        Assert.Equal(fileBefore, server.FileBytes());

        Assert.Equal(HttpStatusCode.Unauthorized, await EventClient.RefusedStatusAsync(server.WebSocketUri(), token: null));
        Assert.Equal(HttpStatusCode.Unauthorized, await EventClient.RefusedStatusAsync(server.WebSocketUri(), "not-the-token"));
        Assert.Equal(0, server.Hub.SubscriberCount);

        // Health stays open for probes.
        using (var response = await anonymous.GetAsync("/healthz"))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        await using var events = await server.ConnectEventsAsync(token: token);
        using (var response = await server.Http.GetAsync("/api/tasks"))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using (var response = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "allowed", schedule = "@daily", command = "x" })))
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        await events.WaitForAsync("task_changed", e => e.String("id") == "allowed");
    }

    [Theory]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://*:0")]
    [InlineData("http://+:0")]
    [InlineData("http://[::]:0")]
    [InlineData("http://127.0.0.1:0;http://0.0.0.0:0")]
    public async Task Without_a_token_listening_beyond_loopback_is_refused(string urls)
    {
        var configuration = TestConfiguration.For("/nonexistent/schedule_config.yml", "Host=127.0.0.1;Database=unused", "/nonexistent/pgdata", new ServerOptions { Urls = urls });

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ServerHost.BuildServerAsync(configuration));

        Assert.Contains("token", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_endpoints_answer_health_openapi_next_runs_history_and_filters()
    {
        await using var server = await ServerFixture.StartAsync("api_reads");

        using (var response = await server.Http.GetAsync("/healthz"))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using (var response = await server.Http.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
        }
        using (var response = await server.Http.GetAsync("/openapi.json"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var paths = (await ServerFixture.ReadJsonAsync(response)).GetProperty("paths");
            foreach (var path in (string[])["/api/tasks", "/api/tasks/{id}", "/api/tasks/{id}/next-runs", "/api/sync", "/api/sync/conflicts/{id}/resolve"])
                Assert.True(paths.TryGetProperty(path, out _), $"openapi.json has no path {path}");
        }

        using (var created = await server.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "weekday-report", schedule = "30 9 * * 1-5", timezone = "Europe/Berlin", command = "report" })))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using (var response = await server.Http.GetAsync("/api/tasks/weekday-report/next-runs?count=3"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await ServerFixture.ReadJsonAsync(response);
            var runs = body.GetProperty("runs").EnumerateArray().Select(r => DateTimeOffset.Parse(r.GetString()!, CultureInfo.InvariantCulture)).ToList();
            output.WriteLine("next runs: " + string.Join(", ", runs.Select(r => r.ToString("O", CultureInfo.InvariantCulture))));
            Assert.Equal(3, runs.Count);
            Assert.True(runs[0] < runs[1] && runs[1] < runs[2], "the runs are not increasing");
            Assert.True(runs[0] > DateTimeOffset.UtcNow, "the first run is not in the future");
            var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
            Assert.All(runs, r =>
            {
                Assert.Equal(berlin.GetUtcOffset(r), r.Offset);
                Assert.Equal((9, 30), (r.Hour, r.Minute));
                Assert.InRange((int)r.DayOfWeek, 1, 5);
            });
        }
        using (var response = await server.Http.GetAsync("/api/tasks/weekday-report/next-runs?count=0"))
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);

        string etag;
        using (var response = await server.Http.GetAsync("/api/tasks/weekday-report"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            etag = response.Headers.ETag!.Tag;
            Assert.Equal("\"1\"", etag);
        }
        using (var replace = new HttpRequestMessage(HttpMethod.Put, "/api/tasks/weekday-report"))
        {
            replace.Content = ServerFixture.Json(new { schedule = "30 9 * * 1-5", timezone = "Europe/Berlin", command = "report --full" });
            replace.Headers.TryAddWithoutValidation("If-Match", etag);
            using var response = await server.Http.SendAsync(replace);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("\"2\"", response.Headers.ETag?.Tag);
            Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
        }

        using (var response = await server.Http.GetAsync("/api/tasks/weekday-report/history"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var entries = (await ServerFixture.ReadJsonAsync(response)).EnumerateArray().ToList();
            output.WriteLine("history: " + string.Join(" | ", entries.Select(e => e.GetRawText())));
            var create = Assert.Single(entries, e => e.GetProperty("action").GetString() == "create");
            Assert.Equal("api", create.GetProperty("source").GetString());
            Assert.Single(entries, e => e.GetProperty("action").GetString() == "update");
        }

        using (var response = await server.Http.GetAsync("/api/tasks?tag=ops"))
            Assert.Equal<string>(["nightly-backup"], (await ServerFixture.ReadJsonAsync(response)).EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToArray());
        using (var response = await server.Http.GetAsync("/api/tasks?enabled=false"))
            Assert.Equal<string>(["cache-warmup"], (await ServerFixture.ReadJsonAsync(response)).EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToArray());

        using (var response = await server.Http.GetAsync("/api/sync/status"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var status = await ServerFixture.ReadJsonAsync(response);
            Assert.True(status.GetProperty("file_valid").GetBoolean());
            Assert.Equal(3, status.GetProperty("database_tasks").GetInt32());
        }
        using (var response = await server.Http.GetAsync("/api/sync/plan"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(0, (await ServerFixture.ReadJsonAsync(response)).GetProperty("actions").GetArrayLength());
        }

        Assert.Equal(server.FileHashes(), await server.DatabaseHashesAsync());
    }
}
