using System.Net;
using System.Net.Sockets;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// Expected failures as a person meets them (issue 14 item 1): the real executable prints one line that says what to
/// do, exits 1 (3 for an invalid file), prints no stack trace, and starts or creates nothing it should not.
/// </summary>
public class CliErrorTests
{
    private static void AssertFailedCleanly(int expectedExit, string expectedMessage, ProcessOutcome outcome)
    {
        Assert.True(outcome.ExitCode == expectedExit && !outcome.TimedOut, $"expected exit {expectedExit}, got {outcome}");
        Assert.Contains(expectedMessage, outcome.Stderr, StringComparison.Ordinal);
        foreach (var text in (string[])[outcome.Stdout, outcome.Stderr])
        {
            Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
            Assert.DoesNotContain("--- End of", text, StringComparison.Ordinal);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    [Fact]
    public async Task Unreachable_database_names_host_and_port_and_how_to_set_it()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("schedule_config.yml"), "version: 1\ntasks: {}\n");
        var port = FreePort();

        var outcome = await SchedSyncProcess.RunAsync(
            ["status", "--config", temp.File("schedule_config.yml"), "--database", $"Host=127.0.0.1;Port={port};Username=nobody;Timeout=5"], temp.Path);

        AssertFailedCleanly(1, $"cannot connect to 127.0.0.1:{port} — is PostgreSQL running? set --database or SCHEDSYNC_DATABASE", outcome);
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("status")]
    [InlineData("serve")]
    public async Task Malformed_connection_string_is_one_line_not_an_unhandled_exception(string command)
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("schedule_config.yml"), "version: 1\ntasks: {}\n");

        var outcome = await SchedSyncProcess.RunAsync([command, "--config", temp.File("schedule_config.yml")], temp.Path,
            new Dictionary<string, string?> { ["SCHEDSYNC_DATABASE"] = "Host=localhost;;=oops;Password=secret" }, TimeSpan.FromSeconds(30));

        AssertFailedCleanly(1, "the database connection string (--database or SCHEDSYNC_DATABASE) is malformed", outcome);
        Assert.DoesNotContain("secret", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_on_a_port_in_use_says_so_before_starting_anything()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_port_in_use");
        var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        try
        {
            var port = ((IPEndPoint)taken.LocalEndpoint).Port;

            var outcome = await SchedSyncProcess.RunAsync(
                ["serve", "--config", bed.ConfigPath, "--database", bed.ConnectionString, "--urls", $"http://127.0.0.1:{port}"],
                bed.Folder, timeout: TimeSpan.FromSeconds(30));

            AssertFailedCleanly(1, $"cannot listen on http://127.0.0.1:{port}: the address is already in use", outcome);
            Assert.Contains("--urls", outcome.Stderr, StringComparison.Ordinal);
            Assert.Equal(0, await bed.CountAsync("sync_runs"));
        }
        finally
        {
            taken.Stop();
        }
    }

    [Fact]
    public async Task Missing_postgresql_binaries_say_what_to_install()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("schedule_config.yml"), "version: 1\ntasks: {}\n");

        var outcome = await SchedSyncProcess.RunAsync(["sync", "--config", temp.File("schedule_config.yml")], temp.Path,
            new Dictionary<string, string?> { ["SCHEDSYNC_PG_BIN"] = temp.File("no-such-bin"), ["SCHEDSYNC_DATA_DIR"] = temp.File("pgdata") });

        AssertFailedCleanly(1, "The PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found", outcome);
        Assert.Contains("SCHEDSYNC_PG_BIN", outcome.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("status")]
    [InlineData("plan")]
    [InlineData("init")]
    [InlineData("serve")]
    public async Task Config_in_a_folder_that_does_not_exist_fails_and_creates_nothing(string command)
    {
        using var temp = new TempDirectory();
        var mistyped = Path.Combine(temp.Path, "confg", "schedule_config.yml");

        var outcome = await SchedSyncProcess.RunAsync([command, "--config", mistyped], temp.Path, timeout: TimeSpan.FromSeconds(30));

        AssertFailedCleanly(1, $"{mistyped}: the folder {Path.Combine(temp.Path, "confg")} does not exist (check --config or SCHEDSYNC_CONFIG)", outcome);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    [Fact]
    public async Task Sync_with_a_missing_file_and_an_empty_database_fails_unless_init_is_given()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_missing_file", yaml: null);

        var refused = await SchedSyncProcess.RunAsync(["sync", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

        AssertFailedCleanly(1, $"{bed.ConfigPath}: no such file, and the database has no tasks; run `schedsync init`", refused);
        Assert.False(File.Exists(bed.ConfigPath));
        Assert.Equal(0, await bed.CountAsync("sync_runs"));

        var created = await SchedSyncProcess.RunAsync(["sync", "--init", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.Equal("version: 1\ntasks: {}\n", bed.ReadFile());
        Assert.Contains($"created {bed.ConfigPath}", created.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_with_a_missing_file_and_tasks_in_the_database_writes_them_to_a_new_file()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_missing_file_db");
        File.Delete(bed.ConfigPath);
        await bed.ExecuteAsync("DELETE FROM sync_base");

        var outcome = await SchedSyncProcess.RunAsync(["sync", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

        Assert.True(outcome.ExitCode == 0, outcome.ToString());
        Assert.Contains("alpha:", bed.ReadFile(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_exits_1_for_a_missing_file_and_3_for_an_invalid_one()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_status_file", yaml: null);

        var missing = await SchedSyncProcess.RunAsync(["status", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

        AssertFailedCleanly(1, $"{bed.ConfigPath}: no such file (`schedsync init` creates it)", missing);
        Assert.Contains("(missing)", missing.Stdout, StringComparison.Ordinal);

        bed.WriteFile("version: 1\ntasks:\n  a: { command: run }\n");
        var invalid = await SchedSyncProcess.RunAsync(["status", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

        Assert.True(invalid.ExitCode == 3, invalid.ToString());
        Assert.Contains("INVALID, 1 problem(s)", invalid.Stdout, StringComparison.Ordinal);
    }
}
