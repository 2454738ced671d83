using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;
using ScheduleSync.Events;
using ScheduleSync.Files;

namespace ScheduleSync.Sync;

/// <summary>
/// The one place syncs run in the server: every trigger (start-up, watcher, API write, NOTIFY, periodic, POST /api/sync)
/// asks here, requests that arrive while a run is going are served together by the next run (group commit: a burst
/// of API writes costs one file write). Each run writes its events to the event log itself (see SyncEvents).
/// </summary>
internal sealed partial class SyncCoordinator(SyncRunner runner, ILogger<SyncCoordinator> logger, SyncMetrics? metrics = null, TimeProvider? time = null) : BackgroundService
{
    private sealed record Request(string Trigger, TaskCompletionSource<SyncResult>? Done, bool AllowMassDelete = false);

    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private static readonly TimeSpan NotifyCoalescing = TimeSpan.FromMilliseconds(3);

    /// <summary>
    /// How long a run waits for API writes that are committing to the database right now to ask for their export, so
    /// one run (one file write) serves them all instead of the first one alone (group commit). A write that is not
    /// there by then is served by the next run.
    /// </summary>
    internal static readonly TimeSpan WriteGathering = TimeSpan.FromMilliseconds(10);
    private int _writesInFlight;
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

    /// <summary>Completes when the start-up sync has run (the server is ready).</summary>
    public Task Started => _started.Task;

    public SyncRunner Runner => runner;

    /// <summary>Runs a sync that starts after this call and returns its result.</summary>
    /// <param name="allowMassDelete">POST /api/sync?allow_mass_delete=true: the run may delete past the guard.</param>
    public Task<SyncResult> RequestAsync(string trigger, CancellationToken ct = default, bool allowMassDelete = false)
    {
        var done = new TaskCompletionSource<SyncResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_requests.Writer.TryWrite(new Request(trigger, done, allowMassDelete)))
            done.SetException(new InvalidOperationException("the server is stopping"));
        return done.Task.WaitAsync(ct);
    }

    /// <summary>
    /// An API write says it has started (before its database transaction): a run about to start waits briefly for it
    /// to ask for its export (<see cref="WriteGathering"/>). Dispose the ticket when the write ends without asking.
    /// </summary>
    public WriteTicket BeginWrite()
    {
        Interlocked.Increment(ref _writesInFlight);
        return new WriteTicket(this);
    }

    /// <summary>An API write in flight; counted until it asks for its export or is disposed, whichever comes first.</summary>
    internal sealed class WriteTicket(SyncCoordinator owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) Interlocked.Decrement(ref owner._writesInFlight);
        }
    }

    /// <summary>Runs a sync that starts after this call (and after the ticket's write) and returns its result.</summary>
    public Task<SyncResult> RequestAsync(string trigger, WriteTicket ticket, CancellationToken ct = default)
    {
        var done = RequestAsync(trigger, ct);
        ticket.Dispose(); // the request is queued first, so the run never sees neither the write in flight nor its request
        return done;
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
                // Group commit: API writes committing now would otherwise wait for the run after this one.
                if (Volatile.Read(ref _writesInFlight) > 0)
                {
                    var gathering = Stopwatch.StartNew();
                    while (Volatile.Read(ref _writesInFlight) > 0 && gathering.Elapsed < WriteGathering)
                        await Task.Delay(1, stoppingToken);
                    while (_requests.Reader.TryRead(out var request)) batch.Add(request);
                }
                var trigger = batch.Any(r => r.Trigger == "api") ? "api" : batch[0].Trigger;
                await RunAndPublishAsync(trigger, batch, CancellationToken.None, batch.Any(r => r.AllowMassDelete));
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

    private async Task RunAndPublishAsync(string trigger, List<Request> batch, CancellationToken ct, bool allowMassDelete = false)
    {
        try
        {
            var result = await runner.RunAsync(trigger, allowMassDelete: allowMassDelete, ct: ct);
            if (result.ChecksumAfter is not null) LastFileChecksum = result.ChecksumAfter;
            else if (result.ChecksumBefore is not null) LastFileChecksum = result.ChecksumBefore;
            FileValid = result.Status != SyncStatus.InvalidFile;
            if (result.DefaultTimezone is not null) DefaultTimezone = result.DefaultTimezone;
            else if (trigger == "startup") DefaultTimezone = ReadDefaultTimezone();
            _retryDelay = FirstRetryDelay;
            if (metrics is not null) await RecordMetricsAsync(metrics, result);
            foreach (var request in batch) request.Done?.TrySetResult(result);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // What the file holds now is unknown to the sync: whatever the watcher sees next is a change.
            LastFileChecksum = null;
            if (e is NpgsqlException or TimeoutException or IOException or UnauthorizedAccessException or InvalidOperationException or FileStoreException)
                Log.SyncFailed(logger, trigger, e.Message); // expected while the database or the file is away: one line, no stack trace
            else
                Log.SyncCrashed(logger, e, trigger);
            await AppendErrorAsync(e.Message, trigger);
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

    /// <summary>Updates the gauges before the run's callers hear of it, so a scrape after a sync sees its effect.</summary>
    private async Task RecordMetricsAsync(SyncMetrics sink, SyncResult result)
    {
        var fileTasks = result.FileTasks;
        if (fileTasks is null && result.Status == SyncStatus.NoOp && sink.NeedsFileCount)
        {
            try
            {
                fileTasks = runner.Load(runner.Store.Read()).ValidTasks.Count(); // once, after a no-op start-up sync
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FileStoreException)
            {
            }
        }
        await sink.RecordAsync(result, fileTasks, (time ?? TimeProvider.System).GetUtcNow(), CancellationToken.None);
    }

    private string ReadDefaultTimezone()
    {
        var snapshot = runner.Store.Read();
        return snapshot.Exists ? runner.Load(snapshot).EffectiveDefaultTimezone : "UTC";
    }

    /// <summary>A run that failed before it could record anything: its <c>sync_error</c> goes to the event log on its own.</summary>
    private async Task AppendErrorAsync(string reason, string trigger)
    {
        try
        {
            await SyncEvents.AppendAsync(runner.DataSource, "sync_error", new { reason, trigger });
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            Log.EventFailed(logger, trigger, e.Message); // the database is down: the log line is all there can be
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger} failed, nothing was synced (retrying until a run succeeds): {Reason}")]
        public static partial void SyncFailed(ILogger logger, string trigger, string reason);

        [LoggerMessage(Level = LogLevel.Error, Message = "sync {Trigger} failed")]
        public static partial void SyncCrashed(ILogger logger, Exception exception, string trigger);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger}: could not record its sync_error event: {Reason}")]
        public static partial void EventFailed(ILogger logger, string trigger, string reason);

        [LoggerMessage(Level = LogLevel.Debug, Message = "sync {Trigger} will be retried in {DelayMs} ms")]
        public static partial void RetryScheduled(ILogger logger, string trigger, double delayMs);
    }
}
