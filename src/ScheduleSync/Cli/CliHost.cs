using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;
using ScheduleSync.Yaml;

namespace ScheduleSync.Cli;

/// <summary>
/// What a one-shot command needs: the database (the configured server, or the embedded cluster it starts and stops),
/// migrated; the file store; the sync runner.
/// </summary>
internal sealed class CliHost : IAsyncDisposable
{
    private readonly EmbeddedPostgres? _embedded;

    private CliHost(CliSettings settings, NpgsqlDataSource dataSource, EmbeddedPostgres? embedded, SyncOptions syncOptions, ILoggerFactory loggers)
    {
        Settings = settings;
        DataSource = dataSource;
        _embedded = embedded;
        Store = ConfigFileStore.Open(settings.ConfigPath);
        Tasks = new TaskStore(dataSource);
        Runner = new SyncRunner(dataSource, Store, syncOptions, loggers.CreateLogger<SyncRunner>(), settings.Replica)
        {
            // Phases of a long run on stderr when it is a terminal (issue 14); nothing in a pipe.
            Progress = TerminalProgress.ForStandardError(),
        };
        Conflicts = new ConflictService(Runner);
    }

    public CliSettings Settings { get; }
    public NpgsqlDataSource DataSource { get; }
    public ConfigFileStore Store { get; }
    public TaskStore Tasks { get; }
    public SyncRunner Runner { get; }
    public ConflictService Conflicts { get; }

    public static async Task<CliHost> OpenAsync(CliSettings settings, CancellationToken ct, ILoggerFactory? loggers = null)
    {
        EmbeddedPostgres? embedded = null;
        var connectionString = settings.Database;
        if (connectionString is null)
        {
            if (settings.DataDirectoryHint is { } hint)
                Console.Error.WriteLine($"schedsync: note: {hint}");
            embedded = await EmbeddedPostgres.StartAsync(settings.DataDirectory, cancellationToken: ct);
            connectionString = embedded.ConnectionString;
        }
        var dataSource = NpgsqlDataSource.Create(connectionString);
        try
        {
            await Migrations.ApplyAsync(dataSource, ct);
        }
        catch
        {
            await dataSource.DisposeAsync();
            if (embedded is not null) await embedded.DisposeAsync();
            throw;
        }
        return new CliHost(settings, dataSource, embedded, settings.Sync, loggers ?? NullLoggerFactory.Instance);
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        if (_embedded is not null) await _embedded.DisposeAsync();
    }
}
