using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// <c>schedsync plan</c> and <c>schedsync status</c> as whole processes (start, configuration, migrations check, the
/// command, exit) at N tasks, as a user runs them: on the file as the last sync left it, and after a one-task edit.
/// The floor is the same process doing nothing (<c>schedsync --version</c>).
/// </summary>
internal sealed class CliBench(BenchEnvironment env, Report report, int n, int runs)
{
    private string _schedsync = "";

    public async Task RunAsync()
    {
        _schedsync = Path.Combine(AppContext.BaseDirectory, "schedsync.dll");
        if (!File.Exists(_schedsync)) throw new FileNotFoundException("schedsync.dll is not next to the benchmark", _schedsync);
        var folder = env.NewFolder(string.Create(CultureInfo.InvariantCulture, $"cli-{n}"));
        var path = Path.Combine(folder, "schedule_config.yml");
        await File.WriteAllTextAsync(path, TaskFiles.Generate(n), new UTF8Encoding(false));
        var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"cli_{n}"), migrate: false);
        string[] common = ["--config", path, "--database", connectionString];

        await RunAsync(folder, ["sync", .. common, "--json"], expectExit: 0);
        await env.SettleAsync();
        var startup = new List<double>();
        for (var r = -1; r < runs; r++)
        {
            var ms = await RunAsync(folder, ["--version"], expectExit: 0);
            if (r >= 0) startup.Add(ms);
        }
        var floor = Stats.Median(startup);
        report.Add(Stats.Row("CLI processes", n, "`schedsync --version` as a whole process (the process floor)", startup));

        foreach (var (state, edit) in new[] { ("unchanged since the last sync", false), ("one task changed in the file", true) })
        {
            if (edit) TaskFiles.ReplaceByRename(path, TaskFiles.WithCommand(await File.ReadAllTextAsync(path), n / 2, 7));
            foreach (var verb in new[] { "plan", "status" })
            {
                await env.SettleAsync();
                var samples = new List<double>();
                for (var r = -1; r < runs; r++)
                {
                    var ms = await RunAsync(folder, [verb, .. common], expectExit: 0);
                    if (r >= 0) samples.Add(ms);
                }
                report.Add(Stats.Row("CLI processes", n, $"`schedsync {verb}` as a whole process, file {state}", samples) with
                {
                    Issue15 = n == 50_000 ? $"50,000 tasks, `schedsync {verb}` as a whole process ({state})" : null,
                    Floor = "`schedsync --version`",
                    FloorValue = floor,
                    Target = n == 50_000 ? "≤ 1.5 s" : null,
                    Met = n == 50_000 ? Stats.Median(samples) <= 1500 : null,
                });
            }
        }
        await env.DropDatabaseAsync(connectionString);
    }

    private async Task<double> RunAsync(string folder, string[] arguments, int expectExit)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(_schedsync);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var ms = clock.Elapsed.TotalMilliseconds;
        if (process.ExitCode != expectExit)
            throw new InvalidOperationException($"schedsync {string.Join(' ', arguments.Take(1))} at {n:N0} tasks: exit {process.ExitCode}: {await stdout} {await stderr}");
        return ms;
    }
}
