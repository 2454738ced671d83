namespace ScheduleSync.Hosting;

/// <summary>
/// Where a command works, read from the one configuration (<see cref="AppConfiguration"/>): the config file, the
/// database connection string (null: the embedded cluster) and the embedded cluster's data folder.
/// </summary>
internal sealed record AppSettings(string ConfigPath, string? Database, string DataDirectory, IConfiguration Configuration)
{
    /// <summary>When an older install's cluster is still in the config folder: how to move it out (one line).</summary>
    public string? DataDirectoryHint { get; init; }

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
