using System.Diagnostics;
using System.Diagnostics.Metrics;
using Npgsql;
using ScheduleSync.Events;

namespace ScheduleSync.Sync;

/// <summary>
/// The Meter and ActivitySource "ScheduleSync": what <c>/metrics</c> exposes (through OpenTelemetry's Prometheus
/// exporter) and what an OTLP exporter sends when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Instruments that count
/// (runs, durations; the event counters are in <see cref="EventTelemetry"/>) are recorded where things happen; the gauges read <see cref="SyncMetrics"/>.
/// </summary>
internal static class Telemetry
{
    public const string Name = EventTelemetry.MeterName;

    public static readonly Meter Meter = EventTelemetry.Meter;
    public static readonly ActivitySource Source = new(Name);

    /// <summary>Sync runs by trigger and outcome (completed, no_op, invalid_file, refused, failed).</summary>
    public static readonly Counter<long> SyncRuns = Meter.CreateCounter<long>("schedsync.sync.runs", "{run}", "Sync runs by trigger and outcome");

    public static readonly Histogram<double> SyncDuration = Meter.CreateHistogram<double>("schedsync.sync.duration", "s", "Duration of sync runs",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });

    /// <summary>Counts a run and closes its span.</summary>
    public static void RecordRun(Activity? activity, string trigger, SyncResult? result, TimeSpan elapsed, Exception? error = null)
    {
        var outcome = result is null ? "failed" : Outcome(result.Status);
        var tags = new TagList { { "trigger", trigger }, { "outcome", outcome } };
        SyncRuns.Add(1, tags);
        SyncDuration.Record(elapsed.TotalSeconds, tags);
        if (activity is null) return;
        activity.SetTag("schedsync.sync.outcome", outcome);
        if (result is not null)
        {
            activity.SetTag("schedsync.sync.inserts", result.Inserts);
            activity.SetTag("schedsync.sync.updates", result.Updates);
            activity.SetTag("schedsync.sync.deletes", result.Deletes);
            activity.SetTag("schedsync.sync.exports", result.Exports);
            activity.SetTag("schedsync.sync.new_conflicts", result.NewConflicts);
            activity.SetTag("schedsync.sync.open_conflicts", result.OpenConflicts);
        }
        if (error is not null) activity.SetStatus(ActivityStatusCode.Error, error.Message);
        else if (result is { Status: SyncStatus.InvalidFile or SyncStatus.Refused }) activity.SetStatus(ActivityStatusCode.Error, result.Error);
    }

    public static string Outcome(SyncStatus status) => status switch
    {
        SyncStatus.NoOp => "no_op",
        SyncStatus.Completed => "completed",
        SyncStatus.InvalidFile => "invalid_file",
        SyncStatus.Refused => "refused",
        _ => status.ToString().ToLowerInvariant(),
    };
}

