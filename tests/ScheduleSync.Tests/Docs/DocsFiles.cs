using System.Diagnostics;
using System.Text;

namespace ScheduleSync.Tests.Docs;

/// <summary>The repository's docs/ and scripts/ folders, and a child process whose output lines are watched.</summary>
internal static class DocsFiles
{
    /// <summary>The repository root: the first folder above the test output that holds ScheduleSync.slnx.</summary>
    public static string Root { get; } = FindRoot();

    public static string Path(string relative) => System.IO.Path.Combine(Root, relative);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ScheduleSync.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no ScheduleSync.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>The built schedsync as the test runs it: the dotnet host and the schedsync.dll next to the tests.</summary>
    public static string SchedSyncCommand =>
        $"{(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")} {System.IO.Path.Combine(AppContext.BaseDirectory, "schedsync.dll")}";

    /// <summary>Runs a program to completion and returns its standard output; fails the test on a non-zero exit.</summary>
    public static async Task<string> RunAsync(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Root };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"{fileName} {string.Join(' ', info.ArgumentList)} exited with {process.ExitCode}: {await stderr}");
        return await stdout;
    }

    /// <summary>Where two texts first differ, for a failure message.</summary>
    public static string FirstDifference(string expected, string actual)
    {
        var a = expected.Split('\n');
        var b = actual.Split('\n');
        for (var i = 0; i < Math.Max(a.Length, b.Length); i++)
        {
            var x = i < a.Length ? a[i] : "(end of text)";
            var y = i < b.Length ? b[i] : "(end of text)";
            if (x != y) return $"line {i + 1}:\n  committed: {x}\n  current:   {y}";
        }
        return "(no difference)";
    }
}

/// <summary>A long-running child process (an example client) whose stdout lines are collected as they arrive.</summary>
internal sealed class WatchedProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly List<string> _lines = [];
    private readonly StringBuilder _stderr = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private WatchedProcess(Process process) => _process = process;

    public static WatchedProcess Start(string fileName, params string[] arguments)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = DocsFiles.Root };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("SCHEDSYNC_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(name);
        var watched = new WatchedProcess(Process.Start(info)!);
        watched._process.OutputDataReceived += (_, e) => watched.Add(e.Data);
        watched._process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (watched._gate) watched._stderr.AppendLine(e.Data);
        };
        watched._process.BeginOutputReadLine();
        watched._process.BeginErrorReadLine();
        return watched;
    }

    private void Add(string? line)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            if (line is not null) _lines.Add(line);
            signal = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    /// <summary>Waits for the first line (already printed or still to come) that matches; fails with the whole output.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, string what)
    {
        var limit = TimeSpan.FromSeconds(30);
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_lines.FirstOrDefault(match) is { } found) return found;
                changed = _changed.Task;
            }
            var left = limit - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero || _process.HasExited && !changed.IsCompleted)
            {
                lock (_gate)
                    Assert.Fail($"the example printed no line with {what}{(_process.HasExited ? $" (it exited with {_process.ExitCode})" : "")}; stdout:\n{string.Join("\n", _lines)}\nstderr:\n{_stderr}");
            }
            await Task.WhenAny(changed, Task.Delay(left > TimeSpan.Zero ? left : TimeSpan.Zero));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
