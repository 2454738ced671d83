using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// Where a command works, read from the one configuration (<see cref="AppConfiguration"/>): the config file, the
/// database connection string (null: the embedded cluster) and the embedded cluster's data folder.
/// </summary>
internal sealed record AppSettings(string ConfigPath, string? Database, string DataDirectory, IConfiguration Configuration)
{
    /// <summary>When an older install's cluster is still in the config folder: how to move it out (one line).</summary>
    public string? DataDirectoryHint { get; init; }

    /// <summary>
    /// This copy's name among the instances on one database (SPEC §8): <c>ScheduleSync:Replica</c>, else
    /// <c>&lt;hostname&gt;:&lt;config path&gt;</c>. Throws <see cref="ArgumentException"/> naming the setting when it is not a valid name.
    /// </summary>
    public ReplicaName Replica => ReplicaName.From(Configuration[AppConfiguration.ReplicaKey], ConfigPath,
        AppConfiguration.Describe(Configuration, AppConfiguration.ReplicaKey));

    public static AppSettings From(IConfiguration configuration)
    {
        var configPath = AppConfiguration.ConfigPath(configuration);
        var database = configuration[AppConfiguration.DatabaseKey];
        var configuredData = configuration[AppConfiguration.DataDirectoryKey] is { Length: > 0 } data ? data : null;
        return new AppSettings(configPath, string.IsNullOrWhiteSpace(database) ? null : database,
            configuredData ?? StateDirectory.DefaultDataDirectory(configPath), configuration)
        {
            DataDirectoryHint = configuredData is null ? StateDirectory.MoveHint(configPath) : null,
        };
    }
}
