using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Npgsql;
using ScheduleSync.Hosting;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>
/// One PostgreSQL server per test run, and a brand-new database per caller, so tests never see each other's data.
/// The server is the embedded cluster (started on first use, stopped and deleted when the test process exits), or
/// the existing server named by <c>SCHEDSYNC_TEST_DATABASE</c>.
/// </summary>
internal static class TestPostgres
{
    public const string DatabaseVariable = "SCHEDSYNC_TEST_DATABASE";

    private static readonly string ClustersRoot = Path.Combine(Path.GetTempPath(), "schedsync-tests");
    private static readonly Lazy<Task<string>> Admin = new(StartAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly ConcurrentBag<string> CreatedOnExternalServer = [];
    private static EmbeddedPostgres? _cluster;
    private static string? _clusterFolder;

    /// <summary>Superuser connection string to the server's <c>postgres</c> database.</summary>
    public static Task<string> GetAdminConnectionStringAsync() => Admin.Value;

    /// <summary>Creates an empty database named <c>t_[prefix_]xxxxxxxx</c> and returns a connection string to it.</summary>
    public static async Task<string> CreateDatabaseAsync(string? prefix = null)
    {
        var admin = await Admin.Value;
        var name = DatabaseName(prefix);

        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            // A sanitised identifier: CREATE DATABASE takes no parameters.
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        if (_cluster is null)
            CreatedOnExternalServer.Add(name);
        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    private static string DatabaseName(string? prefix)
    {
        var name = new StringBuilder("t_");
        foreach (var c in (prefix ?? "").ToLowerInvariant().Take(40))
            name.Append(char.IsAsciiLetterOrDigit(c) ? c : '_');
        if (name.Length > 2)
            name.Append('_');
        return name.Append(Guid.NewGuid().ToString("N")[..8]).ToString();
    }

    private static async Task<string> StartAsync()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Shutdown();

        var external = Environment.GetEnvironmentVariable(DatabaseVariable);
        if (!string.IsNullOrWhiteSpace(external))
            return external;

        RemoveAbandonedClusters();
        _clusterFolder = Path.Combine(
            ClustersRoot,
            string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId}-{Guid.NewGuid():N}"));
        _cluster = await EmbeddedPostgres.StartAsync(Path.Combine(_clusterFolder, "data"), durable: false);
        StartWatchdog(_clusterFolder);
        return _cluster.ConnectionString;
    }

    // `dotnet test` kills the test host 100 ms after the run (VSTEST_TESTHOST_SHUTDOWN_TIMEOUT), usually before
    // ProcessExit has stopped the server and deleted the folder. This shell outlives the test host and finishes
    // the job: it waits for the test process to go, then fast-shuts-down the postmaster and removes the folder.
    private static void StartWatchdog(string clusterFolder)
    {
        const string script = """
            trap '' INT HUP
            exec </dev/null >/dev/null 2>&1
            while kill -0 "$1"; do sleep 0.5; done
            pid=$(head -n 1 "$2/data/postmaster.pid")
            if [ -n "$pid" ] && [ "$(cat /proc/$pid/comm)" = postgres ]; then
              kill -INT "$pid"
              i=0
              while kill -0 "$pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
            fi
            rm -rf "$2"
            """;
        if (!OperatingSystem.IsLinux())
            return;

        var startInfo = new System.Diagnostics.ProcessStartInfo("/bin/sh")
        {
            // Own pipes, so the test runner does not wait for this process to close the ones it reads.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-c", script, "schedsync-test-watchdog", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), clusterFolder })
            startInfo.ArgumentList.Add(arg);
        System.Diagnostics.Process.Start(startInfo)?.Dispose();
    }

    private static void Shutdown()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            if (_cluster is not null)
                _cluster.DisposeAsync().AsTask().GetAwaiter().GetResult();
            else if (Admin.IsValueCreated && Admin.Value.IsCompletedSuccessfully)
                DropExternalDatabases(Admin.Value.Result);

            if (_clusterFolder is not null)
                Directory.Delete(_clusterFolder, recursive: true);
        }
        catch (Exception ex) when (ex is EmbeddedPostgresException or NpgsqlException or IOException)
        {
            Console.Error.WriteLine($"TestPostgres clean-up failed: {ex.Message}");
        }
    }

    private static void DropExternalDatabases(string admin)
    {
        using var connection = new NpgsqlConnection(admin);
        connection.Open();
        foreach (var name in CreatedOnExternalServer)
        {
            using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
            command.ExecuteNonQuery();
        }
    }

    // A test run that was killed never reached ProcessExit: its postmaster is still running and its folder is left.
    private static void RemoveAbandonedClusters()
    {
        if (!Directory.Exists(ClustersRoot))
            return;

        foreach (var folder in Directory.EnumerateDirectories(ClustersRoot))
        {
            var owner = Path.GetFileName(folder).Split('-')[0];
            if (!int.TryParse(owner, NumberStyles.None, CultureInfo.InvariantCulture, out var ownerPid) || IsRunning(ownerPid))
                continue;

            try
            {
                if (EmbeddedPostgres.ReadPostmasterPidFile(Path.Combine(folder, "data")) is { } server
                    && EmbeddedPostgres.IsPostmasterAlive(server.Pid))
                {
                    using var postmaster = System.Diagnostics.Process.GetProcessById(server.Pid);
                    postmaster.Kill();
                    postmaster.WaitForExit(TimeSpan.FromSeconds(10));
                }

                Directory.Delete(folder, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // Someone else's, or already going away: not worth failing the run for.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
