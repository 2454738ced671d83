using System.Globalization;
using System.Text;
using Npgsql;

namespace ScheduleSync.Hosting;

// Who can reach the cluster (SPEC §5, "The embedded PostgreSQL cluster is private to its owner").
//
// The server listens on no TCP address at all, only on a Unix socket in the data folder itself. PostgreSQL insists
// that the data folder is mode 0700 and belongs to the OS user that runs the server (the invoking user, or
// `postgres` when schedsync runs as root), so only that user and root can enter it and reach the socket: the
// directory's permissions are the authentication. pg_hba.conf therefore says `local all all trust` and has no
// `host` line at all (a TCP connection, should one ever be possible, matches no line and is refused). We chose this
// over loopback TCP with a generated scram password because there is no secret to generate, store, rotate or leak
// into a log or a process listing, and no port another local user can even try; peer authentication would do as
// well for the owner but refuses root connecting as the `postgres` role, which the CLI run as root must do.
internal sealed partial class EmbeddedPostgres
{
    /// <summary>Only names the socket file (<c>.s.PGSQL.5432</c>): the socket folder is private to this cluster.</summary>
    public const int SocketPort = 5432;

    // PostgreSQL refuses to run as root, so as root every server binary runs as this user.
    private const string ServiceUser = "postgres";
    private const string Superuser = "postgres";
    private const string LogFileName = "server.log";

    // sockaddr_un.sun_path is 108 bytes on Linux, with the terminating NUL.
    private const int MaxSocketPathBytes = 107;

    internal const string PrivateHba = """
        # Written by schedsync on every start: this cluster is private (SPEC §5).
        # It listens only on a Unix socket inside its data folder (mode 0700), which only the OS user that runs
        # the server (and root) can enter; so local connections are trusted and there is no TCP ("host") line.
        # Reach it on purpose with `schedsync db` (connection string) or `schedsync db psql`.
        local   all   all   trust

        """;

    private static bool RunsAsRoot => !OperatingSystem.IsWindows() && Environment.IsPrivilegedProcess;

    /// <summary>The server settings that make it private, given on the command line so they beat any config file.</summary>
    private static string ServerOptions(string dataDir, bool durable)
    {
        // pg_ctl hands -o to /bin/sh: quote for the shell; a directory with a comma or a space is double-quoted for
        // PostgreSQL's list syntax.
        var directory = dataDir.IndexOfAny([',', ' ', '"']) >= 0 ? "\"" + dataDir.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : dataDir;
        var options = string.Create(CultureInfo.InvariantCulture,
            $"-p {SocketPort} -c listen_addresses='' -c {ShellQuote("unix_socket_directories=" + directory)} -c unix_socket_permissions=0700 -c max_connections=200");
        if (!durable)
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
        return options;
    }

    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static void CheckSocketPathLength(string dataDir)
    {
        var socketPath = Path.Combine(dataDir, string.Create(CultureInfo.InvariantCulture, $".s.PGSQL.{SocketPort}"));
        if (Encoding.UTF8.GetByteCount(socketPath) > MaxSocketPathBytes)
        {
            throw new EmbeddedPostgresException(
                $"The data folder {dataDir} is too long a path for the cluster's Unix socket ({socketPath} must be at " +
                $"most {MaxSocketPathBytes} bytes): set SCHEDSYNC_DATA_DIR (or ScheduleSync:DataDirectory) to a shorter path.");
        }
    }

    /// <summary>
    /// Makes an existing cluster folder private: our pg_hba.conf (no trust on TCP; folders made by older versions
    /// trusted 127.0.0.1) and mode 0700 on the folder. True when pg_hba.conf changed (a running server must reload).
    /// </summary>
    private static bool MakePrivate(string dataDir)
    {
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var hba = Path.Combine(dataDir, "pg_hba.conf");
        if (File.Exists(hba) && File.ReadAllText(hba) == PrivateHba)
            return false;
        // Rewritten in place, so the file keeps its owner (the server's user) when we run as root.
        File.WriteAllText(hba, PrivateHba);
        return true;
    }

    /// <summary>The connection string for the cluster in <paramref name="dataDirectory"/> (its owner's, no password).</summary>
    public static string OwnerConnectionString(string dataDirectory) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDirectory)),
            Port = SocketPort,
            Username = Superuser,
            Database = "postgres",
        }.ConnectionString;

    /// <summary>Whether a live postmaster serves <paramref name="dataDirectory"/> now.</summary>
    public static bool IsRunning(string dataDirectory) =>
        ReadPostmasterPidFile(Path.GetFullPath(dataDirectory)) is { } entry && IsPostmasterAlive(entry.Pid);

    internal static string BuildConnectionString(string socketDirectory, bool pooling)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = socketDirectory,
            Port = SocketPort,
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

    /// <summary>
    /// What the data folder's <c>postmaster.pid</c> says, or null if there is none. The file may be stale (left by a
    /// killed server): check the PID with <see cref="IsPostmasterAlive"/>.
    /// </summary>
    internal static PostmasterPidFile? ReadPostmasterPidFile(string dataDirectory)
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

        // src/include/utils/pidfile.h: 1 PID, 4 port, 5 first socket directory, 6 first listen address, 8 status.
        string Line(int number) => lines.Length >= number ? lines[number - 1].Trim() : "";
        return lines.Length >= 4
            && int.TryParse(lines[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            && int.TryParse(lines[3], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? new PostmasterPidFile(pid, port, Line(5), Line(6), Line(8))
            : null;
    }
}

/// <summary>The lines of <c>postmaster.pid</c> that say which server runs and where it listens.</summary>
internal readonly record struct PostmasterPidFile(int Pid, int Port, string SocketDirectory, string ListenAddress, string Status)
{
    public bool IsReady => Status == "ready";

    /// <summary>True when the server listens on no TCP address and only on the private socket in the data folder.</summary>
    public bool ServesPrivately(string dataDir) =>
        ListenAddress.Length == 0 && Port == EmbeddedPostgres.SocketPort
        && string.Equals(Path.TrimEndingDirectorySeparator(SocketDirectory), dataDir, StringComparison.Ordinal);
}
