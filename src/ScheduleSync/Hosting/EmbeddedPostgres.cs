using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace ScheduleSync.Hosting;

/// <summary>
/// A private PostgreSQL cluster under a data folder, run with the server binaries installed on the machine
/// (SPEC §7, "Embedded default"). If the folder is already served by a running postmaster, that server is reused
/// and left running on dispose; a server this instance started is stopped on dispose.
/// </summary>
internal sealed class EmbeddedPostgres : IAsyncDisposable
{
    public const string BinDirectoryVariable = "SCHEDSYNC_PG_BIN";

    // PostgreSQL refuses to run as root, so as root every server binary runs as this user.
    private const string ServiceUser = "postgres";
    private const string Superuser = "postgres";
    private const string LogFileName = "server.log";
    private const int MaxStartAttempts = 5;
    private static readonly TimeSpan StartLockTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    private readonly string? _binDirectory;
    private readonly int _postmasterPid;
    private bool _stopped;

    private EmbeddedPostgres(string dataDirectory, int port, int postmasterPid, string? binDirectory)
    {
        DataDirectory = dataDirectory;
        Port = port;
        _postmasterPid = postmasterPid;
        _binDirectory = binDirectory;
        ConnectionString = BuildConnectionString(port, pooling: true);
    }

    public string DataDirectory { get; }

    public int Port { get; }

    /// <summary>Superuser connection to the <c>postgres</c> database over TCP on 127.0.0.1.</summary>
    public string ConnectionString { get; }

    /// <summary>True when this instance started the server (and so stops it); false when it reused a running one.</summary>
    public bool OwnsServer => _binDirectory is not null;

    private static bool RunsAsRoot => !OperatingSystem.IsWindows() && Environment.IsPrivilegedProcess;

