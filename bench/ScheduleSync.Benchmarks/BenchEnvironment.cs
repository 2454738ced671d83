using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Hosting;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// The benchmark's world: a temp folder, a private PostgreSQL cluster in it started with <c>durable: true</c> (fsync,
/// synchronous_commit and full_page_writes on, like production), and fresh databases on demand.
/// </summary>
internal sealed class BenchEnvironment : IAsyncDisposable
{
    private readonly EmbeddedPostgres _postgres;
    private int _databases;

    private BenchEnvironment(string root, EmbeddedPostgres postgres)
    {
        Root = root;
        _postgres = postgres;
    }

    public string Root { get; }

    public string AdminConnectionString => _postgres.ConnectionString;

    public static async Task<BenchEnvironment> StartAsync()
    {
        // Under /tmp on this machine is ext4 on the VM's disk, so fsync costs what it costs on a real disk.
        var root = Path.Combine(Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture, $"schedsync-bench-{Environment.ProcessId}"));
        Directory.CreateDirectory(root);
        var postgres = await EmbeddedPostgres.StartAsync(Path.Combine(root, "pgdata"), durable: true);
        return new BenchEnvironment(root, postgres);
    }

    /// <summary>A new, migrated database; returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix, bool migrate = true)
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"{prefix}_{Interlocked.Increment(ref _databases)}");
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }
        var connectionString = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
        if (migrate)
        {
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            await Migrations.ApplyAsync(dataSource);
        }
        return connectionString;
    }

    public async Task DropDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Lets the machine go quiet before a series of measurements: a PostgreSQL CHECKPOINT and a sync(1) flush what
    /// creating and dropping databases left dirty (on this VM's disk a pending writeback makes the next fsync
    /// 10–50× slower), and a full GC leaves no collection debt to the next sample.
    /// </summary>
    public async Task SettleAsync()
    {
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("CHECKPOINT", connection);
            await command.ExecuteNonQueryAsync();
        }
        using (var sync = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sync") { UseShellExecute = false }))
            await sync!.WaitForExitAsync();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        await Task.Delay(100);
    }

    /// <summary>A fresh folder for one scenario's config file (and its .bak, backups and lock).</summary>
    public string NewFolder(string name)
    {
        var path = Path.Combine(Root, name);
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        Directory.CreateDirectory(path);
        return path;
    }

    public async Task<Dictionary<string, string>> DescribeAsync()
    {
        var info = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["cores"] = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture),
            ["cpu"] = ReadFirst("/proc/cpuinfo", "model name") ?? "?",
            ["memory"] = ReadFirst("/proc/meminfo", "MemTotal") ?? "?",
            ["os"] = (ReadFirst("/etc/os-release", "PRETTY_NAME", '=') ?? RuntimeInformation.OSDescription).Trim('"')
                + ", kernel " + (TryRead("/proc/sys/kernel/osrelease") ?? "?").Trim(),
            [".NET"] = RuntimeInformation.FrameworkDescription + (System.Runtime.GCSettings.IsServerGC ? ", server GC" : ", workstation GC"),
            ["temp folder"] = Root + " (" + FileSystemOf(Root) + ")",
            ["load average at start (1/5/15 min)"] = LoadAverage(),
        };
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        async Task<string> Scalar(string sql)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            return (await command.ExecuteScalarAsync())?.ToString() ?? "";
        }
        info["PostgreSQL"] = await Scalar("SELECT version()");
        info["PostgreSQL durability"] = "EmbeddedPostgres.StartAsync(durable: true): fsync=" + await Scalar("SHOW fsync")
            + ", synchronous_commit=" + await Scalar("SHOW synchronous_commit")
            + ", full_page_writes=" + await Scalar("SHOW full_page_writes")
            + ", wal_sync_method=" + await Scalar("SHOW wal_sync_method");
        return info;
    }

    /// <summary>Other work on the machine (another test suite, a build) shows here; the numbers are only as clean as this.</summary>
    public static string LoadAverage() => string.Join(" / ", (TryRead("/proc/loadavg") ?? "? ? ?").Split(' ').Take(3));

    private static string? TryRead(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static string? ReadFirst(string path, string key, char separator = ':') =>
        TryRead(path)?.Split('\n').FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal)) is { } line
            ? line[(line.IndexOf(separator, StringComparison.Ordinal) + 1)..].Trim()
            : null;

    private static string FileSystemOf(string path)
    {
        var mounts = (TryRead("/proc/mounts") ?? "").Split('\n')
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 2 && path.StartsWith(f[1], StringComparison.Ordinal))
            .OrderByDescending(f => f[1].Length)
            .FirstOrDefault();
        return mounts is null ? "?" : $"{mounts[2]} on {mounts[0]}, mounted at {mounts[1]}";
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await _postgres.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort; a later run uses its own folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
