using System.Diagnostics;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>How a <c>schedsync</c> child process ended.</summary>
internal sealed record ProcessOutcome(int ExitCode, string Stdout, string Stderr, bool TimedOut)
{
    /// <summary>128 + SIGKILL: what .NET reports for a child that was killed with signal 9.</summary>
    public const int KilledExitCode = 137;

    public override string ToString() => $"exit {ExitCode}{(TimedOut ? " (timed out)" : "")}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>
/// Runs the real, built <c>schedsync</c> (<c>dotnet schedsync.dll …</c> from the test output folder) as a child
/// process: for crash tests (it kills itself), concurrency tests and the CLI's exit codes and output.
/// </summary>
internal static class SchedSyncProcess
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private static string DllPath => Path.Combine(AppContext.BaseDirectory, "schedsync.dll");

    // The SDK tells every process it starts where its dotnet host is; outside `dotnet test`, PATH has to do.
    private static string DotnetHost => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    /// <summary>
    /// Starts <c>schedsync args…</c> in <paramref name="workingDirectory"/>. Inherited <c>SCHEDSYNC_*</c> variables are
    /// removed, so only <paramref name="environment"/> (a null value removes a variable) and the arguments configure it.
    /// </summary>
    public static Process Start(IEnumerable<string> args, string workingDirectory, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var startInfo = new ProcessStartInfo(DotnetHost)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        startInfo.ArgumentList.Add(DllPath);
        foreach (var arg in args)
            startInfo.ArgumentList.Add(arg);
        foreach (var name in startInfo.Environment.Keys.Where(k => k.StartsWith("SCHEDSYNC_", StringComparison.Ordinal)).ToList())
            startInfo.Environment.Remove(name);
        startInfo.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        startInfo.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) startInfo.Environment.Remove(name);
            else startInfo.Environment[name] = value;
        }
        return Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {DotnetHost} {DllPath}");
    }

    /// <summary>Waits for a started process, reading both streams; kills it (and its children) after the timeout.</summary>
    public static async Task<ProcessOutcome> WaitAsync(Process process, TimeSpan? timeout = null)
    {
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        return new ProcessOutcome(process.ExitCode, await stdout, await stderr, timedOut);
    }

    public static async Task<ProcessOutcome> RunAsync(IEnumerable<string> args, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        using var process = Start(args, workingDirectory, environment);
        return await WaitAsync(process, timeout);
    }
}
