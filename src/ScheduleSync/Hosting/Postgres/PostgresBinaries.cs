using System.Diagnostics;

namespace ScheduleSync.Hosting;

// Finding and running the PostgreSQL server binaries (as the `postgres` user when we run as root).
internal sealed partial class EmbeddedPostgres
{
    /// <summary>Whether <paramref name="pid"/> is a running (not zombie) PostgreSQL server process.</summary>
    internal static bool IsPostmasterAlive(int pid) => GetProcessState(pid) == ProcessState.RunningPostgres;

    private enum ProcessState
    {
        Gone,
        Zombie,
        RunningPostgres,
        RunningOther,
    }

    private static ProcessState GetProcessState(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return process.HasExited ? ProcessState.Gone : ProcessState.RunningPostgres;
            }
            catch (ArgumentException)
            {
                return ProcessState.Gone;
            }
        }

        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return ProcessState.Gone;
        }

        // "pid (comm) state ...": comm may itself contain spaces or parentheses.
        var open = stat.IndexOf('(', StringComparison.Ordinal);
        var close = stat.LastIndexOf(')');
        if (open < 0 || close < open || close + 2 >= stat.Length)
            return ProcessState.Gone;
        var comm = stat[(open + 1)..close];
        return stat[close + 2] switch
        {
            'Z' or 'X' => ProcessState.Zombie,
            _ when comm is "postgres" or "postmaster" => ProcessState.RunningPostgres,
            _ => ProcessState.RunningOther,
        };
    }

    /// <summary>psql from the server binaries' folder (matching the cluster's version), else psql on PATH.</summary>
    public static string FindPsql(string? dataDirectory)
    {
        try
        {
            var bin = ResolveBinDirectory(null, dataDirectory ?? "");
            var psql = Path.Combine(bin, ExecutableName("psql"));
            if (File.Exists(psql))
                return psql;
        }
        catch (EmbeddedPostgresException)
        {
            // No server binaries: a client-only machine may still have psql on PATH.
        }

        return "psql";
    }

    private static string ResolveBinDirectory(string? explicitDirectory, string dataDir)
    {
        var configured = string.IsNullOrEmpty(explicitDirectory)
            ? Environment.GetEnvironmentVariable(BinDirectoryVariable)
            : explicitDirectory;
        if (!string.IsNullOrEmpty(configured))
        {
            return HasServerBinaries(configured)
                ? Path.GetFullPath(configured)
                : throw MissingBinaries($" in {configured}");
        }

        return FindDebianBinDirectory(dataDir) ?? FindOnPath() ?? throw MissingBinaries("");
    }

    private static EmbeddedPostgresException MissingBinaries(string where) => new(
        $"The PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found{where}. Install them " +
        $"(Debian/Ubuntu: apt-get install postgresql), or set {BinDirectoryVariable} to the folder that holds " +
        "them, or configure a database connection string to use an existing server.");

    private static string? FindDebianBinDirectory(string dataDir)
    {
        const string root = "/usr/lib/postgresql";
        if (!Directory.Exists(root))
            return null;

        // An existing cluster can only be run by its own major version, so prefer that one if it is installed.
        var versionFile = Path.Combine(dataDir, "PG_VERSION");
        if (File.Exists(versionFile))
        {
            var matching = Path.Combine(root, File.ReadAllText(versionFile).Trim(), "bin");
            if (HasServerBinaries(matching))
                return matching;
        }

        return Directory.EnumerateDirectories(root)
            .Select(dir => (Dir: Path.Combine(dir, "bin"), Version: ParseMajorVersion(Path.GetFileName(dir))))
            .Where(candidate => candidate.Version is not null && HasServerBinaries(candidate.Dir))
            .OrderByDescending(candidate => candidate.Version)
            .Select(candidate => candidate.Dir)
            .FirstOrDefault();
    }

    private static Version? ParseMajorVersion(string name) =>
        Version.TryParse(name.Contains('.', StringComparison.Ordinal) ? name : name + ".0", out var version)
            ? version
            : null;

    private static string? FindOnPath() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(HasServerBinaries);

    private static bool HasServerBinaries(string dir) =>
        new[] { "initdb", "pg_ctl", "postgres" }.All(name => File.Exists(Path.Combine(dir, ExecutableName(name))));

    private static string ExecutableName(string name) => OperatingSystem.IsWindows() ? name + ".exe" : name;

    private static async Task InitDbAsync(string bin, string dataDir, bool durable, CancellationToken cancellationToken)
    {
        if (Directory.Exists(dataDir) && Directory.EnumerateFileSystemEntries(dataDir).Any())
        {
            throw new EmbeddedPostgresException(
                $"{dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); use an empty or new folder.");
        }

        Directory.CreateDirectory(dataDir);
        if (RunsAsRoot)
        {
            var chown = await RunAsync("chown", [ServiceUser, dataDir], cancellationToken);
            if (chown.ExitCode != 0)
            {
                throw new EmbeddedPostgresException(
                    $"Could not give {dataDir} to the '{ServiceUser}' user, which runs PostgreSQL when schedsync " +
                    $"runs as root.{chown.Output}");
            }
        }

        List<string> args = ["-D", dataDir, "-A", "trust", "-U", Superuser, "-E", "UTF8", "--no-locale"];
        if (!durable)
            args.Add("--no-sync");
        var result = await RunServerToolAsync(Path.Combine(bin, "initdb"), args, cancellationToken);
        if (result.ExitCode != 0)
        {
            var hint = RunsAsRoot ? $" (as root, initdb runs as '{ServiceUser}', which must be able to reach {dataDir})" : "";
            throw new EmbeddedPostgresException(
                $"initdb could not create a PostgreSQL cluster in {dataDir}{hint} (exit code {result.ExitCode}).{result.Output}");
        }
    }

    private static string ReadLog(string logFile, long from)
    {
        const int maxChars = 4000;
        try
        {
            using var stream = new FileStream(logFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Min(from, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var text = reader.ReadToEnd();
            return text.Length <= maxChars ? text : "…" + text[^maxChars..];
        }
        catch (IOException)
        {
            return "(no server log)";
        }
    }

    private static Task<ProcessResult> RunServerToolAsync(
        string executable, IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        RunsAsRoot
            ? RunAsync("runuser", ["-u", ServiceUser, "--", executable, .. args], cancellationToken)
            : RunAsync(executable, args, cancellationToken);

    private static async Task<ProcessResult> RunAsync(
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

    private sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
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
}
