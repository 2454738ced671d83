using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Npgsql;
using ScheduleSync.Files;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Hosting;

/// <summary>
/// The embedded cluster as the shipped executable runs it (SPEC §5 private cluster, §7 embedded default, §8 one
/// cluster shared by every process on a data folder): real <c>schedsync</c> processes, each test with its own cluster
/// in a temp folder, and <c>psql</c> run as <c>nobody</c> playing the other local user.
/// </summary>
public sealed class EmbeddedClusterProcessTests
{
    private const string EmptyConfig = "version: 1\ntasks: {}\n";

    [Fact]
    public async Task Three_concurrent_status_commands_on_a_fresh_data_folder_all_succeed_and_the_last_stops_the_cluster()
    {
        using var temp = NewConfigFolder();

        var runs = Enumerable.Range(0, 3).Select(_ => SchedSyncProcess.RunAsync(["status"], temp.Path, timeout: TimeSpan.FromMinutes(3))).ToList();
        var outcomes = await Task.WhenAll(runs);

        Assert.All(outcomes, o => Assert.True(o.ExitCode == 0, o.ToString()));
        Assert.All(outcomes, o => Assert.Contains("database: 0 task(s)", o.Stdout, StringComparison.Ordinal));
        Assert.False(EmbeddedPostgres.IsRunning(DataDirectory(temp)), "the last status should have stopped the cluster");
    }

    [Fact]
    public async Task Another_local_user_cannot_connect_while_the_owner_reaches_it_with_db_psql()
    {
        using var temp = NewConfigFolder();
        var dataDir = DataDirectory(temp);
        await using var cluster = await EmbeddedPostgres.StartAsync(dataDir, durable: false);

        var info = new DirectoryInfo(dataDir);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, info.UnixFileMode);
        Assert.Equal("local   all   all   trust", Assert.Single(
            File.ReadAllLines(Path.Combine(dataDir, "pg_hba.conf")), l => l.Length > 0 && !l.StartsWith('#')));
        Assert.Equal("", await ScalarAsync(cluster.ConnectionString, "SELECT current_setting('listen_addresses')"));
        if (Environment.IsPrivilegedProcess)
        {
            var socket = await PsqlAsNobodyAsync(dataDir, EmbeddedPostgres.SocketPort);
            Assert.NotEqual(0, socket.ExitCode);
            Assert.Contains("Permission denied", socket.Stderr, StringComparison.Ordinal);
            var tcp = await PsqlAsNobodyAsync("127.0.0.1", EmbeddedPostgres.SocketPort);
            Assert.NotEqual(0, tcp.ExitCode);
        }

        var owner = await SchedSyncProcess.RunAsync(["db", "psql", "-At", "-c", "select 6 * 7"], temp.Path);
        Assert.True(owner.ExitCode == 0, owner.ToString());
        Assert.Equal("42", owner.Stdout.Trim());

