using System.Diagnostics;
using Npgsql;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Hosting;

public class EmbeddedPostgresTests
{
    [Fact]
    public async Task Cluster_initializes_a_new_folder_serves_queries_and_stops()
    {
        using var temp = new TempDirectory();
        var dataDir = temp.File("data");

        await using var pg = await EmbeddedPostgres.StartAsync(dataDir, durable: false);

        Assert.True(pg.OwnsServer);
        Assert.Equal(dataDir, pg.DataDirectory);
        Assert.True(File.Exists(Path.Combine(dataDir, "PG_VERSION")));
        var settings = new NpgsqlConnectionStringBuilder(pg.ConnectionString);
        Assert.Equal((dataDir, 5432, "postgres", "postgres", true),
            (settings.Host, settings.Port, settings.Username, settings.Database, settings.IncludeErrorDetail));
        await using (var connection = await OpenAsync(pg.ConnectionString))
        {
            Assert.Equal(dataDir, await ScalarAsync<string>(connection, "SELECT current_setting('data_directory')"));
            Assert.Equal("off", await ScalarAsync<string>(connection, "SELECT current_setting('fsync')"));
            Assert.Equal("200", await ScalarAsync<string>(connection, "SELECT current_setting('max_connections')"));
            Assert.Equal("UTF8", await ScalarAsync<string>(connection, "SELECT current_setting('server_encoding')"));
            Assert.Equal("", await ScalarAsync<string>(connection, "SELECT current_setting('listen_addresses')"));
            Assert.Equal(42, await ScalarAsync<int>(connection, "SELECT 6 * 7"));
        }

        await pg.StopAsync();

        Assert.False(File.Exists(Path.Combine(dataDir, "postmaster.pid")));
        Assert.False(File.Exists(Path.Combine(dataDir, ".s.PGSQL.5432")));
    }

    [Fact]
    public async Task Cluster_restarts_on_the_same_data_folder_and_keeps_data()
    {
        using var temp = new TempDirectory();
        var dataDir = temp.File("data");

        await using (var first = await EmbeddedPostgres.StartAsync(dataDir))
        {
            await using var connection = await OpenAsync(first.ConnectionString);
            Assert.Equal("on", await ScalarAsync<string>(connection, "SELECT current_setting('fsync')"));
            await ExecuteAsync(connection, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('survives a restart')");
        }

        Assert.False(File.Exists(Path.Combine(dataDir, "postmaster.pid")));

        await using var second = await EmbeddedPostgres.StartAsync(dataDir);
        await using var again = await OpenAsync(second.ConnectionString);
        Assert.True(second.OwnsServer);
        Assert.Equal("survives a restart", await ScalarAsync<string>(again, "SELECT note FROM kept"));
    }

    [Fact]
    public async Task Missing_server_binaries_give_an_error_naming_the_package_and_the_variable()
    {
        using var temp = new TempDirectory();
        var emptyBin = temp.File("bin");
        Directory.CreateDirectory(emptyBin);

        var error = await Assert.ThrowsAsync<EmbeddedPostgresException>(
            () => EmbeddedPostgres.StartAsync(temp.File("data"), durable: false, binDirectory: emptyBin));

        Assert.Contains("apt-get install postgresql", error.Message, StringComparison.Ordinal);
        Assert.Contains(EmbeddedPostgres.BinDirectoryVariable, error.Message, StringComparison.Ordinal);
        Assert.Contains(emptyBin, error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("data")));
    }

    [Fact]
    public async Task Second_start_on_a_served_folder_reuses_the_server_and_leaves_it_running_on_dispose()
    {
        using var temp = new TempDirectory();
        var dataDir = temp.File("data");
        await using var first = await EmbeddedPostgres.StartAsync(dataDir, durable: false);

        var second = await EmbeddedPostgres.StartAsync(dataDir, durable: false);
        Assert.Equal(first.Port, second.Port);
        Assert.False(second.OwnsServer);
        await second.DisposeAsync();

        Assert.True(File.Exists(Path.Combine(dataDir, "postmaster.pid")));
        await using var connection = await OpenAsync(Unpooled(first.ConnectionString));
        Assert.Equal(1, await ScalarAsync<int>(connection, "SELECT 1"));
    }

    [Fact]
    public async Task Cluster_starts_over_the_stale_pid_file_of_a_killed_server_and_keeps_data()
    {
        using var temp = new TempDirectory();
        var dataDir = temp.File("data");
        await using var killed = await EmbeddedPostgres.StartAsync(dataDir);
        await using (var connection = await OpenAsync(Unpooled(killed.ConnectionString)))
            await ExecuteAsync(connection, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('committed before the crash')");

        var postmasterPid = EmbeddedPostgres.ReadPostmasterPidFile(dataDir)!.Value.Pid;
        using (var postmaster = Process.GetProcessById(postmasterPid))
            postmaster.Kill();
        await WaitUntilAsync(() => !EmbeddedPostgres.IsPostmasterAlive(postmasterPid));
        Assert.Equal(postmasterPid, EmbeddedPostgres.ReadPostmasterPidFile(dataDir)?.Pid);

        await using var restarted = await EmbeddedPostgres.StartAsync(dataDir);
        Assert.True(restarted.OwnsServer);

        // The instance whose server was killed must not stop the one that replaced it.
        await killed.DisposeAsync();
        await using var again = await OpenAsync(Unpooled(restarted.ConnectionString));
        Assert.Equal("committed before the crash", await ScalarAsync<string>(again, "SELECT note FROM kept"));
    }

    [Fact]
    public async Task Test_databases_are_new_empty_and_distinct()
    {
        var a = await TestPostgres.CreateDatabaseAsync("isolation");
        var b = await TestPostgres.CreateDatabaseAsync("isolation");

        await using var connectionA = await OpenAsync(a);
        await using var connectionB = await OpenAsync(b);
        var nameA = await ScalarAsync<string>(connectionA, "SELECT current_database()");
        var nameB = await ScalarAsync<string>(connectionB, "SELECT current_database()");
        Assert.NotEqual(nameA, nameB);
        Assert.StartsWith("t_isolation_", nameA, StringComparison.Ordinal);

        const string userTables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
        Assert.Equal(0L, await ScalarAsync<long>(connectionA, userTables));
        await ExecuteAsync(connectionA, "CREATE TABLE only_in_a (id int)");
        Assert.Equal(1L, await ScalarAsync<long>(connectionA, userTables));
        Assert.Equal(0L, await ScalarAsync<long>(connectionB, userTables));
    }

    private static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        return connection;
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(10), "condition not met within 10 s");
            await Task.Delay(50);
        }
    }
}
