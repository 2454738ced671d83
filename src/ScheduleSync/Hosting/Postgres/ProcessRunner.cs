using System.Diagnostics;

namespace ScheduleSync.Hosting;

/// <summary>Runs a program to its end and captures its output (for initdb and pg_ctl).</summary>
internal static class ProcessRunner
{
    /// <summary>
    /// Runs <paramref name="fileName"/> with <paramref name="args"/> in "/" and waits for it to exit; cancelling kills
    /// it with its children.
    /// </summary>
    /// <exception cref="EmbeddedPostgresException">The program could not be started.</exception>
    public static async Task<ProcessResult> RunAsync(
        string fileName, IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // initdb fails in a working directory the postgres user cannot enter (e.g. under /root).
            WorkingDirectory = OperatingSystem.IsWindows() ? Path.GetTempPath() : "/",
        };
        foreach (var arg in args)
            startInfo.ArgumentList.Add(arg);

        Process process;
        try
        {
            process = Process.Start(startInfo)
                ?? throw new EmbeddedPostgresException($"Could not run {fileName}.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new EmbeddedPostgresException($"Could not run {fileName}: {ex.Message}", ex);
        }

        using (process)
        {
            // pg_ctl start sends the postmaster's own output to the log file, so these pipes close when pg_ctl exits.
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await process.WaitForExitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            return new ProcessResult(process.ExitCode, await stdout, await stderr);
        }
    }
}

/// <summary>How a program ended: its exit code and what it wrote.</summary>
internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output
    {
        get
        {
            var text = (Stderr.Trim() + Environment.NewLine + Stdout.Trim()).Trim();
            return text.Length == 0 ? "" : Environment.NewLine + text;
        }
    }
}
