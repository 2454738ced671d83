using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using ScheduleSync.Cli;
using ScheduleSync.Database;
using ScheduleSync.Events;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Hosting;

/// <summary>Composes the server: the one method that both <c>schedsync serve</c> and the tests call.</summary>
internal static class ServerHost
{
    public static async Task<WebApplication> BuildServerAsync(CliSettings settings, ServerOptions server, Action<WebApplicationBuilder>? configure = null, CancellationToken ct = default)
    {
        var urls = server.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (string.IsNullOrEmpty(server.Token) && urls.FirstOrDefault(u => !IsLoopback(u)) is { } open)
            throw new InvalidOperationException($"refusing to listen on {open} without a token: set --token / SCHEDSYNC_TOKEN, or listen on loopback only (127.0.0.1, [::1], localhost)");

        EmbeddedPostgres? embedded = null;
        var connectionString = settings.Database;
        if (connectionString is null)
        {
            embedded = await EmbeddedPostgres.StartAsync(settings.DataDirectory, cancellationToken: ct);
            connectionString = embedded.ConnectionString;
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = server.MaxRequestBodyBytes);
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(Options.Create(server));
        services.AddSingleton(NpgsqlDataSource.Create(connectionString));
        if (embedded is not null) services.AddSingleton(embedded);
        services.AddSingleton(_ => ConfigFileStore.Open(settings.ConfigPath));
        services.AddSingleton(settings.Sync);
        services.AddSingleton<TaskStore>();
        services.AddSingleton<SyncRunner>();
        services.AddSingleton<ConflictService>();
        services.AddSingleton(new EventOptions());
        services.AddSingleton<EventHub>();
        services.AddSingleton<SyncCoordinator>();
        services.AddHostedService<MigrationService>();
        services.AddHostedService(sp => sp.GetRequiredService<SyncCoordinator>());
        services.AddHostedService<FileWatcherService>();
        services.AddHostedService<DatabaseListenerService>();
        services.AddHostedService<PeriodicSyncService>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        services.AddProblemDetails();
        services.AddOpenApi();
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: ["ready"])
            .AddCheck<FileHealthCheck>("file", tags: ["ready"]);
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.SnakeCaseLower));
        });
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) });
        app.Use(BearerToken(server.Token));
        app.MapOpenApi("/openapi.json");
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new() { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteReadiness });
        app.MapTasks();
        app.MapSync();
        app.MapEvents();

        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ScheduleSync");
        if (string.IsNullOrEmpty(server.Token))
            log.LogWarning("no API token configured: listening on loopback only ({Urls}); set --token to listen elsewhere", server.Urls);
        if (embedded is not null)
        {
            log.LogInformation("embedded PostgreSQL on port {Port}, data in {DataDirectory}", embedded.Port, embedded.DataDirectory);
            app.Lifetime.ApplicationStopped.Register(() => embedded.DisposeAsync().AsTask().GetAwaiter().GetResult());
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

    private static bool IsLoopback(string url)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri))
            return false;
        return uri.Host == "localhost" || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>With a token configured, /api and /ws need "Authorization: Bearer &lt;token&gt;" (compared in constant time).</summary>
    private static Func<HttpContext, RequestDelegate, Task> BearerToken(string? token)
    {
        var expected = string.IsNullOrEmpty(token) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(token));
        return async (context, next) =>
        {
            var path = context.Request.Path;
            if (expected is not null && (path.StartsWithSegments("/api") || path.StartsWithSegments("/ws")))
            {
                var header = context.Request.Headers.Authorization.ToString();
                var given = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : "";
                // Hash both so the comparison is constant-time whatever the lengths.
                if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), expected))
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await Results.Problem("a valid 'Authorization: Bearer <token>' header is required", statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized")
                        .ExecuteAsync(context);
                    return;
                }
            }
            await next(context);
        };
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
