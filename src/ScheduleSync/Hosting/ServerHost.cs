using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using ScheduleSync.Api;
using ScheduleSync.Database;
using ScheduleSync.Events;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Ui;

namespace ScheduleSync.Hosting;

/// <summary>Composes the server: the one method that both <c>schedsync serve</c> and the tests call.</summary>
internal static class ServerHost
{
    /// <summary>
    /// Builds the server from <paramref name="configuration"/> (<see cref="AppConfiguration"/>; tests give an in-memory
    /// one). Settings are checked before anything is started; <paramref name="configure"/> runs last, before Build.
    /// </summary>
    public static async Task<WebApplication> BuildServerAsync(IConfiguration configuration, Action<WebApplicationBuilder>? configure = null, CancellationToken ct = default)
    {
        var settings = AppSettings.From(configuration);
        var server = AppServices.ReadChecked<ServerOptions>(configuration, AppConfiguration.ServerSection, OptionsChecks.Server);
        // The others are checked again by ValidateOnStart; here they stop the start before the serve lock or the cluster.
        AppServices.ReadChecked<SyncOptions>(configuration, AppConfiguration.SyncSection, OptionsChecks.Sync);
        AppServices.ReadChecked<EventOptions>(configuration, AppConfiguration.EventsSection, OptionsChecks.Events);
        var token = ServerStartChecks.ResolveToken(configuration);
        var logFormat = ServerLogging.ResolveFormat(configuration);
        var urls = server.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // Fails early on the configured URLs; ListenAddressCheck checks again what was actually bound.
        if (string.IsNullOrEmpty(token) && urls.FirstOrDefault(u => !ListenAddresses.IsLoopback(u)) is { } open)
            throw new InvalidOperationException($"refusing to listen on {open} without a token: set --token / --token-file / SCHEDSYNC_TOKEN, or listen on loopback only (127.0.0.1, [::1], localhost)");
        ServerStartChecks.CheckPortsFree(server.Urls);

        var database = await ServerDatabase.OpenAsync(settings, server.Urls, ct);
        var connectionString = database.ConnectionString;
        var embedded = database.Embedded;

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        // The one configuration, nothing else: not the appsettings.json beside the executable the builder would read.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddConfiguration(configuration);
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = server.MaxRequestBodyBytes);
        ServerLogging.Configure(builder.Logging, logFormat);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        var services = builder.Services;
        services.AddAppSettings(settings);
        services.PostConfigure<ServerOptions>(o => o.Token = token);
        // Created by the container: disposed (its pool closed) with the server. The API's and the runs' statements repeat:
        // prepared on each connection once used twice (issue 15), unless the connection string says otherwise.
        services.AddSingleton(_ => NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString).MaxAutoPrepare == 0
            ? new NpgsqlConnectionStringBuilder(connectionString) { MaxAutoPrepare = 64, AutoPrepareMinUsages = 2 }.ConnectionString
            : connectionString));
        services.AddServerDatabase(database);
        services.AddFileStore();
        services.AddTaskStore();
        services.AddSync(sp => new LoggingProgress(sp.GetRequiredService<ILogger<SyncRunner>>())); // a large run's phases in the log
        services.AddEvents();
        services.AddSingleton<SyncCoordinator>();
        services.AddHostedService<MigrationService>();
        services.AddHostedService<EventFeedService>();
        services.AddHostedService(sp => sp.GetRequiredService<SyncCoordinator>());
        services.AddHostedService<FileWatcherService>();
        services.AddHostedService<DatabaseListenerService>();
        services.AddHostedService<PeriodicSyncService>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        services.AddServerTelemetry(builder.Configuration);
        services.AddProblemDetails();
        services.AddServerSecurity(builder.Logging, token);
        services.AddOpenApi();
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: ["ready"])
            .AddCheck<FileHealthCheck>("file", tags: ["ready"]);
        services.ConfigureHttpJsonOptions(o => SnakeCaseJson.Configure(o.SerializerOptions));
        configure?.Invoke(builder);

        var app = builder.Build().UseServerDatabase();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) });
        app.UseServerSecurity();
        app.MapOpenApi("/openapi.json");
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/readyz", new() { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteReadiness }).AllowAnonymous();
        // Everything else needs the token (when one is set); the fallback policy also closes endpoints mapped elsewhere.
        var api = app.MapGroup("").RequireAuthorization();
        api.MapTasks();
        api.MapSync();
        api.MapReplicas();
        api.MapEvents();
        api.MapPrometheusScrapingEndpoint("/metrics");
        app.MapUi();

        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ScheduleSync");
        log.LogInformation("database: {ConnectionString}", ServerSecurity.WithoutPassword(connectionString));
        log.LogInformation("replica: {Replica}", settings.Replica.Name);
        if (embedded is not null)
        {
            log.LogInformation("embedded PostgreSQL (private: Unix socket only), data in {DataDirectory}", embedded.DataDirectory);
            if (settings.DataDirectoryHint is { } hint)
                log.LogInformation("note: {Hint}", hint);
        }
        return app;
    }

    /// <summary>"Healthy", or the status followed by one line per check that is not healthy, saying why.</summary>
    private static Task WriteReadiness(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var reasons = report.Entries.Where(e => e.Value.Status != HealthStatus.Healthy).Select(e => $"\n{e.Key}: {e.Value.Description}");
        return context.Response.WriteAsync(report.Status + string.Concat(reasons));
    }

    private sealed class MigrationService(NpgsqlDataSource dataSource) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Migrations.ApplyAsync(dataSource, cancellationToken);
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class DatabaseHealthCheck(NpgsqlDataSource dataSource) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await using var command = dataSource.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync(cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy("database unreachable: " + e.Message);
            }
        }
    }

    private sealed class FileHealthCheck(SyncCoordinator coordinator) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (!coordinator.Started.IsCompleted) return Task.FromResult(HealthCheckResult.Unhealthy("start-up sync not done"));
            var path = coordinator.Runner.Store.ConfigPath;
            try
            {
                coordinator.Runner.Store.CheckReadable(); // never opens a FIFO or device, never blocks
                return Task.FromResult(coordinator.FileValid
                    ? HealthCheckResult.Healthy()
                    : HealthCheckResult.Degraded($"{path} is invalid; API writes wait to be exported"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Task.FromResult(HealthCheckResult.Unhealthy($"{path} is not readable: {e.Message}"));
            }
        }
    }
}