    /// <summary>
    /// Starts (after <c>initdb</c> on first use) or reuses the cluster in <paramref name="dataDirectory"/>.
    /// <paramref name="durable"/> = false turns off fsync and friends: for throwaway test clusters only.
    /// <paramref name="binDirectory"/> overrides where the server binaries are; by default
    /// <c>SCHEDSYNC_PG_BIN</c>, else the highest version under /usr/lib/postgresql, else <c>pg_ctl</c> on PATH.
    /// </summary>
    public static async Task<EmbeddedPostgres> StartAsync(
        string dataDirectory,
        bool durable = true,
        string? binDirectory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        var dataDir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDirectory));

        // Two schedsync processes starting at once on the same folder must not both initdb or both start a
        // postmaster: the loser waits here and then finds the winner's server running.
        using var startLock = await AcquireStartLockAsync(dataDir, cancellationToken);

        if (await TryAttachAsync(dataDir, cancellationToken) is { } running)
            return running;

        var bin = ResolveBinDirectory(binDirectory, dataDir);
        if (!File.Exists(Path.Combine(dataDir, "PG_VERSION")))
            await InitDbAsync(bin, dataDir, durable, cancellationToken);

        return await StartServerAsync(bin, dataDir, durable, cancellationToken);
    }

    /// <summary>Stops the server with <c>pg_ctl stop -m fast</c> if this instance started it; otherwise does nothing.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_binDirectory is null || _stopped)
            return;

        // If our postmaster died and another one now serves the folder, that one is not ours to stop.
        if (ReadPostmasterPidFile(DataDirectory)?.Pid != _postmasterPid || !IsPostmasterAlive(_postmasterPid))
        {
            _stopped = true;
            return;
        }

        var result = await RunServerToolAsync(
            Path.Combine(_binDirectory, "pg_ctl"),
            ["stop", "-D", DataDirectory, "-m", "fast", "-w", "-t", "60"],
            cancellationToken);
        if (result.ExitCode != 0 && IsPostmasterAlive(_postmasterPid))
        {
            throw new EmbeddedPostgresException(
                $"pg_ctl could not stop the PostgreSQL server in {DataDirectory} (exit code {result.ExitCode}).{result.Output}");
        }

        _stopped = true;
        using var connection = new NpgsqlConnection(ConnectionString);
        NpgsqlConnection.ClearPool(connection);
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>
    /// The postmaster PID and port recorded in the data folder's <c>postmaster.pid</c>, or null if there is none.
    /// The file may be stale (left by a killed server): check the PID with <see cref="IsPostmasterAlive"/>.
    /// </summary>
    internal static (int Pid, int Port)? ReadPostmasterPidFile(string dataDirectory)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Path.Combine(dataDirectory, "postmaster.pid"));
        }
        catch (IOException)
        {
            return null;
        }

        // Line 1 is the PID and line 4 the port (src/include/utils/pidfile.h).
        return lines.Length >= 4
            && int.TryParse(lines[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            && int.TryParse(lines[3], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? (pid, port)
            : null;
    }

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

    private static async Task<EmbeddedPostgres?> TryAttachAsync(string dataDir, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (ReadPostmasterPidFile(dataDir) is not { } entry || !IsPostmasterAlive(entry.Pid))
                return null;
            var (pid, port) = entry;

            // The server may still be starting up (or shutting down, in which case its PID goes away).
            if (await CanQueryAsync(port, cancellationToken))
                return new EmbeddedPostgres(dataDir, port, pid, binDirectory: null);

            if (deadline.Elapsed > ReadyTimeout)
            {
                throw new EmbeddedPostgresException(
                    $"A PostgreSQL server (PID {pid}) is running in {dataDir} but does not accept connections " +
                    $"on 127.0.0.1 port {port}. Stop it (pg_ctl stop -D {dataDir}) and try again.");
            }

            await Task.Delay(100, cancellationToken);
        }
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

    private static async Task<EmbeddedPostgres> StartServerAsync(
        string bin, string dataDir, bool durable, CancellationToken cancellationToken)
    {
        var logFile = Path.Combine(dataDir, LogFileName);
        for (var attempt = 1; ; attempt++)
        {
            RemovePidFileOfZombie(dataDir);

            var port = FindFreePort();
            // pg_ctl hands -o to /bin/sh, so '' really is an empty value: no Unix socket, TCP on loopback only.
            var options = string.Create(CultureInfo.InvariantCulture,
                $"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200");
            if (!durable)
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";

            var logStart = File.Exists(logFile) ? new FileInfo(logFile).Length : 0;
            var result = await RunServerToolAsync(
                Path.Combine(bin, "pg_ctl"),
                ["start", "-D", dataDir, "-w", "-t", "60", "-l", logFile, "-o", options],
                cancellationToken);
            var log = ReadLog(logFile, logStart);

            if (result.ExitCode == 0 && ReadPostmasterPidFile(dataDir) is { } started)
            {
                await WaitUntilReadyAsync(port, dataDir, logFile, cancellationToken);
                return new EmbeddedPostgres(dataDir, port, started.Pid, bin);
            }

            // Lost a race for the port, or a server that is going away still holds the folder: try again.
            var transient = log.Contains("could not bind", StringComparison.Ordinal)
                || log.Contains("Address already in use", StringComparison.Ordinal)
                || log.Contains("lock file \"postmaster.pid\" already exists", StringComparison.Ordinal)
                || log.Contains("is still in use", StringComparison.Ordinal);
            if (!transient || attempt == MaxStartAttempts)
            {
                throw new EmbeddedPostgresException(
                    $"pg_ctl could not start PostgreSQL in {dataDir} (exit code {result.ExitCode}).{result.Output}" +
                    $"{Environment.NewLine}Server log ({logFile}):{Environment.NewLine}{log}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
        }
    }

    // A killed postmaster whose parent has not reaped it yet still "exists", so PostgreSQL would take its stale
    // postmaster.pid for a live server. A zombie holds nothing: its lock can go.
    private static void RemovePidFileOfZombie(string dataDir)
    {
        if (ReadPostmasterPidFile(dataDir) is { } entry && GetProcessState(entry.Pid) == ProcessState.Zombie)
            File.Delete(Path.Combine(dataDir, "postmaster.pid"));
    }

    private static async Task WaitUntilReadyAsync(int port, string dataDir, string logFile, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (!await CanQueryAsync(port, cancellationToken))
        {
            if (deadline.Elapsed > ReadyTimeout)
            {
                throw new EmbeddedPostgresException(
                    $"PostgreSQL in {dataDir} started but does not answer on 127.0.0.1 port {port}." +
                    $"{Environment.NewLine}Server log ({logFile}):{Environment.NewLine}{ReadLog(logFile, 0)}");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private static async Task<bool> CanQueryAsync(int port, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new NpgsqlConnection(BuildConnectionString(port, pooling: false));
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(cancellationToken);
            return true;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    private static string BuildConnectionString(int port, bool pooling)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = port,
            Username = Superuser,
            Database = "postgres",
            IncludeErrorDetail = true,
        };
        if (!pooling)
        {
            // Readiness probes: leave no idle connections behind, and fail fast while the server comes up.
            builder.Pooling = false;
            builder.Timeout = 5;
        }

        return builder.ConnectionString;
    }

    private static int FindFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task<FileStream> AcquireStartLockAsync(string dataDir, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(dataDir) ?? dataDir);
        var lockPath = dataDir + ".lock";
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // On Unix, FileShare.None takes an exclusive flock, which other processes respect too.
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException ex) when (File.Exists(lockPath))
            {
                if (waited.Elapsed > StartLockTimeout)
                {
                    throw new EmbeddedPostgresException(
                        $"Another process has been starting PostgreSQL in {dataDir} for over " +
                        $"{StartLockTimeout.TotalSeconds:0} s (it holds {lockPath}).", ex);
                }

                await Task.Delay(100, cancellationToken);
            }
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

/// <summary>The embedded PostgreSQL cluster could not be found, created, started or stopped.</summary>
internal sealed class EmbeddedPostgresException : Exception
{
    public EmbeddedPostgresException()
    {
    }

    public EmbeddedPostgresException(string message)
        : base(message)
    {
    }

    public EmbeddedPostgresException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