/// <summary>
/// The server's state as gauges: tasks per side, open conflicts, pending exports, the last successful sync, whether the
/// file is valid, connected WebSocket clients. Refreshed after each sync run (one small query), read at scrape time.
/// Its own Meter (also named "ScheduleSync"), disposed with the server, so two servers in one process (tests) never
/// report each other's state.
/// </summary>
internal sealed partial class SyncMetrics : IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<SyncMetrics> _logger;
    private readonly Meter _meter = new(Telemetry.Name);
    private readonly Lock _gate = new();
    private long _databaseTasks, _fileTasks = -1, _openConflicts, _pendingExports, _lastSuccess, _fileValid = 1;

    private readonly string _replica;

    public SyncMetrics(NpgsqlDataSource dataSource, EventHub hub, ILogger<SyncMetrics> logger, SyncRunner runner)
    {
        _dataSource = dataSource;
        _replica = runner.Replica; // conflicts and pending exports are this replica's
        _logger = logger;
        _meter.CreateObservableGauge("schedsync.tasks", () =>
        {
            lock (_gate)
                return _fileTasks < 0
                    ? [new Measurement<long>(_databaseTasks, new KeyValuePair<string, object?>("side", "database"))]
                    : new[] { new Measurement<long>(_fileTasks, new KeyValuePair<string, object?>("side", "file")), new Measurement<long>(_databaseTasks, new KeyValuePair<string, object?>("side", "database")) };
        }, "{task}", "Tasks per side (file: valid tasks in the file after the last sync; database: rows in scheduled_tasks)");
        _meter.CreateObservableGauge("schedsync.conflicts.open", () => Read(ref _openConflicts), "{conflict}", "Open conflicts");
        _meter.CreateObservableGauge("schedsync.exports.pending", () => Read(ref _pendingExports), "{task}", "Tasks whose database version is not in the file yet (while the file is invalid, a run is refused or fails)");
        _meter.CreateObservableGauge("schedsync.sync.last_success", () => Read(ref _lastSuccess), "s", "Unix time of the last successful sync run (0: none yet)");
        _meter.CreateObservableGauge("schedsync.file.valid", () => Read(ref _fileValid), "", "1 when the config file is valid, 0 when it is not");
        _meter.CreateObservableGauge("schedsync.websocket.clients", () => (long)hub.SubscriberCount, "{client}", "Connected WebSocket event clients");
    }

    private long Read(ref long field)
    {
        lock (_gate) return field;
    }

    /// <summary>Whether the file's task count is still to be learnt (the start-up run was a no-op).</summary>
    public bool NeedsFileCount
    {
        get { lock (_gate) return _fileTasks < 0; }
    }

    /// <summary>After a run: updates the gauges (one query; a database that cannot answer leaves them as they were).</summary>
    /// <param name="fileTasks">Valid tasks in the file after the run, when known.</param>
    public async Task RecordAsync(SyncResult result, int? fileTasks, DateTimeOffset now, CancellationToken ct)
    {
        var success = result.Status is SyncStatus.Completed or SyncStatus.NoOp;
        lock (_gate)
        {
            if (success) _lastSuccess = now.ToUnixTimeSeconds();
            _fileValid = result.Status == SyncStatus.InvalidFile ? 0 : 1;
            if (fileTasks is { } count) _fileTasks = count;
        }
        try
        {
            await using var command = _dataSource.CreateCommand("""
                SELECT (SELECT count(*) FROM scheduled_tasks),
                       (SELECT count(*) FROM sync_conflicts WHERE status = 'open' AND replica = $1),
                       (SELECT count(*) FROM scheduled_tasks t WHERE NOT EXISTS
                            (SELECT 1 FROM sync_base b WHERE b.replica = $1 AND b.task_id = t.id AND b.content_hash IS NOT DISTINCT FROM t.content_hash)
                            AND NOT EXISTS (SELECT 1 FROM sync_conflicts c WHERE c.replica = $1 AND c.task_id = t.id AND c.status = 'open'))
                       + (SELECT count(*) FROM sync_base b WHERE b.replica = $1 AND NOT EXISTS (SELECT 1 FROM scheduled_tasks t WHERE t.id = b.task_id)
                            AND NOT EXISTS (SELECT 1 FROM sync_conflicts c WHERE c.replica = $1 AND c.task_id = b.task_id AND c.status = 'open'))
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = _replica });
            await using var reader = await command.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            var (tasks, open, differing) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
            // Database rows that differ from the base: changes the file has not received (a task frozen by an open
            // conflict waits for its resolution, not for a sync, and is not counted).
            lock (_gate) (_databaseTasks, _openConflicts, _pendingExports) = (tasks, open, differing);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            Log.RefreshFailed(_logger, e.Message);
        }
    }

    public void Dispose() => _meter.Dispose();

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Debug, Message = "metrics not refreshed: {Reason}")]
        public static partial void RefreshFailed(ILogger logger, string reason);
    }
}
