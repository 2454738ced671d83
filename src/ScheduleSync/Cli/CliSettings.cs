using System.CommandLine;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

/// <summary>
/// Settings common to every command, resolved the usual .NET way: a flag wins over an environment variable
/// (SCHEDSYNC_CONFIG, SCHEDSYNC_DATABASE, …), which wins over appsettings.json (section "ScheduleSync"), then defaults.
/// </summary>
internal sealed record CliSettings(string ConfigPath, string? Database, string DataDirectory, bool Json, SyncOptions Sync)
{
    public static IConfigurationRoot Configuration() => new ConfigurationBuilder()
        .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
        .AddEnvironmentVariables()
        .Build();

    public static CliSettings From(ParseResult parse)
    {
        var configuration = Configuration();
        string? Setting(string env, string key) =>
            configuration[env] is { Length: > 0 } fromEnv ? fromEnv : configuration[$"ScheduleSync:{key}"];

        var config = parse.GetValue(SchedSyncCommand.Config) ?? Setting("SCHEDSYNC_CONFIG", "Config") ?? "schedule_config.yml";
        var database = parse.GetValue(SchedSyncCommand.Database) ?? Setting("SCHEDSYNC_DATABASE", "Database");
        var configuredData = Setting("SCHEDSYNC_DATA_DIR", "DataDirectory");
        var dataDirectory = configuredData ?? Hosting.StateDirectory.DefaultDataDirectory(config);
        var sync = new SyncOptions();
        configuration.GetSection("ScheduleSync:Sync").Bind(sync);
        var replicaFlag = parse.GetValue(SchedSyncCommand.Replica);
        return new CliSettings(Path.GetFullPath(config), string.IsNullOrWhiteSpace(database) ? null : database, dataDirectory,
            parse.GetValue(SchedSyncCommand.Json), sync)
        {
            DataDirectoryHint = configuredData is null ? Hosting.StateDirectory.MoveHint(config) : null,
            ReplicaSetting = replicaFlag is not null ? (replicaFlag, "--replica")
                : Setting("SCHEDSYNC_REPLICA", "Replica") is { } fromEnv ? (fromEnv, "SCHEDSYNC_REPLICA") : null,
        };
    }

    /// <summary>The replica name as configured and where it came from; null for the default (SPEC §8).</summary>
    public (string Value, string Source)? ReplicaSetting { get; init; }

    /// <summary>This copy's replica name; throws <see cref="ArgumentException"/> naming the setting when it is not a valid name.</summary>
    public ReplicaName Replica => ReplicaName.From(ReplicaSetting?.Value, ConfigPath, ReplicaSetting?.Source ?? "--replica");

    /// <summary>When an older install's cluster is still in the config folder: how to move it out (one line).</summary>
    public string? DataDirectoryHint { get; init; }
}
