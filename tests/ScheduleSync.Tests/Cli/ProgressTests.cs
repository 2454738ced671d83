using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// Issue 14 item 4: a long run shows its phases on stderr when that is a terminal (a pseudo-terminal made by
/// <c>script</c>), nothing when it is a pipe; a server logs the phases of a large start-up sync. Real processes.
/// </summary>
public sealed class ProgressTests
{
    private const int TaskCount = 20_000;

    [Fact]
    public async Task A_sync_of_20000_tasks_shows_its_phases_on_a_terminal()
    {
        using var temp = new TempDirectory();
        var config = WriteTasks(temp, TaskCount);
        var database = await TestPostgres.CreateDatabaseAsync("progress_tty");

        var outcome = await RunOnTerminalAsync(temp.Path, "sync", "--config", config, "--database", database);

        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        // script merges the terminal's output into its stdout: the progress lines, then the result on a cleared line.
        Assert.Contains("\rschedsync: parsing schedule_config.yml (", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\rschedsync: validating: 5,000/20,000 tasks", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\rschedsync: validating: 15,000/20,000 tasks", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\rschedsync: planning 20,000 tasks", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\rschedsync: writing 20,000 rows", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\rschedsync: committing", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("\r\u001b[Ksync: run 1", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("20000 inserted", outcome.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sync_of_20000_tasks_prints_no_progress_into_a_pipe()
    {
        using var temp = new TempDirectory();
        var config = WriteTasks(temp, TaskCount);
        var database = await TestPostgres.CreateDatabaseAsync("progress_pipe");

        var outcome = await SchedSyncProcess.RunAsync(["sync", "--config", config, "--database", database], temp.Path, timeout: TimeSpan.FromMinutes(3));

        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        Assert.Contains("20000 inserted", outcome.Stdout, StringComparison.Ordinal);
        Assert.Equal("", outcome.Stderr);
        Assert.DoesNotContain('\r', outcome.Stdout);
    }

    [Fact]
    public async Task A_server_logs_the_phases_of_a_large_start_up_sync()
    {
        using var temp = new TempDirectory();
        var config = WriteTasks(temp, TaskCount);
        var database = await TestPostgres.CreateDatabaseAsync("progress_serve");
        var url = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{FreePort()}");

        using var serve = SchedSyncProcess.Start(["serve", "--config", config, "--database", database, "--urls", url], temp.Path);
        var output = new StringBuilder();
        serve.StandardInput.Close();
        serve.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        serve.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        serve.BeginOutputReadLine();
        serve.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            var waited = Stopwatch.StartNew();
            while (!await IsReadyAsync(http))
            {
                Assert.False(serve.HasExited, "serve exited: " + output.Locked());
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "serve not ready: " + output.Locked());
                await Task.Delay(100);
            }
        }
        finally
        {
            if (!serve.HasExited)
            {
                using var kill = Process.Start("kill", ["-INT", serve.Id.ToString(CultureInfo.InvariantCulture)]);
                await kill.WaitForExitAsync();
            }

            await serve.WaitForExitAsync();
        }

        var log = output.Locked();
        Assert.Contains("sync progress: validating 20,000 tasks", log, StringComparison.Ordinal);
        Assert.Contains("sync progress: planning 20,000 tasks", log, StringComparison.Ordinal);
        Assert.Contains("sync progress: writing 20,000 rows", log, StringComparison.Ordinal);
        // A line per phase, not per few thousand tasks.
        Assert.DoesNotContain("5,000/20,000", log, StringComparison.Ordinal);
    }

    private static string WriteTasks(TempDirectory temp, int count)
    {
        var text = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < count; i++)
            text.Append(CultureInfo.InvariantCulture, $"  job-{i:D6}:\n    schedule: \"0 3 * * *\"\n    command: echo {i}\n");
        var path = temp.File("schedule_config.yml");
        File.WriteAllText(path, text.ToString());
        return path;
    }

    /// <summary>schedsync on a pseudo-terminal: <c>script -qefc "dotnet schedsync.dll …" /dev/null</c>.</summary>
    private static async Task<ProcessOutcome> RunOnTerminalAsync(string workingDirectory, params string[] args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        string[] command = [dotnet, Path.Combine(AppContext.BaseDirectory, "schedsync.dll"), .. args];
        var info = new ProcessStartInfo("script")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var arg in (string[])["-qefc", string.Join(' ', command.Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'")), "/dev/null"])
            info.ArgumentList.Add(arg);
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("SCHEDSYNC_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(name);
        using var process = Process.Start(info)!;
        return await SchedSyncProcess.WaitAsync(process, TimeSpan.FromMinutes(3));
    }

    private static async Task<bool> IsReadyAsync(HttpClient http)
    {
        try
        {
            using var ready = await http.GetAsync("/readyz");
            return ready.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
