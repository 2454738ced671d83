using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Npgsql;
using ScheduleSync.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// The one configuration path (README "Configuration"), through the real executable: the order of its sources, the
/// appsettings.json next to the config file for one-shot commands and serve alike, and bad values refused at start.
/// </summary>
public sealed class ConfigurationProcessTests(ITestOutputHelper output)
{
    private const string OneGoodOneBad = """
        version: 1
        tasks:
          good:
            schedule: "*/5 * * * *"
            command: run-good
          bad:
            schedule: "not a schedule"
            command: run-bad
        """;

    /// <summary>Later wins: working directory's file, then the config folder's, then the environment, then the command line.</summary>
    [Fact]
    public async Task Command_line_beats_environment_beats_the_config_folder_file_beats_the_working_directory_file()
    {
        using var folder = new TempDirectory();
        var configFolder = Directory.CreateDirectory(folder.File("cfg")).FullName;
        // The working directory's file also says where the config file is (the config folder's file cannot).
        await WriteSettingsAsync(folder.File("appsettings.json"), new { Config = "cfg/schedule_config.yml", Database = "Host=from-working-dir;Database=x" });

        async Task<string> DatabaseSeen(Dictionary<string, string?>? environment = null, params string[] args)
        {
            var outcome = await SchedSyncProcess.RunAsync(["db", "--json", .. args], folder.Path, environment);
            output.WriteLine(outcome.ToString());
            Assert.Equal(0, outcome.ExitCode);
            return JsonDocument.Parse(outcome.Stdout).RootElement.GetProperty("connection_string").GetString()!;
        }

        Assert.Contains("Host=from-working-dir", await DatabaseSeen(), StringComparison.Ordinal);

        await WriteSettingsAsync(Path.Combine(configFolder, "appsettings.json"), new { Database = "Host=from-config-folder;Database=x" });
        Assert.Contains("Host=from-config-folder", await DatabaseSeen(), StringComparison.Ordinal);

        var environment = new Dictionary<string, string?> { ["ScheduleSync__Database"] = "Host=from-dotnet-variable;Database=x" };
        Assert.Contains("Host=from-dotnet-variable", await DatabaseSeen(environment), StringComparison.Ordinal);

        environment["SCHEDSYNC_DATABASE"] = "Host=from-schedsync-variable;Database=x";
        Assert.Contains("Host=from-schedsync-variable", await DatabaseSeen(environment), StringComparison.Ordinal);

        Assert.Contains("Host=from-flag", await DatabaseSeen(environment, "--database", "Host=from-flag;Database=x"), StringComparison.Ordinal);

        // An empty variable is no setting: the next source down decides.
        environment["SCHEDSYNC_DATABASE"] = "";
        environment["ScheduleSync__Database"] = null;
        Assert.Contains("Host=from-config-folder", await DatabaseSeen(environment), StringComparison.Ordinal);
    }

