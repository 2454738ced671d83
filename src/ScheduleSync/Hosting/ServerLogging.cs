using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ScheduleSync.Files;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// How the server logs: <c>text</c> (one plain line per message: time, level, category, message) or <c>json</c>
/// (Microsoft.Extensions.Logging's JSON console formatter, one object per line, for log shippers). Chosen by
/// <c>ScheduleSync:Logging:Format</c> (<c>--log-format</c>, <c>SCHEDSYNC_LOG_FORMAT</c>, appsettings.json).
/// </summary>
internal static partial class ServerLogging
{
    public const string Text = "text";
    public const string Json = "json";

    /// <summary>The format to use (<c>ScheduleSync:Logging:Format</c>); an unknown value is an error naming where it came from.</summary>
    public static string ResolveFormat(IConfiguration configuration)
    {
        if (configuration[Hosting.AppConfiguration.LogFormatKey] is not { Length: > 0 } value) return Text;
        var format = value.Trim().ToLowerInvariant();
        return format is Text or Json ? format
            : throw new StartupException($"{Hosting.AppConfiguration.Describe(configuration, Hosting.AppConfiguration.LogFormatKey)} is '{value}': use text or json");
    }

    public static void Configure(ILoggingBuilder logging, string format)
    {
        logging.ClearProviders();
        if (format == Json)
        {
            logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
                o.UseUtcTimestamp = true;
                o.IncludeScopes = false;
                // Plain text in messages ('x' and +, not \u0027 and \u002B): the output is a log, never embedded in HTML.
                o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            });
            return;
        }
        logging.AddConsole(o => o.FormatterName = PlainConsoleFormatter.FormatterName);
        logging.AddConsoleFormatter<PlainConsoleFormatter, ConsoleFormatterOptions>(o => o.TimestampFormat = "HH:mm:ss.fff");
    }

    /// <summary>
    /// OpenTelemetry: the "ScheduleSync" meter, ASP.NET Core's and Kestrel's own meters, scraped at <c>/metrics</c>
    /// (Prometheus); spans of the "ScheduleSync" source. With <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> set (the standard
    /// OTEL_* variables configure it further) metrics and spans are also pushed over OTLP.
    /// </summary>
    public static void AddServerTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<SyncMetrics>();
        var otlp = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("schedsync"))
            .WithMetrics(m =>
            {
                m.AddMeter(Telemetry.Name, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.Http.Connections");
                // No response cache (default 300 ms): a scrape right after a sync shows it; scrapes come every few seconds at most.
                m.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                if (otlp) m.AddOtlpExporter();
            });
        if (otlp)
            telemetry.WithTracing(t => t.AddSource(Telemetry.Name).AddOtlpExporter());
    }

    /// <summary>Says on shutdown what was stopped (after the hosted services stopped and the database was let go).</summary>
    public static void LogStopped(WebApplication app, EmbeddedPostgres? embedded)
    {
        var logger = app.Services.GetService<ILoggerFactory>()?.CreateLogger("ScheduleSync.Hosting.ServerHost") ?? NullLogger.Instance;
        var addresses = app.Services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses is { Count: > 0 } bound
            ? string.Join(", ", bound) : "(not bound)";
        var config = app.Services.GetService<ConfigFileStore>()?.ConfigPath ?? "(none)";
        var database = embedded switch
        {
            null => "closed the database connections",
            _ when embedded.IsServerRunning => $"left embedded PostgreSQL in {embedded.DataDirectory} running (another schedsync process uses it)",
            _ => $"stopped embedded PostgreSQL in {embedded.DataDirectory}",
        };
        Log.Stopped(logger, addresses, config, database);
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "stopped: HTTP server on {Addresses}, file watcher on {ConfigPath}, NOTIFY listener, periodic sync, event feed; {Database}")]
        public static partial void Stopped(ILogger logger, string addresses, string configPath, string database);
    }
}

/// <summary>One line per message, without event ids or padding: <c>12:00:01.234 warn ScheduleSync.Sync.SyncRunner: …</c>.</summary>
internal sealed class PlainConsoleFormatter(IOptionsMonitor<ConsoleFormatterOptions> options) : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "schedsync";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (string.IsNullOrEmpty(message) && logEntry.Exception is null) return;
        var o = options.CurrentValue;
        var now = o.UseUtcTimestamp ? DateTimeOffset.UtcNow : DateTimeOffset.Now;
        var line = $"{now.ToString(o.TimestampFormat ?? "HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture)} {Level(logEntry.LogLevel)} {logEntry.Category}: {message}";
        textWriter.Write(line.TrimEnd());
        textWriter.Write('\n');
        if (logEntry.Exception is { } exception)
        {
            foreach (var exceptionLine in exception.ToString().Split('\n'))
                if (exceptionLine.TrimEnd() is { Length: > 0 } trimmed) textWriter.Write("    " + trimmed.TrimStart() + "\n");
        }
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => level.ToString().ToLowerInvariant(),
    };
}
