using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// Peak memory of a cold import in a process of its own: <c>schedsync sync</c> on an N-task file into an empty
/// database, its peak RSS read from <c>/usr/bin/time -v</c> ("Maximum resident set size") and cross-checked by
/// polling <c>VmHWM</c> in <c>/proc/&lt;pid&gt;/status</c> while it runs.
/// </summary>
internal sealed class RssBench(BenchEnvironment env, Report report, int n, int runs)
{
    public async Task RunAsync()
    {
        var schedsync = Path.Combine(AppContext.BaseDirectory, "schedsync.dll");
        if (!File.Exists(schedsync)) throw new FileNotFoundException("schedsync.dll is not next to the benchmark", schedsync);
        var folder = env.NewFolder(string.Create(CultureInfo.InvariantCulture, $"rss-{n}"));
        var path = Path.Combine(folder, "schedule_config.yml");
        await File.WriteAllTextAsync(path, TaskFiles.Generate(n), new UTF8Encoding(false));
        var useTime = File.Exists("/usr/bin/time");

        var rss = new List<double>();
        var polled = new List<double>();
        var seconds = new List<double>();
        for (var r = 0; r < runs; r++)
        {
            var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"rss_{n}"), migrate: false);
            var start = new ProcessStartInfo(useTime ? "/usr/bin/time" : "dotnet")
            {
                WorkingDirectory = folder,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (useTime) foreach (var a in new[] { "-v", "dotnet" }) start.ArgumentList.Add(a);
            foreach (var a in new[] { schedsync, "sync", "--config", path, "--database", connectionString, "--json" }) start.ArgumentList.Add(a);

            var clock = Stopwatch.StartNew();
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            double hwm = 0;
            while (!process.HasExited)
            {
                // With /usr/bin/time in between, the sync process is its child.
                foreach (var pid in ProcessTree(process.Id)) hwm = Math.Max(hwm, ReadHwmMiB(pid));
                await Task.Delay(20);
            }
            await process.WaitForExitAsync();
            seconds.Add(clock.Elapsed.TotalSeconds);
            var output = await stdout;
            var errors = await stderr;
            if (process.ExitCode != 0 || !output.Contains("\"completed\"", StringComparison.Ordinal))
                throw new InvalidOperationException($"schedsync sync of {n:N0} tasks failed (exit {process.ExitCode}): {output} {errors}");
            var max = errors.Split('\n').FirstOrDefault(l => l.Contains("Maximum resident set size", StringComparison.Ordinal));
            if (max is not null)
                rss.Add(double.Parse(max[(max.LastIndexOf(':') + 1)..].Trim(), CultureInfo.InvariantCulture) / 1024);
            polled.Add(hwm);
            await env.DropDatabaseAsync(connectionString);
        }
        var samples = rss.Count == runs ? rss : polled;
        report.Add(Stats.Row("memory", n, "peak RSS of `schedsync sync` importing N tasks into an empty database (child process)", samples, unit: "MiB") with
        {
            Issue15 = n >= 50_000 ? $"{n:N0} tasks ({new FileInfo(path).Length / 1024.0 / 1024.0:0.0} MiB), peak memory of a cold import (whole process)" : null,
            Target = n >= 50_000 ? "completes, ≤ 1 GiB" : null,
            Met = n >= 50_000 ? Stats.Median(samples) <= 1024 : null,
            Note = (rss.Count == runs ? "from /usr/bin/time -v; " : "")
                + $"polled VmHWM median {Stats.Median(polled):0} MiB; wall time of the whole process (start, migrations, sync, exit) median {Stats.Median(seconds):0.0} s",
        });
    }

    private static IEnumerable<int> ProcessTree(int root)
    {
        yield return root;
        string children;
        try
        {
            children = File.ReadAllText($"/proc/{root}/task/{root}/children");
        }
        catch (IOException)
        {
            yield break;
        }
        foreach (var child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (int.TryParse(child, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                yield return pid;
    }

    private static double ReadHwmMiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? 0 : double.Parse(line[6..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}
