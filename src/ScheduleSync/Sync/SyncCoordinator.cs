using System.Threading.Channels;
using Npgsql;
using ScheduleSync.Events;

namespace ScheduleSync.Sync;

/// <summary>Server settings (section "Server").</summary>
public sealed class ServerOptions
{
    public string Urls { get; set; } = "http://127.0.0.1:5080";
    public string? Token { get; set; }
    /// <summary>The safety-net sync interval.</summary>
    public TimeSpan PeriodicInterval { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>How long the watcher waits after a file event for the editor to finish.</summary>
    public TimeSpan WatchDebounce { get; set; } = TimeSpan.FromMilliseconds(50);
    /// <summary>Fallback poll of the file (stat, then checksum when it moved), for file systems without events.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;
}

/// <summary>
/// The one place syncs run in the server: every trigger (start-up, watcher, API write, NOTIFY, periodic, POST /api/sync)
/// asks here, requests that arrive while a run is going are served together by the next run (group commit: a burst
/// of API writes costs one file write), and each run's outcome is broadcast as events.
/// </summary>
internal sealed partial class SyncCoordinator(SyncRunner runner, EventHub events, ILogger<SyncCoordinator> logger) : BackgroundService
{
    private sealed record Request(string Trigger, TaskCompletionSource<SyncResult>? Done);

    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private static readonly TimeSpan NotifyCoalescing = TimeSpan.FromMilliseconds(3);
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// The checksum of the file as the last run left it (our own write, or what it read): a watcher event with this
    /// checksum is nothing new. Null after a failed run, which may not have seen the file at all: then any content
    /// the watcher finds — even the same bytes as before, restored — is synced.
    /// </summary>
    public string? LastFileChecksum { get; private set; }

