using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// The composition of a one-shot command (sync, status, plan, conflicts, restore, export, init): the services of
/// <see cref="AppServices"/> that <c>serve</c> uses too, without the web parts, on a plain generic host. Starting it
/// validates the options, then opens the database (the configured server, or the embedded cluster it starts and
/// stops) and migrates it.
/// </summary>
internal static class CommandHost
{
    public static async Task<IHost> StartAsync(AppSettings settings, IProgress<SyncProgress>? progress, CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Args = [] });
        builder.Configuration.AddConfiguration(settings.Configuration);
        var services = builder.Services;
        services.AddAppSettings(settings);
        services.AddCommandDatabase();
        services.AddFileStore();
        services.AddTaskStore();
        services.AddSync(_ => progress);
        services.AddEvents();
        // No console lifetime: SIGINT/SIGTERM keep their usual effect on a one-shot command (System.CommandLine's ct).
        services.AddSingleton<IHostLifetime, CommandLifetime>();

        var host = builder.Build();
        try
        {
            await host.StartAsync(ct);
        }
        catch
        {
            await DisposeAsync(host);
            throw;
        }
        return host;
    }

    /// <summary>Stops and disposes the host: the data source's pool closed, then the embedded cluster let go.</summary>
    public static async Task DisposeAsync(IHost host)
    {
        if (host is IAsyncDisposable disposable) await disposable.DisposeAsync();
        else host.Dispose();
    }

    /// <summary>The database of a one-shot command: opened (and migrated) when the host starts, let go when it is disposed.</summary>
    private static IServiceCollection AddCommandDatabase(this IServiceCollection services)
    {
        services.AddSingleton<CommandDatabase>();
        services.AddHostedService(sp => sp.GetRequiredService<CommandDatabase>());
        services.AddSingleton(sp => NpgsqlDataSource.Create(sp.GetRequiredService<CommandDatabase>().ConnectionString));
        return services;
    }

    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class CommandDatabase(AppSettings settings, IServiceProvider services) : IHostedService, IAsyncDisposable
    {
        private EmbeddedPostgres? _embedded;
        private string? _connectionString;

        public string ConnectionString => _connectionString ?? throw new InvalidOperationException("the database is opened when the host starts");

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            if (settings.Database is { } configured)
            {
                _connectionString = configured;
            }
            else
            {
                _embedded = await EmbeddedPostgres.StartAsync(settings.DataDirectory, cancellationToken: cancellationToken);
                _connectionString = _embedded.ConnectionString;
            }
            await Migrations.ApplyAsync(services.GetRequiredService<NpgsqlDataSource>(), cancellationToken);
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async ValueTask DisposeAsync()
        {
            if (_embedded is not null) await _embedded.DisposeAsync();
            _embedded = null;
        }
    }
}
