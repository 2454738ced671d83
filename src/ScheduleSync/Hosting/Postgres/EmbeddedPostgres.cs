using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace ScheduleSync.Hosting;

/// <summary>
/// A private PostgreSQL cluster under a data folder, run with the server binaries installed on the machine
/// (SPEC §7, "Embedded default"), reached only through a Unix socket inside the data folder (SPEC §5; see
/// EmbeddedPostgres.Access.cs). Every process that uses the cluster — a server, a CLI command, several at once —
/// is one of its users: the first one starts it (after <c>initdb</c> on first use), the others attach, and whoever
/// disposes last stops it (SPEC §8), whichever of them started it.
/// </summary>
/// <remarks>
/// Two lock files next to the data folder make this safe between processes, both real <c>flock(2)</c> locks (a
/// FileStream lock is no lock at all in the shipped executable, which sets <c>System.IO.DisableFileLocking</c>):
/// <c>&lt;data&gt;.lock</c>, held exclusively while a process starts, checks or stops the server, and
/// <c>&lt;data&gt;.users</c>, on which every user holds a shared lock for as long as it uses the cluster. A user
/// that is done drops its shared lock under the start lock and tries for an exclusive one: if it gets it, nobody
/// else uses the cluster (a newcomer would need the start lock to attach), so it stops the server.
/// </remarks>
internal sealed partial class EmbeddedPostgres : IAsyncDisposable
{
    public const string BinDirectoryVariable = PostgresBinaries.BinDirectoryVariable;

    private const int MaxStartAttempts = 5;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    private readonly bool _durable;
    private readonly string? _binDirectory;
    private readonly SharedFileLock _user;
    private bool _stopped;

    private EmbeddedPostgres(string dataDirectory, bool durable, string? binDirectory, SharedFileLock user, bool startedServer)
    {
        DataDirectory = dataDirectory;
        _durable = durable;
        _binDirectory = binDirectory;
        _user = user;
        OwnsServer = startedServer;
        ConnectionString = BuildConnectionString(dataDirectory, pooling: true);
    }

    public string DataDirectory { get; }

    /// <summary>The folder holding the server's Unix socket (the data folder itself: mode 0700).</summary>
    public string SocketDirectory => DataDirectory;

    /// <summary>Names the socket file (<c>.s.PGSQL.&lt;port&gt;</c>); the cluster listens on no TCP port.</summary>
    public int Port => SocketPort;

    /// <summary>Superuser connection to the <c>postgres</c> database through the Unix socket (no password).</summary>
    public string ConnectionString { get; }

    /// <summary>True when this instance started the server; false when it attached to a running one.</summary>
    public bool OwnsServer { get; private set; }

    /// <summary>
    /// Starts (after <c>initdb</c> on first use) or attaches to the cluster in <paramref name="dataDirectory"/>, and
    /// registers this process as one of its users until <see cref="StopAsync"/>. Folders made by older versions
    /// (trust on 127.0.0.1, a TCP listener) are made private first, and a server still running that way is restarted.
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
        CheckSocketPathLength(dataDir);

