using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// Issue 14 item 6: a config folder kept in git stays clean — the embedded cluster and the serve lock live in the
/// state folder (XDG_STATE_HOME of the test run, see TestStateDirectory), the backup folder ignores itself, and the
/// sidecars beside the file are covered by the .gitignore lines the README documents. Real processes, real git.
/// </summary>
public sealed class GitFriendlyFilesTests
{
    private const string Config = "schedule_config.yml";

    // The lines README.md ("Keeping the config folder in git") tells people to add.
    private const string GitIgnore = "/schedule_config.yml.lock\n/schedule_config.yml.bak\n/.schedule_config.yml.tmp-*\n";

    [Fact]
    public async Task A_config_folder_in_git_shows_nothing_untracked_after_sync_and_after_serve_with_an_api_write()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File(Config), "version: 1\ntasks:\n  backup:\n    schedule: \"0 3 * * *\"\n    command: echo backup\n");
        File.WriteAllText(temp.File(".gitignore"), GitIgnore);
        await GitAsync(temp.Path, "init", "-q");
        await GitAsync(temp.Path, "add", "-A");
        await GitAsync(temp.Path, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "config");

        var sync = await SchedSyncProcess.RunAsync(["sync"], temp.Path, timeout: TimeSpan.FromMinutes(3));
        Assert.True(sync.ExitCode == 0, sync.ToString());
        Assert.Equal("", await GitAsync(temp.Path, "status", "--porcelain", "--untracked-files=all", "--ignored=no"));
        var dataDirectory = StateDirectory.DefaultDataDirectory(temp.File(Config));
        Assert.StartsWith(TestStateDirectory.Path, dataDirectory, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(dataDirectory, "PG_VERSION")), $"no cluster in the state folder {dataDirectory}");

        var url = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{FreePort()}");
        using var serve = SchedSyncProcess.Start(["serve", "--urls", url], temp.Path);
        var output = Drain(serve);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilReadyAsync(http, serve, output);
            using var created = await http.PostAsync("/api/tasks", new StringContent(
                """{"id":"report","schedule":"0 4 * * *","command":"echo report"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            await WaitForAsync(() => File.ReadAllText(temp.File(Config)).Contains("report:", StringComparison.Ordinal), "the write-back to the file");

            // While the server runs (holding its serve lock) and after the write-back (.bak, rotation folder):
            // only the config file itself is changed, and `git add -A` would stage nothing else.
            Assert.Equal(" M schedule_config.yml\n", await GitAsync(temp.Path, "status", "--porcelain", "--untracked-files=all"));
        }
        finally
        {
            await StopAsync(serve);
        }

        Assert.True(Directory.Exists(Path.Combine(temp.Path, ".schedsync-backups")), "the write-back made no rotation backup");
        await GitAsync(temp.Path, "add", "-A");
        Assert.Equal("schedule_config.yml\n", await GitAsync(temp.Path, "diff", "--cached", "--name-only"));
    }

    [Fact]
    public async Task An_older_install_with_its_cluster_in_the_config_folder_keeps_using_it_and_is_told_how_to_move_it()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File(Config), "version: 1\ntasks: {}\n");
        var legacy = Path.Combine(temp.Path, ".schedsync", "pgdata");
        await using (var cluster = await EmbeddedPostgres.StartAsync(legacy, durable: false))
        {
        }

        var status = await SchedSyncProcess.RunAsync(["status"], temp.Path, timeout: TimeSpan.FromMinutes(3));

        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Equal(legacy, StateDirectory.DefaultDataDirectory(temp.File(Config)));
        Assert.Contains($"the database is in {legacy}, inside the config folder", status.Stderr, StringComparison.Ordinal);
        Assert.Contains($"mv {legacy} {StateDirectory.ForConfig(temp.File(Config))}/", status.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(StateDirectory.ForConfig(temp.File(Config))), "a second cluster was made in the state folder");
    }

    private static async Task<string> GitAsync(string directory, params string[] args)
    {
        var info = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = directory };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"git {string.Join(' ', args)}: {await stderr}");
        return await stdout;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

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
        await WaitForAsync(async () =>
        {
            Assert.False(serve.HasExited, "serve exited: " + output.Locked());
            try
            {
                using var ready = await http.GetAsync("/readyz");
                return ready.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "serve to be ready: " + output.Locked());
    }

    private static Task WaitForAsync(Func<bool> condition, string what) => WaitForAsync(() => Task.FromResult(condition()), what);

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(2), $"gave up waiting for {what}");
            await Task.Delay(100);
        }
    }

    private static async Task StopAsync(Process serve)
    {
        if (!serve.HasExited)
        {
            using var kill = Process.Start("kill", ["-INT", serve.Id.ToString(CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await serve.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            serve.Kill(entireProcessTree: true);
            Assert.Fail("serve did not stop within a minute of SIGINT");
        }
    }
}