    // Failed runs are retried with backoff until one succeeds (SPEC §4): an export never waits for the periodic sync.
    internal static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);
    internal static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);
    private readonly CancellationTokenSource _stopping = new();
    private TimeSpan _retryDelay = FirstRetryDelay;
    private int _retryPending;

    public bool FileValid { get; private set; } = true;

    /// <summary>The file's <c>defaults.timezone</c> as last read (UTC when it has none): the default for API-created tasks.</summary>
    public string DefaultTimezone { get; private set; } = "UTC";

    public SyncResult? LastResult { get; private set; }

    /// <summary>Completes when the start-up sync has run (the server is ready).</summary>
    public Task Started => _started.Task;

    public SyncRunner Runner => runner;

    /// <summary>Runs a sync that starts after this call and returns its result.</summary>
    public Task<SyncResult> RequestAsync(string trigger, CancellationToken ct = default)
    {
        var done = new TaskCompletionSource<SyncResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_requests.Writer.TryWrite(new Request(trigger, done)))
            done.SetException(new InvalidOperationException("the server is stopping"));
        return done.Task.WaitAsync(ct);
    }

    /// <summary>Asks for a sync without waiting for it.</summary>
    public void Trigger(string trigger) => _requests.Writer.TryWrite(new Request(trigger, null));

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // The start-up sync completes before the server accepts requests (hosted services start before Kestrel).
        await RunAndPublishAsync("startup", [], cancellationToken);
        _started.TrySetResult();
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _requests.Writer.TryComplete();
        await _stopping.CancelAsync();
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The running sync finishes on shutdown: runs are not cancelled mid-way, the queue just stops being read.
        var batch = new List<Request>();
        try
        {
            while (await _requests.Reader.WaitToReadAsync(stoppingToken))
            {
                // An API write's NOTIFY arrives just before the API asks for its export: wait a moment so both are
                // served by one run instead of two.
                if (_requests.Reader.TryPeek(out var first) && first.Trigger == "notify")
                    await Task.Delay(NotifyCoalescing, stoppingToken);
                batch.Clear();
                while (_requests.Reader.TryRead(out var request)) batch.Add(request);
                if (batch.Count == 0) continue;
                var trigger = batch.Any(r => r.Trigger == "api") ? "api" : batch[0].Trigger;
                await RunAndPublishAsync(trigger, batch, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        foreach (var request in batch.Concat(Drain()))
            request.Done?.TrySetCanceled(CancellationToken.None);
    }

    private IEnumerable<Request> Drain()
    {
        while (_requests.Reader.TryRead(out var request)) yield return request;
    }

    private async Task RunAndPublishAsync(string trigger, List<Request> batch, CancellationToken ct)
    {
        try
        {
            var result = await runner.RunAsync(trigger, ct: ct);
            LastResult = result;
            if (result.ChecksumAfter is not null) LastFileChecksum = result.ChecksumAfter;
            else if (result.ChecksumBefore is not null) LastFileChecksum = result.ChecksumBefore;
            FileValid = result.Status != SyncStatus.InvalidFile;
            if (result.DefaultTimezone is not null) DefaultTimezone = result.DefaultTimezone;
            else if (trigger == "startup") DefaultTimezone = ReadDefaultTimezone();
            _retryDelay = FirstRetryDelay;
            await PublishAsync(trigger, result, ct);
            foreach (var request in batch) request.Done?.TrySetResult(result);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // What the file holds now is unknown to the sync: whatever the watcher sees next is a change.
            LastFileChecksum = null;
            Log.SyncFailed(logger, e, trigger);
            events.Publish("sync_error", new { reason = e.Message, trigger });
            foreach (var request in batch) request.Done?.TrySetException(e);
            ScheduleRetry(trigger);
        }
    }

    /// <summary>
    /// Asks for another run after a failed one (lock held too long, the file briefly missing or not a regular file,
    /// the database unreachable): after 100 ms, doubling up to 5 s while runs keep failing, back to 100 ms after a
    /// success. One retry is pending at a time; any run in between that succeeds makes it a no-op.
    /// </summary>
    private void ScheduleRetry(string trigger)
    {
        if (Interlocked.Exchange(ref _retryPending, 1) == 1) return;
        var delay = _retryDelay;
        _retryDelay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
        Log.RetryScheduled(logger, trigger, delay.TotalMilliseconds);
        _ = Task.Delay(delay, _stopping.Token).ContinueWith(wait =>
        {
            Volatile.Write(ref _retryPending, 0);
            if (!wait.IsCanceled) Trigger(trigger);
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    private async Task PublishAsync(string trigger, SyncResult result, CancellationToken ct)
    {
        switch (result.Status)
        {
            case SyncStatus.InvalidFile:
                events.Publish("sync_error", new
                {
                    reason = result.Error,
                    trigger,
                    problems = result.Problems.Select(p => p.Format(runner.Store.ConfigPath)).Take(50),
                });
                return;
            case SyncStatus.Refused:
                events.Publish("sync_error", new { reason = result.Error, trigger });
                return;
            case SyncStatus.NoOp:
                return;
        }
        if (result.Plan is { } plan)
        {
            var changes = plan.Actions.Where(a => a.ChangesDatabase || a.ChangesFile).ToList();
            if (changes.Count > 0)
            {
                var versions = await ReadVersionsAsync([.. changes.Select(a => a.Id)], ct);
                // Announced by where each change came from, not by what woke the sync up.
                foreach (var group in changes.GroupBy(a => SourceOf(a, trigger)))
                    events.Publish("schedule_config_updated", new { source = group.Key, task_ids = group.Select(a => a.Id).ToList(), sync_run_id = result.RunId });
                foreach (var action in changes)
                {
                    var kind = action.Result is null ? "deleted" : action.Kind is SyncActionKind.ImportInsert or SyncActionKind.ExportAdd ? "created" : "updated";
                    AnnounceTaskChanged(action.Id, kind, versions.TryGetValue(action.Id, out var v) ? v : null, SourceOf(action, trigger));
                }
            }
        }
        if (result.NewConflicts > 0 && result.RunId is { } run)
        {
            await using var command = runner.DataSource.CreateCommand("SELECT id, task_id FROM sync_conflicts WHERE sync_run_id = $1 ORDER BY id");
            command.Parameters.Add(new NpgsqlParameter { Value = run });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                events.Publish("sync_conflict_detected", new { conflict_id = reader.GetInt64(0), task_id = reader.GetString(1) });
        }
    }

    private string ReadDefaultTimezone()
    {
        var snapshot = runner.Store.Read();
        return snapshot.Exists ? runner.Load(snapshot).EffectiveDefaultTimezone : "UTC";
    }

    /// <summary>Where a change came from: the file for imports; for exports the API when an API write asked for the run, else the database.</summary>
    private static string SourceOf(SyncAction action, string trigger) => action.Kind switch
    {
        SyncActionKind.Merge => "merge",
        _ when action.ChangesDatabase => "yaml",
        _ => trigger == "api" ? "api" : "database",
    };

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Action, long? Version)> _announced = new(StringComparer.Ordinal);

    /// <summary>
    /// Publishes <c>task_changed</c> once per change: the API handler announces its write, and the sync that exports
    /// it would announce it again.
    /// </summary>
    public void AnnounceTaskChanged(string id, string action, long? version, string source)
    {
        var last = _announced.GetValueOrDefault(id);
        var duplicate = last.Action == action && (version is null || version == last.Version);
        var older = version is not null && last.Version is { } seen && version < seen;
        if (duplicate || older) return;
        _announced[id] = (action, version ?? last.Version);
        events.Publish("task_changed", new { id, action, version, source });
    }

    private async Task<Dictionary<string, long>> ReadVersionsAsync(IReadOnlyList<string> ids, CancellationToken ct)
    {
        await using var command = runner.DataSource.CreateCommand("SELECT id, version FROM scheduled_tasks WHERE id = ANY($1)");
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct)) versions[reader.GetString(0)] = reader.GetInt64(1);
        return versions;
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Error, Message = "sync {Trigger} failed")]
        public static partial void SyncFailed(ILogger logger, Exception exception, string trigger);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger} will be retried in {DelayMs} ms")]
        public static partial void RetryScheduled(ILogger logger, string trigger, double delayMs);
    }
}