        // Two schedsync processes starting at once on the same folder must not both initdb or both start a
        // postmaster: the loser waits here and then finds the winner's server running.
        using var startLock = await PostgresStartLock.AcquireAsync(dataDir, cancellationToken);
        var user = SharedFileLock.Acquire(PostgresStartLock.UsersLockPath(dataDir));
        try
        {
            var started = await EnsureRunningLockedAsync(dataDir, durable, binDirectory, cancellationToken);
            return new EmbeddedPostgres(dataDir, durable, binDirectory, user, started);
        }
        catch
        {
            // A failed start must not leave behind a server nobody uses (e.g. started, then never answered).
            user.Dispose();
            try
            {
                await StopIfUnusedLockedAsync(dataDir, binDirectory);
            }
            catch (EmbeddedPostgresException)
            {
                // The start failure is the one worth reporting.
            }

            throw;
        }
    }

    /// <summary>Whether a live postmaster serves the data folder right now (a cheap check: no connection).</summary>
    public bool IsServerRunning => ReadPostmasterPidFile(DataDirectory) is { } entry && IsPostmasterAlive(entry.Pid);

    /// <summary>
    /// Starts the server again if it has died (killed, crashed) while this process still uses it; true when this
    /// call started it. Connections to the dead server stay broken: clear the pools afterwards.
    /// </summary>
    public async Task<bool> RestartIfDeadAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stopped, this);
        if (IsServerRunning)
            return false;
        using var startLock = await PostgresStartLock.AcquireAsync(DataDirectory, cancellationToken);
        var started = await EnsureRunningLockedAsync(DataDirectory, _durable, _binDirectory, cancellationToken);
        OwnsServer |= started;
        return started;
    }

    /// <summary>
    /// Ends this process's use of the cluster; stops the server with <c>pg_ctl stop -m fast</c> when no other process
    /// uses it any more (whoever started it).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_stopped)
            return;

        using (await PostgresStartLock.AcquireAsync(DataDirectory, cancellationToken))
        {
            _stopped = true;
            _user.Dispose();
            await StopIfUnusedLockedAsync(DataDirectory, _binDirectory);
        }

        using var connection = new NpgsqlConnection(ConnectionString);
        NpgsqlConnection.ClearPool(connection);
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>Whether <paramref name="pid"/> is a running (not zombie) PostgreSQL server process.</summary>
    internal static bool IsPostmasterAlive(int pid) => ProcStat.IsPostmasterAlive(pid);

    /// <summary>psql from the server binaries' folder (matching the cluster's version), else psql on PATH.</summary>
    public static string FindPsql(string? dataDirectory) => PostgresBinaries.FindPsql(dataDirectory);

    /// <summary>Called with the start lock held: stops the server if no process holds a shared lock on the users file.</summary>
    private static async Task StopIfUnusedLockedAsync(string dataDir, string? binDirectory)
    {
        using var last = SharedFileLock.TryAcquireExclusive(PostgresStartLock.UsersLockPath(dataDir));
        if (last is null || ReadPostmasterPidFile(dataDir) is not { } entry || !IsPostmasterAlive(entry.Pid))
            return;
        await StopServerAsync(PostgresBinaries.ResolveBinDirectory(binDirectory, dataDir), dataDir, entry.Pid, CancellationToken.None);
    }

    private static async Task StopServerAsync(string bin, string dataDir, int pid, CancellationToken cancellationToken)
    {
        var result = await RunServerToolAsync(
            Path.Combine(bin, "pg_ctl"),
            ["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "60"],
            cancellationToken);
        if (result.ExitCode != 0 && IsPostmasterAlive(pid))
        {
            throw new EmbeddedPostgresException(
                $"pg_ctl could not stop the PostgreSQL server in {dataDir} (exit code {result.ExitCode}).{result.Output}");
        }
    }

    /// <summary>
    /// Called with the start lock held: makes the folder private, then attaches to the server that serves it
    /// privately, or (re)starts one. True when this call started the server.
    /// </summary>
    private static async Task<bool> EnsureRunningLockedAsync(
        string dataDir, bool durable, string? binDirectory, CancellationToken cancellationToken)
    {
        string? bin = null;
        string Bin() => bin ??= PostgresBinaries.ResolveBinDirectory(binDirectory, dataDir);

        var accessChanged = File.Exists(Path.Combine(dataDir, "PG_VERSION")) && MakePrivate(dataDir);
        var waited = Stopwatch.StartNew();
        while (ReadPostmasterPidFile(dataDir) is { } entry && IsPostmasterAlive(entry.Pid))
        {
            if (entry.IsReady)
            {
                if (!entry.ServesPrivately(dataDir))
                {
                    // Started by an older schedsync (TCP on 127.0.0.1) or by hand: it must not go on listening there.
                    await StopServerAsync(Bin(), dataDir, entry.Pid, cancellationToken);
                    continue;
                }

                if (accessChanged)
                {
                    await RunServerToolAsync(Path.Combine(Bin(), "pg_ctl"), ["reload", "-D", dataDir], cancellationToken);
                    accessChanged = false;
                }

                if (await CanQueryAsync(dataDir, cancellationToken))
                    return false;
            }

            // Still starting up, or shutting down (then its PID goes away and we start a new one).
            if (waited.Elapsed > ReadyTimeout)
            {
                throw new EmbeddedPostgresException(
                    $"A PostgreSQL server (PID {entry.Pid}) is running in {dataDir} but does not accept connections " +
                    $"on its socket in {dataDir}. Stop it (pg_ctl stop -D {dataDir}) and try again.");
            }

            await Task.Delay(100, cancellationToken);
        }

        if (!File.Exists(Path.Combine(dataDir, "PG_VERSION")))
        {
            await InitDbAsync(Bin(), dataDir, durable, cancellationToken);
            MakePrivate(dataDir);
        }

        await StartServerAsync(Bin(), dataDir, durable, cancellationToken);
        return true;
    }

    private static async Task StartServerAsync(string bin, string dataDir, bool durable, CancellationToken cancellationToken)
    {
        var logFile = Path.Combine(dataDir, LogFileName);
        for (var attempt = 1; ; attempt++)
        {
            RemovePidFileOfZombie(dataDir);

            var logStart = File.Exists(logFile) ? new FileInfo(logFile).Length : 0;
            var result = await RunServerToolAsync(
                Path.Combine(bin, "pg_ctl"),
                ["start", "-D", dataDir, "-w", "-t", "60", "-l", logFile, "-o", ServerOptions(dataDir, durable)],
                cancellationToken);
            var log = ReadLog(logFile, logStart);

            if (result.ExitCode == 0 && ReadPostmasterPidFile(dataDir) is not null)
            {
                await WaitUntilReadyAsync(dataDir, logFile, cancellationToken);
                return;
            }

            // A server that is going away still holds the folder or its socket: try again.
            var transient = log.Contains("lock file \"postmaster.pid\" already exists", StringComparison.Ordinal)
                || log.Contains("is still in use", StringComparison.Ordinal)
                || log.Contains("could not bind", StringComparison.Ordinal);
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
    // postmaster.pid (and the socket's lock file, which names the same PID) for a live server. A zombie holds
    // nothing: its locks can go.
    private static void RemovePidFileOfZombie(string dataDir)
    {
        foreach (var name in new[] { "postmaster.pid", string.Create(CultureInfo.InvariantCulture, $".s.PGSQL.{SocketPort}.lock") })
        {
            var path = Path.Combine(dataDir, name);
            try
            {
                var first = File.ReadLines(path).FirstOrDefault();
                if (int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ProcStat.GetProcessState(pid) == ProcStat.ProcessState.Zombie)
                    File.Delete(path);
            }
            catch (IOException)
            {
                // None there, or just removed: nothing stale to clear.
            }
        }
    }

    private static async Task WaitUntilReadyAsync(string dataDir, string logFile, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (!await CanQueryAsync(dataDir, cancellationToken))
        {
            if (deadline.Elapsed > ReadyTimeout)
            {
                throw new EmbeddedPostgresException(
                    $"PostgreSQL in {dataDir} started but does not answer on its socket." +
                    $"{Environment.NewLine}Server log ({logFile}):{Environment.NewLine}{ReadLog(logFile, 0)}");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private static async Task<bool> CanQueryAsync(string dataDir, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new NpgsqlConnection(BuildConnectionString(dataDir, pooling: false));
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
            var chown = await ProcessRunner.RunAsync("chown", [ServiceUser, dataDir], cancellationToken);
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
            ? ProcessRunner.RunAsync("runuser", ["-u", ServiceUser, "--", executable, .. args], cancellationToken)
            : ProcessRunner.RunAsync(executable, args, cancellationToken);

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
