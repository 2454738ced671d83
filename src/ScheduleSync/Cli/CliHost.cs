using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

/// <summary>
/// What a one-shot command works with: the services of <see cref="CommandHost"/> (the same composition as
/// <c>serve</c>, without the web parts), started: options validated, database opened and migrated.
/// </summary>
internal sealed class CliHost : IAsyncDisposable
{
    private readonly IHost _host;

    private CliHost(CliSettings settings, IHost host)
    {
        Settings = settings;
        _host = host;
    }

    public CliSettings Settings { get; }
    public NpgsqlDataSource DataSource => _host.Services.GetRequiredService<NpgsqlDataSource>();
    public ConfigFileStore Store => _host.Services.GetRequiredService<ConfigFileStore>();
    public TaskStore Tasks => _host.Services.GetRequiredService<TaskStore>();
    public SyncRunner Runner => _host.Services.GetRequiredService<SyncRunner>();
    public ConflictService Conflicts => _host.Services.GetRequiredService<ConflictService>();

    public static async Task<CliHost> OpenAsync(CliSettings settings, CancellationToken ct)
    {
        if (settings.Database is null && settings.DataDirectoryHint is { } hint)
            Console.Error.WriteLine($"schedsync: note: {hint}");
        // Phases of a long run on stderr when it is a terminal (issue 14); nothing in a pipe.
        var host = await CommandHost.StartAsync(settings.App, TerminalProgress.ForStandardError(), ct);
        return new CliHost(settings, host);
    }

    public async ValueTask DisposeAsync() => await CommandHost.DisposeAsync(_host);
}