    /// <summary>
    /// A config folder holding schedule_config.yml and appsettings.json is complete: status, sync and serve run from
    /// anywhere with only --config, and see the same settings (database, addresses, sync policy).
    /// </summary>
    [Fact]
    public async Task The_appsettings_next_to_the_config_file_is_read_by_status_sync_and_serve_alike()
    {
        using var folder = new TempDirectory();
        var configFolder = Directory.CreateDirectory(folder.File("cfg")).FullName;
        var elsewhere = Directory.CreateDirectory(folder.File("elsewhere")).FullName;
        var configPath = Path.Combine(configFolder, "schedule_config.yml");
        await File.WriteAllTextAsync(configPath, OneGoodOneBad);
        var database = await TestPostgres.CreateDatabaseAsync("config_beside");
        var port = FreePort();
        await WriteSettingsAsync(Path.Combine(configFolder, "appsettings.json"), new
        {
            Database = database,
            Server = new { Urls = $"http://127.0.0.1:{port}" },
            Sync = new { OnInvalid = "SkipTask" }, // the default, RejectFile, would import nothing from this file
        });

        var sync = await SchedSyncProcess.RunAsync(["sync", "--config", configPath], elsewhere);
        output.WriteLine(sync.ToString());
        Assert.Equal(["good"], await TaskIdsAsync(database));

        var status = await SchedSyncProcess.RunAsync(["status", "--config", configPath], elsewhere);
        output.WriteLine(status.ToString());
        Assert.Contains("database: 1 task(s)", status.Stdout, StringComparison.Ordinal);

        // serve: the address and the policy from the same file; a fresh database given on the command line.
        var serveDatabase = await TestPostgres.CreateDatabaseAsync("config_beside_serve");
        await using var server = await ServeProcess.StartAsync(["serve", "--config", configPath, "--database", serveDatabase], elsewhere, port);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        // readyz answers 503 until the start-up sync is done (then 200: healthy, or degraded by the skipped task).
        while (true)
        {
            using var ready = await http.GetAsync("/readyz");
            if (ready.StatusCode == HttpStatusCode.OK) break;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            await Task.Delay(50);
        }
        Assert.Equal(["good"], await TaskIdsAsync(serveDatabase));
        await server.StopAsync();
    }

    /// <summary>A value no command can work with stops every command before anything is started or stored, naming the key.</summary>
    [Theory]
    [InlineData("Server", "PeriodicInterval", "-00:05:00", "ScheduleSync:Server:PeriodicInterval")]
    [InlineData("Server", "Urls", "not a url", "ScheduleSync:Server:Urls")]
    [InlineData("Sync", "MassDeleteShare", "2", "ScheduleSync:Sync:MassDeleteShare")]
    [InlineData("Sync", "OnInvalid", "Sometimes", "ScheduleSync:Sync:OnInvalid")]
    [InlineData("Events", "RetainAge", "soon", "ScheduleSync:Events:RetainAge")]
    public async Task An_invalid_setting_stops_one_shot_commands_and_serve_at_start_naming_the_key(string section, string name, string value, string key)
    {
        using var folder = new TempDirectory();
        await File.WriteAllTextAsync(folder.File("schedule_config.yml"), OneGoodOneBad);
        var database = await TestPostgres.CreateDatabaseAsync("config_invalid");
        await File.WriteAllTextAsync(folder.File("appsettings.json"),
            JsonSerializer.Serialize(new Dictionary<string, object> { ["ScheduleSync"] = new Dictionary<string, object> { [section] = new Dictionary<string, string> { [name] = value } } }));
        var before = await File.ReadAllBytesAsync(folder.File("schedule_config.yml"));

        // serve gets a free address unless the address is the bad value (--urls would win over it).
        string[] serve = name == "Urls" ? ["serve"] : ["serve", "--urls", $"http://127.0.0.1:{FreePort()}"];
        foreach (var args in new[] { ["sync"], ["status"], serve })
        {
            var outcome = await SchedSyncProcess.RunAsync([.. args, "--database", database], folder.Path);
            output.WriteLine(outcome.ToString());
            Assert.Equal(1, outcome.ExitCode);
            Assert.Contains(key, outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", outcome.Stderr, StringComparison.Ordinal);
        }

        // Nothing was started or stored: not even the schema.
        await using (var db = NpgsqlDataSource.Create(database))
            Assert.Equal(DBNull.Value, await db.CreateCommand("SELECT to_regclass('scheduled_tasks')::text").ExecuteScalarAsync());
        Assert.Equal(before, await File.ReadAllBytesAsync(folder.File("schedule_config.yml")));
    }

    private static Task WriteSettingsAsync(string path, object scheduleSync) =>
        File.WriteAllTextAsync(path, JsonSerializer.Serialize(new { ScheduleSync = scheduleSync }));

    private static async Task<List<string>> TaskIdsAsync(string connectionString)
    {
        await using var db = NpgsqlDataSource.Create(connectionString);
        await using var command = db.CreateCommand("SELECT id FROM scheduled_tasks ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<string>();
        while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        return ids;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