        var printed = await SchedSyncProcess.RunAsync(["db", "--json"], temp.Path);
        using var json = JsonDocument.Parse(printed.Stdout);
        Assert.Equal(cluster.ConnectionString.Split(';')[0], json.RootElement.GetProperty("connection_string").GetString()!.Split(';')[0]);
        Assert.True(json.RootElement.GetProperty("running").GetBoolean());
    }

    [Fact]
    public async Task Db_prints_a_configured_connection_string_without_its_password()
    {
        using var temp = NewConfigFolder();

        var printed = await SchedSyncProcess.RunAsync(
            ["db", "--database", "Host=db.example;Port=6543;Username=ops;Password=s3cret-value;Database=tasks"], temp.Path);

        Assert.True(printed.ExitCode == 0, printed.ToString());
        Assert.DoesNotContain("s3cret-value", printed.Stdout + printed.Stderr, StringComparison.Ordinal);
        var builder = new NpgsqlConnectionStringBuilder(printed.Stdout.Trim());
        Assert.Equal(("db.example", 6543, "ops", "tasks", null), (builder.Host, builder.Port, builder.Username, builder.Database, builder.Password));
    }

    [Fact]
    public async Task A_data_folder_set_up_the_old_way_with_trust_on_tcp_is_made_private_on_start()
    {
        using var temp = NewConfigFolder();
        var dataDir = DataDirectory(temp);
        await (await EmbeddedPostgres.StartAsync(dataDir, durable: false)).DisposeAsync();
        // What older versions left: trust for every TCP connection from 127.0.0.1, a TCP listener, no socket.
        var port = FreePort();
        File.WriteAllText(Path.Combine(dataDir, "pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n");
        File.AppendAllText(Path.Combine(dataDir, "postgresql.conf"), string.Create(CultureInfo.InvariantCulture,
            $"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\nfsync = off\n"));
        await PgCtlAsync("start", "-D", dataDir, "-w", "-l", Path.Combine(dataDir, "server.log"));
        if (Environment.IsPrivilegedProcess)
        {
            var before = await PsqlAsNobodyAsync("127.0.0.1", port);
            Assert.True(before.ExitCode == 0, "the old setup should let anyone in: " + before);
        }

        var status = await SchedSyncProcess.RunAsync(["status"], temp.Path, timeout: TimeSpan.FromMinutes(2));
        Assert.True(status.ExitCode == 0, status.ToString());

        Assert.Equal(EmbeddedPostgres.PrivateHba, File.ReadAllText(Path.Combine(dataDir, "pg_hba.conf")));
        await using var cluster = await EmbeddedPostgres.StartAsync(dataDir, durable: false);
        Assert.Equal("", await ScalarAsync(cluster.ConnectionString, "SELECT current_setting('listen_addresses')"));
        Assert.True(EmbeddedPostgres.ReadPostmasterPidFile(dataDir)!.Value.ServesPrivately(dataDir));
        if (Environment.IsPrivilegedProcess)
        {
            var tcp = await PsqlAsNobodyAsync("127.0.0.1", port);
            Assert.NotEqual(0, tcp.ExitCode);
            var socket = await PsqlAsNobodyAsync(dataDir, EmbeddedPostgres.SocketPort);
            Assert.NotEqual(0, socket.ExitCode);
        }
    }

    [Fact]
    public async Task Kill_9_of_the_postmaster_under_serve_gives_503_then_the_server_restarts_it_and_loses_no_acknowledged_write()
    {
        using var temp = NewConfigFolder();
        var dataDir = DataDirectory(temp);
        var url = LoopbackUrl();
        using var serve = SchedSyncProcess.Start(["serve", "--urls", url], temp.Path);
        var output = Drain(serve);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilReadyAsync(http, serve, output);
            var acknowledged = new List<string>();
            for (var i = 0; i < 5; i++)
            {
                var id = $"before-{i}";
                using var created = await http.PostAsync("/api/tasks", TaskJson(id));
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                acknowledged.Add(id);
            }

            // Holding the start lock keeps the server from restarting the cluster until we have seen the outage.
            var startLock = FileLock.Acquire(dataDir + ".lock", TimeSpan.FromSeconds(30));
            try
            {
                var postmaster = EmbeddedPostgres.ReadPostmasterPidFile(dataDir)!.Value.Pid;
                using (var process = Process.GetProcessById(postmaster))
                    process.Kill();
                await WaitUntilAsync(() => Task.FromResult(!EmbeddedPostgres.IsPostmasterAlive(postmaster)), "the postmaster to die");

                using var list = await http.GetAsync("/api/tasks");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, list.StatusCode);
                Assert.True(list.Headers.RetryAfter?.Delta > TimeSpan.Zero, "503 without Retry-After");
                Assert.Equal("application/problem+json", list.Content.Headers.ContentType?.MediaType);
                using var write = await http.PostAsync("/api/tasks", TaskJson("during-outage"));
                Assert.Equal(HttpStatusCode.ServiceUnavailable, write.StatusCode);
            }
            finally
            {
                startLock.Dispose();
            }

            await WaitUntilAsync(async () => (await http.GetAsync("/api/tasks")).StatusCode == HttpStatusCode.OK, "the API to work again");
            using (var after = await http.PostAsync("/api/tasks", TaskJson("after")))
                Assert.Equal(HttpStatusCode.Created, after.StatusCode);
            acknowledged.Add("after");
            var ids = await TaskIdsAsync(http);
            Assert.All(acknowledged, id => Assert.Contains(id, ids));
            Assert.DoesNotContain("during-outage", ids);
        }
        finally
        {
            await StopAsync(serve, output);
        }

        Assert.False(EmbeddedPostgres.IsRunning(dataDir), "serve was the last user of the cluster it restarted: it should have stopped it");
    }

    [Fact]
    public async Task A_second_serve_on_the_same_config_is_refused_naming_the_first_while_one_shot_commands_still_work()
    {
        using var temp = NewConfigFolder();
        var url = LoopbackUrl();
        using var first = SchedSyncProcess.Start(["serve", "--urls", url], temp.Path);
        var output = Drain(first);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilReadyAsync(http, first, output);

            var second = await SchedSyncProcess.RunAsync(["serve", "--urls", LoopbackUrl()], temp.Path);
            Assert.Equal(1, second.ExitCode);
            Assert.Contains($"pid {first.Id.ToString(CultureInfo.InvariantCulture)}", second.Stderr, StringComparison.Ordinal);
            Assert.Contains(url, second.Stderr, StringComparison.Ordinal);

            var status = await SchedSyncProcess.RunAsync(["status"], temp.Path);
            Assert.True(status.ExitCode == 0, status.ToString());
            var sync = await SchedSyncProcess.RunAsync(["sync"], temp.Path);
            Assert.True(sync.ExitCode == 0, sync.ToString());
            using var stillServing = await http.GetAsync("/api/tasks");
            Assert.Equal(HttpStatusCode.OK, stillServing.StatusCode);
        }
        finally
        {
            await StopAsync(first, output);
        }
    }

    [Fact]
    public async Task A_serve_that_fails_to_start_stops_the_cluster_it_started()
    {
        using var temp = NewConfigFolder();

        // An address of no interface here (TEST-NET-1): only Kestrel finds out, after the cluster started. (A port in
        // use is found before anything starts: CliErrorTests.Serve_on_a_port_in_use_says_so_before_starting_anything.)
        var serve = await SchedSyncProcess.RunAsync(["serve", "--urls", "http://192.0.2.1:5080"], temp.Path,
            new Dictionary<string, string?> { ["SCHEDSYNC_TOKEN"] = "a-token-long-enough-for-any-rule-0123456789" }, TimeSpan.FromMinutes(2));

        Assert.True(serve.ExitCode == 1, serve.ToString());
        Assert.Contains("cannot listen on http://192.0.2.1:5080", serve.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", serve.Stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(DataDirectory(temp), "PG_VERSION")), "serve should have got as far as starting the cluster");
        Assert.False(EmbeddedPostgres.IsRunning(DataDirectory(temp)), "the cluster started by the failed serve is still running");
    }

    [Fact]
    public async Task A_serve_that_adopted_a_running_cluster_stops_it_on_exit_when_it_is_the_last_user()
    {
        using var temp = NewConfigFolder();
        var dataDir = DataDirectory(temp);
        var starter = await EmbeddedPostgres.StartAsync(dataDir);
        var url = LoopbackUrl();
        using var serve = SchedSyncProcess.Start(["serve", "--urls", url], temp.Path);
        var output = Drain(serve);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilReadyAsync(http, serve, output);

            // The process that started the cluster is done with it; the server still uses it.
            await starter.DisposeAsync();
            Assert.True(EmbeddedPostgres.IsRunning(dataDir), "the cluster stopped under a server that uses it");
            using var created = await http.PostAsync("/api/tasks", TaskJson("adopted"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }
        finally
        {
            await starter.DisposeAsync();
            await StopAsync(serve, output);
        }

        Assert.False(EmbeddedPostgres.IsRunning(dataDir), "the last user (the server) left the adopted cluster running");
    }

    [Fact]
    public async Task A_down_external_database_answers_503_with_retry_after_and_then_recovers()
    {
        using var temp = NewConfigFolder();
        var cluster = await EmbeddedPostgres.StartAsync(temp.File("external"), durable: false);
        var configuration = TestConfiguration.For(temp.File("schedule_config.yml"), cluster.ConnectionString, temp.File("unused"), new ServerOptions { Urls = "http://127.0.0.1:0" });
        await using var app = await ServerHost.BuildServerAsync(configuration);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
            using (var ok = await http.GetAsync("/api/tasks"))
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

            await cluster.StopAsync();
            using (var down = await http.GetAsync("/api/tasks"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
                Assert.NotNull(down.Headers.RetryAfter);
                Assert.Contains("Database unavailable", await down.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            cluster = await EmbeddedPostgres.StartAsync(temp.File("external"), durable: false);
            await WaitUntilAsync(async () => (await http.GetAsync("/api/tasks")).StatusCode == HttpStatusCode.OK, "the API to work again");
        }
        finally
        {
            await app.StopAsync();
            await cluster.DisposeAsync();
        }
    }

    private static TempDirectory NewConfigFolder()
    {
        var temp = new TempDirectory();
        File.WriteAllText(temp.File("schedule_config.yml"), EmptyConfig);
        return temp;
    }

    private static string DataDirectory(TempDirectory temp) => StateDirectory.DefaultDataDirectory(temp.File("schedule_config.yml"));

    private static StringContent TaskJson(string id) => new(
        JsonSerializer.Serialize(new { id, schedule = "0 3 * * *", command = "echo " + id }), Encoding.UTF8, "application/json");

    private static async Task<HashSet<string>> TaskIdsAsync(HttpClient http)
    {
        using var document = JsonDocument.Parse(await http.GetStringAsync("/api/tasks"));
        return [.. document.RootElement.EnumerateArray().Select(t => t.GetProperty("id").GetString()!)];
    }

    private static async Task<string> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>psql as the unprivileged <c>nobody</c>, connecting as the <c>postgres</c> superuser (the attack of issue 9).</summary>
    private static Task<ProcessOutcome> PsqlAsNobodyAsync(string host, int port) =>
        RunAsync("runuser", "-u", "nobody", "--", EmbeddedPostgres.FindPsql(null), "-X", "-w", "-h", host,
            "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-d", "postgres", "-c", "select 1");

    private static async Task PgCtlAsync(params string[] args)
    {
        var pgCtl = Path.Combine(Path.GetDirectoryName(EmbeddedPostgres.FindPsql(null))!, "pg_ctl");
        var outcome = Environment.IsPrivilegedProcess
            ? await RunAsync("runuser", ["-u", "postgres", "--", pgCtl, .. args])
            : await RunAsync(pgCtl, args);
        Assert.True(outcome.ExitCode == 0, outcome.ToString());
    }

    private static async Task<ProcessOutcome> RunAsync(string fileName, params string[] args)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return new ProcessOutcome(process.ExitCode, await stdout, await stderr, TimedOut: false);
    }

    private static string LoopbackUrl() => string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{FreePort()}");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Reads a long-running child's output as it comes, so it never blocks on a full pipe.</summary>
    private static StringBuilder Drain(Process process)
    {
        var output = new StringBuilder();
        process.StandardInput.Close();
        process.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return output;
    }

    private static async Task WaitUntilReadyAsync(HttpClient http, Process serve, StringBuilder output)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(serve.HasExited, "serve exited: " + output.Locked());
            try
            {
                using var ready = await http.GetAsync("/readyz");
                if (ready.StatusCode == HttpStatusCode.OK)
                    return;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(2), "serve not ready after 2 minutes: " + output.Locked());
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// Stops a serve process the way systemd does (SIGTERM), and waits for it to finish shutting down. Not SIGINT: a
    /// test run started in the background by a shell without job control hands its children SIGINT ignored.
    /// </summary>
    private static async Task StopAsync(Process serve, StringBuilder output)
    {
        if (!serve.HasExited)
            await RunAsync("kill", "-TERM", serve.Id.ToString(CultureInfo.InvariantCulture));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await serve.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            serve.Kill(entireProcessTree: true);
            Assert.Fail("serve did not stop within a minute of SIGTERM: " + output.Locked());
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await condition())
                    return;
            }
            catch (HttpRequestException)
            {
                // The server answers again in a moment.
            }

            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(2), $"gave up waiting for {what}");
            await Task.Delay(100);
        }
    }
}
