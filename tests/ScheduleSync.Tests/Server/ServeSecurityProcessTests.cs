using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Npgsql;
using ScheduleSync.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// The loopback rule and the token as a user meets them: the real <c>schedsync serve</c> in its own process, configured
/// each way an address can be configured, on a real database. Traffic goes to 127.0.0.1 only.
/// </summary>
public sealed class ServeSecurityProcessTests(ITestOutputHelper output)
{
    private const string Token = "proc-token-9f3b27c1e5";

    /// <summary>How a listen address reaches the server: an argument, the environment, or ./appsettings.json.</summary>
    public static TheoryData<string> Ways => ["--urls", "SCHEDSYNC_URLS", "ASPNETCORE_URLS", "Kestrel__Endpoints__Http__Url", "appsettings.json Kestrel:Endpoints", "appsettings.json ScheduleSync:Server:Urls"];

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task Without_a_token_serve_exits_1_for_an_address_beyond_loopback(string way)
    {
        using var folder = new TempDirectory();
        var port = FreePort();
        var (args, environment) = await ConfigureAsync(way, folder, $"http://0.0.0.0:{port}", await TestPostgres.CreateDatabaseAsync("serve_open"));

        var outcome = await SchedSyncProcess.RunAsync(args, folder.Path, environment);
        output.WriteLine(outcome.ToString());

        Assert.Equal(1, outcome.ExitCode);
        Assert.Contains($"refusing to", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains($"0.0.0.0:{port}", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("token", outcome.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task With_a_token_serve_listens_beyond_loopback_for_each_way(string way)
    {
        using var folder = new TempDirectory();
        var port = FreePort();
        var (args, environment) = await ConfigureAsync(way, folder, $"http://0.0.0.0:{port}", await TestPostgres.CreateDatabaseAsync("serve_token"));
        environment["SCHEDSYNC_TOKEN"] = Token;

        await using var server = await ServeProcess.StartAsync(args, folder.Path, port, environment);
        using var anonymous = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using (var response = await anonymous.GetAsync("/api/tasks"))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/tasks");
        request.Headers.TryAddWithoutValidation("Authorization", "bearer " + Token);
        using (var response = await anonymous.SendAsync(request))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (stdout, stderr) = await server.StopAsync();
        output.WriteLine(stdout + stderr);
        // The start-up line names the address really bound, not the configured default.
        Assert.Contains($"listening on http://0.0.0.0:{port}", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_reads_the_token_from_a_file_and_says_clearly_when_it_cannot()
    {
        using var folder = new TempDirectory();
        var database = await TestPostgres.CreateDatabaseAsync("serve_token_file");
        await File.WriteAllTextAsync(folder.File("token"), Token + "\n");

        var port = FreePort();
        await using (var server = await ServeProcess.StartAsync(
            ["serve", "--database", database, "--urls", $"http://0.0.0.0:{port}", "--token-file", folder.File("token")], folder.Path, port))
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + Token);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/tasks")).StatusCode);
            await server.StopAsync();
        }

        port = FreePort();
        await using (var server = await ServeProcess.StartAsync(
            ["serve", "--database", database, "--urls", $"http://0.0.0.0:{port}"], folder.Path, port, new Dictionary<string, string?> { ["SCHEDSYNC_TOKEN_FILE"] = folder.File("token") }))
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + Token);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/tasks")).StatusCode);
            await server.StopAsync();
        }

        await File.WriteAllTextAsync(folder.File("empty"), "\n");
        foreach (var (file, says) in ((string, string)[])[(folder.File("empty"), "is empty"), (folder.File("missing"), "cannot read the token file")])
        {
            var outcome = await SchedSyncProcess.RunAsync(["serve", "--database", database, "--urls", $"http://127.0.0.1:{FreePort()}", "--token-file", file], folder.Path);
            output.WriteLine(outcome.ToString());
            Assert.Equal(1, outcome.ExitCode);
            Assert.Contains(says, outcome.Stderr, StringComparison.Ordinal);
            Assert.Contains(file, outcome.Stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The token and the database password, used the ways a client uses them (header, wrong header, the WebSocket
    /// query parameter), appear nowhere: not in the log even at Trace level, not in /api/sync/status, not in --help.
    /// </summary>
    [Fact]
    public async Task The_token_and_the_database_password_never_show_in_logs_status_or_help()
    {
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), ServerFixture.DefaultYaml);
        var database = new NpgsqlConnectionStringBuilder(await TestPostgres.CreateDatabaseAsync("serve_secrets"));
        // A cluster that trusts loopback ignores a password; one that checks it has given us the real one.
        database.Password ??= "db-password-4e1c7a";
        var password = database.Password;
        var port = FreePort();
        var environment = new Dictionary<string, string?>
        {
            ["SCHEDSYNC_TOKEN"] = Token,
            ["SCHEDSYNC_DATABASE"] = database.ConnectionString,
            ["Logging__LogLevel__Default"] = "Trace",
            // Provider-specific rules outrank the server's own filters: everything ASP.NET Core says, at Trace.
            ["Logging__Console__LogLevel__Microsoft.AspNetCore"] = "Trace",
            ["Logging__Console__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Trace",
        };

        string status;
        await using (var server = await ServeProcess.StartAsync(["serve", "--urls", $"http://127.0.0.1:{port}"], folder.Path, port, environment))
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + Token);
            status = await client.GetStringAsync("/api/sync/status");
            using (var response = await client.PostAsync("/api/tasks", ServerFixture.RawJson("""{ "id": "broken", "schedule": """)))
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using (var response = await client.PostAsync("/api/sync", null))
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var wrong = new HttpClient { BaseAddress = client.BaseAddress };
            wrong.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + Token + "-but-wrong");
            Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync("/api/tasks")).StatusCode);
            using (var socket = new ClientWebSocket())
            {
                await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws?since=0&access_token={Token}"), CancellationToken.None);
                Assert.Equal(WebSocketState.Open, socket.State);
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
            }

            var (stdout, stderr) = await server.StopAsync();
            var log = stdout + stderr;
            output.WriteLine(log);
            Assert.Contains("/ws", log, StringComparison.Ordinal); // the Trace log did see the WebSocket request
            Assert.Contains($"Database={database.Database}", log, StringComparison.Ordinal); // the connection string is logged…
            Assert.DoesNotContain(password, log, StringComparison.Ordinal); // …without its password
            Assert.DoesNotContain(Token, log, StringComparison.Ordinal);
        }
        Assert.Contains("file_checksum", status, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, status, StringComparison.Ordinal);
        Assert.DoesNotContain(password, status, StringComparison.Ordinal);

        foreach (var args in (string[][])[["--help"], ["serve", "--help"]])
        {
            var help = await SchedSyncProcess.RunAsync(args, folder.Path, environment);
            Assert.Equal(0, help.ExitCode);
            Assert.Contains(args.Length == 2 ? "--token-file" : "serve", help.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(Token, help.Stdout + help.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(password, help.Stdout + help.Stderr, StringComparison.Ordinal);
        }
        var refused = await SchedSyncProcess.RunAsync(["serve", "--urls", $"http://127.0.0.1:{FreePort()}", "--token-file", folder.File("missing")], folder.Path, environment);
        Assert.Equal(1, refused.ExitCode);
        Assert.DoesNotContain(Token, refused.Stdout + refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(password, refused.Stdout + refused.Stderr, StringComparison.Ordinal);
    }

    /// <summary>The arguments and environment that make <c>serve</c> listen on <paramref name="url"/> the given way.</summary>
    private static async Task<(List<string> Args, Dictionary<string, string?> Environment)> ConfigureAsync(string way, TempDirectory folder, string url, string database)
    {
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), ServerFixture.DefaultYaml);
        var args = new List<string> { "serve", "--database", database };
        var environment = new Dictionary<string, string?> { ["ASPNETCORE_URLS"] = null, ["DOTNET_URLS"] = null };
        switch (way)
        {
            case "--urls": args.AddRange(["--urls", url]); break;
            case "SCHEDSYNC_URLS" or "ASPNETCORE_URLS" or "Kestrel__Endpoints__Http__Url": environment[way] = url; break;
            case "appsettings.json Kestrel:Endpoints":
                await File.WriteAllTextAsync(folder.File("appsettings.json"), $$"""{ "Kestrel": { "Endpoints": { "Http": { "Url": "{{url}}" } } } }""");
                break;
            case "appsettings.json ScheduleSync:Server:Urls":
                await File.WriteAllTextAsync(folder.File("appsettings.json"), $$"""{ "ScheduleSync": { "Server": { "Urls": "{{url}}" } } }""");
                break;
            default: throw new ArgumentOutOfRangeException(nameof(way), way, null);
        }
        return (args, environment);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
