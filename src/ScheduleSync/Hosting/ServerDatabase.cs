using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace ScheduleSync.Hosting;

/// <summary>
/// What a server holds for its whole life besides Kestrel: the serve lock on its config file, and its use of the
/// embedded cluster (when no connection string is configured). Disposed when the server stops — and also when it
/// fails to start (e.g. its port is taken), since the host disposes it with the container: the cluster this server
/// started is then stopped unless another process still uses it.
/// </summary>
internal sealed class ServerDatabase : IAsyncDisposable
{
    private readonly ServeLock _serveLock;
    private int _disposed;

    private ServerDatabase(ServeLock serveLock, EmbeddedPostgres? embedded, string connectionString)
    {
        _serveLock = serveLock;
        Embedded = embedded;
        ConnectionString = connectionString;
    }

    public EmbeddedPostgres? Embedded { get; }

    public string ConnectionString { get; }

    /// <summary>Takes the serve lock (refusing a second server on the same config), then starts or attaches to the cluster.</summary>
    public static async Task<ServerDatabase> OpenAsync(AppSettings settings, string urls, CancellationToken ct)
    {
        var serveLock = ServeLock.Acquire(settings.ConfigPath, urls, settings.Replica);
        try
        {
            if (settings.Database is { } configured)
                return new ServerDatabase(serveLock, null, configured);
            var embedded = await EmbeddedPostgres.StartAsync(settings.DataDirectory, cancellationToken: ct);
            return new ServerDatabase(serveLock, embedded, embedded.ConnectionString);
        }
        catch
        {
            serveLock.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        try
        {
            if (Embedded is not null)
                await Embedded.DisposeAsync();
        }
        finally
        {
            _serveLock.Dispose();
        }
    }

    /// <summary>Once Kestrel has bound: the serve lock names the real addresses.</summary>
    internal void Started(IServer server)
    {
        if (server.Features.Get<IServerAddressesFeature>() is { Addresses.Count: > 0 } addresses)
            _serveLock.Describe(string.Join(';', addresses.Addresses));
    }
}

internal static class ServerDatabaseServices
{
    /// <summary>
    /// Registers the server's database holder (disposed with the host), the 503 answer for database outages, and for
    /// the embedded cluster the watchdog that restarts it.
    /// </summary>
    public static IServiceCollection AddServerDatabase(this IServiceCollection services, ServerDatabase database)
    {
        // A factory, not an instance: the container disposes what its factories return, also after a failed start.
        services.AddSingleton(_ => database);
        services.AddExceptionHandler<DatabaseOutageHandler>();
        if (database.Embedded is { } embedded)
        {
            services.AddSingleton(embedded);
            services.AddHostedService<EmbeddedPostgresWatchdog>();
        }

        return services;
    }

    /// <summary>Ties the holder to the application's lifetime: real addresses once started, released once stopped.</summary>
    public static WebApplication UseServerDatabase(this WebApplication app)
    {
        var database = app.Services.GetRequiredService<ServerDatabase>();
        app.Lifetime.ApplicationStarted.Register(() => database.Started(app.Services.GetRequiredService<IServer>()));
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            database.DisposeAsync().AsTask().GetAwaiter().GetResult();
            ServerLogging.LogStopped(app, database.Embedded);
        });
        return app;
    }
}
