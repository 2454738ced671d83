using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Events;
using ScheduleSync.Files;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Sync;

/// <summary>
/// Runs one three-way sync with the crash ordering of SPEC §4: under the file lock and a PostgreSQL advisory lock it
/// plans, writes the file, applies the database changes, the new base and the conflicts in one transaction, and only
/// then commits. A crash anywhere leaves a state the next run completes: exported tasks are already equal on both
/// sides (Y = D), imports not yet committed are still "changed in the file" (D = B ≠ Y). The database writes come after
/// the file's fsync because writing tasks takes the change counter's row lock, which every writer of tasks needs: held
/// from there to the commit only, it does not keep API writes and other replicas waiting for this file.
/// </summary>
internal sealed partial class SyncRunner(NpgsqlDataSource dataSource, ConfigFileStore store, SyncOptions options, ILogger<SyncRunner>? logger = null, ReplicaName? replica = null)
{
    private const int MaxAttempts = 5;
    /// <summary>Runs that found a row changed under them start over; under a storm of writes, give up after this many.</summary>
    private const int MaxReplans = 50;
    private readonly ILogger _logger = logger ?? NullLogger<SyncRunner>.Instance;
    private readonly ParsedDocumentCache _documents = new(store.ConfigPath);

    public ConfigFileStore Store => store;
    public NpgsqlDataSource DataSource => dataSource;

    /// <summary>This copy's name among several on one database (SPEC §8).</summary>
    public string Replica { get; } = replica?.Name ?? ReplicaName.Default(store.ConfigPath).Name;

    /// <summary>The SQL of this replica's sync tables (base, conflicts, runs, state, recorded exports).</summary>
    public SyncTables Tables => _tables ??= new SyncTables(dataSource, Replica);

    /// <summary>The options runs are made with (status and plan use the stored state only under the file-rejecting policy).</summary>
    public SyncOptions Options => options;

    private SyncTables? _tables;
    private volatile bool _replicaEnsured;

    /// <summary>Where runs report their phases (issue 14: a terminal, a server's log); null reports nothing.</summary>
    public IProgress<SyncProgress>? Progress { get; set; }

    /// <param name="replacement">Restore: the content to put in place of the file, planned in <paramref name="mode"/> and
    /// written together with the exports in one write (nothing is written when the plan is refused).</param>
    public async Task<SyncResult> RunAsync(string trigger, bool force = false, bool allowMassDelete = false, string source = "yaml", CancellationToken ct = default,
        SyncMode mode = SyncMode.Normal, FileSnapshot? replacement = null)
    {
        var clock = Stopwatch.StartNew();
        using var finished = new ProgressFinished(Progress);
        using var activity = Telemetry.Source.StartActivity("sync");
        activity?.SetTag("schedsync.sync.trigger", trigger);
        try
        {
            if (!_replicaEnsured)
            {
                await Tables.EnsureAsync(ct);
                _replicaEnsured = true;
            }
            for (int attempt = 1, replans = 0; ; )
            {
                var (result, rowsMoved) = await TryRunAsync(trigger, force, allowMassDelete, source, ct, mode, replacement);
                if (result is not null)
                {
                    result = result with { Duration = clock.Elapsed };
                    LogRun(trigger, result);
                    Telemetry.RecordRun(activity, trigger, result, clock.Elapsed);
                    return result;
                }
                // A row changed between our read and our write (another writer): plan again from what is there now.
                if (rowsMoved && ++replans < MaxReplans) continue;
                if (rowsMoved)
                    throw new InvalidOperationException($"the database kept changing during the sync of {store.ConfigPath}; gave up after {MaxReplans} attempts");
                if (++attempt > MaxAttempts)
                    throw new InvalidOperationException($"{store.ConfigPath} kept changing during the sync; gave up after {MaxAttempts} attempts");
                // The file changed between our read and our write (an editor takes no lock): plan again from the new content.
            }
        }
        catch (Exception e)
        {
            // The replica's row is gone (forgotten while this process runs): the retry creates it again, as a new replica.
            if (e is PostgresException { SqlState: PostgresErrorCodes.ForeignKeyViolation }) _replicaEnsured = false;
            Telemetry.RecordRun(activity, trigger, null, clock.Elapsed, e);
            throw;
        }
    }

    /// <summary>One line per run: a warning that says what when the run did not do what was asked, debug for a no-op.</summary>
    private void LogRun(string trigger, SyncResult result)
    {
        var ms = result.Duration.TotalMilliseconds;
        switch (result.Status)
        {
            case SyncStatus.NoOp:
                // Said once at start-up; after that a no-op (a NOTIFY for our own write, a periodic run) is debug only.
                if (trigger == "startup") Log.SyncStartupNoOp(_logger, ms);
                else Log.SyncNoOp(_logger, trigger, ms);
                return;
            case SyncStatus.InvalidFile:
                const int shown = 3;
                var problems = string.Join("; ", result.Problems.Take(shown).Select(p => p.Format(store.ConfigPath)));
                if (result.Problems.Count > shown) problems += $"; and {result.Problems.Count - shown} more (schedsync validate lists them all)";
                Log.SyncInvalidFile(_logger, trigger, store.ConfigPath, problems);
                return;
            case SyncStatus.Refused:
                Log.SyncRefused(_logger, trigger, result.Error ?? "mass deletion refused");
                return;
        }
        Log.SyncRun(_logger, trigger, result.Inserts, result.Updates, result.Deletes, result.Exports, result.OpenConflicts, ms);
        if (result.NewConflicts > 0)
        {
            var ids = result.Plan?.Actions.Where(a => a.Kind == SyncActionKind.Conflict).Select(a => a.Id) ?? [];
            Log.NewConflicts(_logger, trigger, result.NewConflicts, string.Join(", ", ids));
        }
        if (result.Error is not null) Log.InvalidRows(_logger, trigger, result.Error);
    }

    /// <summary>
    /// One attempt; null when the file changed under us, or (<c>RowsMoved</c>) a row the plan writes changed after it was
    /// read, and the attempt was rolled back.
    /// </summary>
    private async Task<(SyncResult? Result, bool RowsMoved)> TryRunAsync(string trigger, bool force, bool allowMassDelete, string source, CancellationToken ct, SyncMode mode, FileSnapshot? replacement)
    {
        using var fileLock = store.Lock();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var state = await Tables.LockAndReadStateAsync(connection, tx, ct);
        var (counter, syncedCounter, syncedChecksum) = (state.Counter, state.SyncedCounter, state.SyncedChecksum);
        var snapshot = store.Read();
        if (!force && replacement is null && syncedCounter == counter && syncedChecksum == snapshot.Checksum)
            return (new SyncResult { Status = SyncStatus.NoOp, ChecksumBefore = snapshot.Checksum, ChecksumAfter = snapshot.Checksum, OpenConflicts = state.Open }, false);

        // The view is this attempt's until it ends: put back as it stands after a commit or a rollback, dropped (the
        // next run reads everything) when the attempt fails in between.
        var (document, plan, open, versions, view) = await PrepareAsync(Tables, connection, tx, replacement ?? snapshot, allowMassDelete, ct, mode, trigger, state);
        if (plan is null)
        {
            var error = $"{store.ConfigPath} is invalid ({document.Problems.Count} problem(s)); nothing was synced in either direction";
            var runId = await Tables.RecordFailedRunAsync(connection, tx, trigger, snapshot.Checksum, error, ct);
            await SyncEvents.AppendAsync(connection, tx,
                [("sync_error", new { reason = error, trigger, problems = document.Problems.Select(p => p.Format(store.ConfigPath)).Take(50) })], ct);
            await tx.CommitAsync(ct);
            KeepView(view, runId);
            return (new SyncResult { Status = SyncStatus.InvalidFile, RunId = runId, Error = error, Problems = document.Problems, ChecksumBefore = snapshot.Checksum, OpenConflicts = open.Count }, false);
        }
        CrashHook.At("after-plan");
        if (plan.IsRefused)
        {
            var runId = await Tables.RecordFailedRunAsync(connection, tx, trigger, snapshot.Checksum, plan.Refusal!, ct);
            await Tables.RememberRefusalAsync(connection, tx, (replacement ?? snapshot).Checksum, plan, ct);
            await SyncEvents.AppendAsync(connection, tx, [("sync_error", new { reason = plan.Refusal, trigger })], ct);
            await tx.CommitAsync(ct);
            KeepView(view, runId);
            return (new SyncResult { Status = SyncStatus.Refused, RunId = runId, Error = plan.Refusal, Plan = plan, ChecksumBefore = snapshot.Checksum, OpenConflicts = open.Count }, false);
        }
        if (!force && replacement is null && syncedChecksum == snapshot.Checksum && !plan.Changes.Any())
        {
            // Only the database's counter moved and there is nothing to do (typically the NOTIFY of this replica's own
            // import, or a change another replica already brought here): no run is recorded, no event — after
            // quiescence, replicas stay quiet. A frozen task's newest database version still reaches its open conflict.
            await Tables.RefreshConflictsAsync(connection, tx, [.. plan.Actions.Where(a => a.Kind == SyncActionKind.Frozen)], ct);
            await Tables.RecordQuietRunAsync(connection, tx, counter, snapshot.Checksum, ct);
            await tx.CommitAsync(ct);
            KeepView(view, view?.LastRun);
            return (new SyncResult { Status = SyncStatus.NoOp, ChecksumBefore = snapshot.Checksum, ChecksumAfter = snapshot.Checksum, OpenConflicts = open.Count }, false);
        }

        // Rows the plan writes must still be the versions it was made from (no table lock: writers go on meanwhile).
        var imports = plan.Actions.Where(a => a.ChangesDatabase).ToList();
        if (!await SyncTables.CheckRowsAsync(connection, tx, imports.ToDictionary(a => a.Id, a => versions.TryGetValue(a.Id, out var v) ? v : (long?)null, StringComparer.Ordinal), ct))
        {
            await tx.RollbackAsync(ct);
            KeepView(view, view?.LastRun);
            return (null, true);
        }

        var run = await Tables.StartRunAsync(connection, tx, trigger, snapshot.Checksum, new ChangeContext(source, $"schedsync:{trigger}"), ct);

        var actions = plan.Actions;
        var large = Math.Max(document.Entries.Count, plan.Actions.Count) >= SyncProgress.LargeRun;

        // The file first, then the database writes, then the commit (SPEC §4 crash ordering: nothing is committed before
        // the file holds the exports). The task rows' writes take the database-wide change counter's row lock, which
        // every writer of tasks needs: taken after the file's fsync, it is held only until the commit, so API writes and
        // other replicas are not kept waiting for this file.
        var exports = actions.Where(a => a.ChangesFile).ToList();
        var checksumAfter = snapshot.Checksum;
        IReadOnlyList<string> warnings = [];
        var failed = new HashSet<string>(StringComparer.Ordinal);
        List<SyncAction> skipped = [];
        if (exports.Count > 0 || replacement is not null)
        {
            Progress?.Report(exports.Count > 0 ? new SyncProgress("writing the file with", 0, exports.Count, "changed tasks", large) : new SyncProgress("writing the file", Large: large));
            var (text, written) = (document.Text, document);
            if (exports.Count > 0)
            {
                var (writtenText, writtenDocument, writeWarnings, writeFailed) = ScheduleWriter.Write(document,
                    [.. exports.Where(a => a.Result is not null).Select(a => a.Result!)],
                    [.. exports.Where(a => a.Result is null).Select(a => a.Id)]);
                (text, written, warnings) = (writtenText, writtenDocument, writeWarnings);
                foreach (var warning in warnings) Log.WriteBackWarning(_logger, warning);
                failed.UnionWith(writeFailed);
            }
            skipped = [.. exports.Where(a => failed.Contains(a.Id))];
            exports = [.. exports.Where(a => !failed.Contains(a.Id))];
            await Tables.RecordExportsAsync(exports, ct);
            var write = (replacement, text == document.Text) switch
            {
                (null, true) => new WriteResult.Written(snapshot.Checksum, false),
                ({ } restored, true) => store.WriteLocked(snapshot.Checksum, restored.Bytes),
                _ => store.WriteLocked(snapshot.Checksum, text),
            };
            switch (write)
            {
                case WriteResult.ChangedMeanwhile:
                    await tx.RollbackAsync(ct);
                    KeepView(view, view?.LastRun);
                    return (null, false);
                case WriteResult.Written done:
                    checksumAfter = done.Checksum;
                    Remember(done.Checksum, written);
                    break;
            }
        }
        CrashHook.At("after-file");

        Progress?.Report(new SyncProgress("writing", 0,
            actions.Count(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.Merge or SyncActionKind.ImportDelete),
            "rows", large));
        // Updates first, then the new tasks, then deletions: the order (of audit rows, events, counter steps) one upsert
        // statement and one delete statement gave. The new tasks go by COPY with the triggers' work done set-based.
        var context = new ChangeContext(source, $"schedsync:{trigger}", run);
        await TaskStore.UpsertManyAsync(connection, tx,
            [.. actions.Where(a => a.Kind is SyncActionKind.ImportUpdate or SyncActionKind.Merge).Select(a => a.Result!)],
            context.Actor, ct);
        List<TaskDefinition> inserts = [.. actions.Where(a => a.Kind == SyncActionKind.ImportInsert).Select(a => a.Result!)];
        try
        {
            await TaskStore.InsertNewAsync(connection, tx, inserts, context, ct);
            await Tables.InsertBaseAsync(connection, tx, inserts, ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            // Another writer inserted one of them since the plan (or this view of the base was wrong: it is dropped).
            // Rolled back; the file may hold this run's exports already: the next attempt finds them equal on both sides.
            await tx.RollbackAsync(ct);
            return (null, true);
        }
        await TaskStore.DeleteManyAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.ImportDelete).Select(a => a.Id)], ct);
        var baseWrites = new List<(IReadOnlyList<TaskDefinition> Upserts, IReadOnlyList<string> Deletes)>
        {
            ([.. actions.Where(a => a.Result is not null && a.Kind is not (SyncActionKind.InSync or SyncActionKind.Frozen)).Select(a => a.Result!)],
             [.. actions.Where(a => a.Kind is SyncActionKind.DropBase or SyncActionKind.ImportDelete or SyncActionKind.ExportRemove
                 || a is { Kind: SyncActionKind.CloseConflict, Result: null }).Select(a => a.Id)]),
        };
        // An export the file could not take: its base goes back to what it was, so the next run sees the database change
        // again (and the file's version is not mistaken for a newer edit and imported).
        if (skipped.Count > 0)
            baseWrites.Add(([.. skipped.Where(a => a.Base is not null).Select(a => a.Base!)], [.. skipped.Where(a => a.Base is null).Select(a => a.Id)]));
        var inserted = inserts.Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var (upserts, deletes) in baseWrites)
            await Tables.WriteBaseAsync(connection, tx, [.. upserts.Where(t => !inserted.Contains(t.Id))], deletes, ct);
        var conflicts = actions.Where(a => a.Kind == SyncActionKind.Conflict).ToList();
        await Tables.InsertConflictsAsync(connection, tx, conflicts, run, ct);
        await Tables.CloseConflictsAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.CloseConflict)], ct);
        await Tables.RefreshConflictsAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.Frozen)], ct, run);
        CrashHook.At("after-db");

        var result = new SyncResult
        {
            Status = SyncStatus.Completed,
            RunId = run,
            Inserts = plan.Count(SyncActionKind.ImportInsert),
            Updates = plan.Count(SyncActionKind.ImportUpdate) + plan.Count(SyncActionKind.Merge),
            Deletes = plan.Count(SyncActionKind.ImportDelete),
            Exports = exports.Count,
            NewConflicts = conflicts.Count,
            OpenConflicts = open.Count + conflicts.Count - plan.Count(SyncActionKind.CloseConflict),
            ChecksumBefore = snapshot.Checksum,
            ChecksumAfter = checksumAfter,
            Plan = plan,
            DefaultTimezone = document.EffectiveDefaultTimezone,
            Warnings = warnings,
            Error = plan.InvalidRowsError(),
            FileTasks = document.ValidTasks.Count() + exports.Count(a => a.Kind == SyncActionKind.ExportAdd) - exports.Count(a => a.Kind == SyncActionKind.ExportRemove),
        };
        await SyncRunEvents.AppendAsync(connection, tx, trigger, plan, run, conflicts.Count, ct);
        // Rows that break a rule in the database (plain SQL) are not exported: said on every run until fixed. A layout the
        // writer could not edit in place was re-rendered: said as a warning.
        await SyncEvents.AppendAsync(connection, tx, [
            .. result.Error is null ? [] : new[] { ("sync_error", (object)new { reason = result.Error, trigger, invalid_task_ids = result.InvalidRows }) },
            .. warnings.Count == 0 ? [] : new[] { ("sync_warning", (object)new { reason = "the file was partly re-rendered in the canonical layout", trigger, warnings }) },
        ], ct);
        await Tables.FinishRunAsync(connection, tx, result, counter, ct);
        await Tables.AfterRunAsync(connection, tx, result, ct);
        Progress?.Report(new SyncProgress("committing", Large: large));
        CrashHook.At("before-commit");
        await tx.CommitAsync(ct);
        if (view is not null) view.Apply(baseWrites);
        KeepView(view, run);
        return (result, false);
    }

    /// <summary>What a sync would do now, without changing anything (no locks: a read-only snapshot).</summary>
    /// <param name="snapshot">The file as the caller already read it; read here when absent.</param>
    /// <param name="trigger">Who asks: the refusal message names the CLI flag for "cli", the API parameter otherwise.</param>
    public async Task<(ScheduleDocument Document, SyncPlan? Plan)> PlanAsync(bool allowMassDelete = false, FileSnapshot? snapshot = null, CancellationToken ct = default,
        SyncMode mode = SyncMode.Normal, string trigger = "cli")
    {
        using var finished = new ProgressFinished(Progress);
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        var tables = await Tables.ForReadingAsync(connection, tx, ct);
        var (document, plan, _, _, _) = await PrepareAsync(tables, connection, tx, snapshot ?? store.Read(), allowMassDelete, ct, mode, trigger);
        await tx.RollbackAsync(ct);
        return (document, plan);
    }

    /// <summary>
    /// Reads both sides, the base and the open conflicts, and plans; the plan is null when the file is invalid.
    /// Hashes are compared first: only tasks whose file, database and base hashes are not all equal (or that have an
    /// open conflict, or a row changed by plain SQL) are loaded in full and planned, so one change costs little.
    /// </summary>
    /// <param name="state">A run's state as read under its lock: the run follows its view of the database instead of reading
    /// every row and base entry (null: a plan reads everything).</param>
    private async Task<(ScheduleDocument Document, SyncPlan? Plan, HashSet<string> Open, Dictionary<string, long> Versions, SyncView? View)> PrepareAsync(
        SyncTables tables, NpgsqlConnection connection, NpgsqlTransaction tx, FileSnapshot snapshot, bool allowMassDelete, CancellationToken ct,
        SyncMode mode = SyncMode.Normal, string trigger = "cli", SyncTables.RunState? state = null)
    {
        var (databaseHashes, baseHashes, open, view) = await ReadHashesAsync(tables, connection, tx, state, ct);
        var memory = await tables.ReadMemoryAsync(connection, tx, ct);
        var large = databaseHashes.Count >= SyncProgress.LargeRun || snapshot.Bytes.Length >= SyncProgress.LargeFileBytes;
        var document = _documents.Load(snapshot,
            Progress is { } progress ? (done, total) => progress.Report(new SyncProgress("validating", done, total, "tasks", large || total >= SyncProgress.LargeRun)) : null,
            () => Progress?.Report(new SyncProgress(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"parsing {Path.GetFileName(store.ConfigPath)} ({snapshot.Bytes.Length / 1024.0 / 1024.0:0.0} MB)"), Large: large)));
        if (document.HasFileProblems || (!document.IsValid && options.OnInvalid == InvalidTaskPolicy.RejectFile))
            return (document, null, open, [], view);

        var yaml = document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
        var yamlInvalid = document.InvalidTaskIds.ToHashSet(StringComparer.Ordinal);
        var differing = SyncPlanner.Candidates(yaml.ToDictionary(kv => kv.Key, kv => kv.Value.ContentHash, StringComparer.Ordinal),
            databaseHashes, baseHashes, yamlInvalid, open);

        large |= yaml.Count >= SyncProgress.LargeRun;
        Progress?.Report(new SyncProgress("planning", 0, differing.Count, "tasks", large));
        var stored = differing.Count == 0 ? [] : await TaskStore.ListAsync(connection, tx, ct, differing);
        var bases = differing.Count == 0 ? [] : await tables.ReadBaseAsync(connection, tx, ct, differing);
        var inputs = new SyncInputs(
            yaml.Where(kv => differing.Contains(kv.Key)).ToDictionary(StringComparer.Ordinal),
            stored.Where(s => s.Task is not null).ToDictionary(s => s.Id, s => s.Task!, StringComparer.Ordinal),
            bases,
            yamlInvalid,
            stored.Where(s => s.Task is null).Select(s => s.Id).ToHashSet(StringComparer.Ordinal),
            open)
        {
            YamlTotal = yaml.Count + yamlInvalid.Count,
            DatabaseTotal = databaseHashes.Count,
            RefusedDeletions = memory.RefusedChecksum == snapshot.Checksum ? memory.RefusedIds : new HashSet<string>(),
            RecordedExports = memory.Exports,
            DatabaseProblems = stored.Where(s => s.Task is null).ToDictionary(s => s.Id, s => s.Problems, StringComparer.Ordinal),
        };
        inputs = mode switch
        {
            SyncMode.PreferDatabase => inputs.PreferDatabase(),
            SyncMode.PreferFile => inputs.PreferFile(),
            _ => inputs,
        };
        var plan = SyncPlanner.Plan(inputs, new SyncOptions
        {
            AllowHint = trigger == "cli" ? SyncOptions.CliAllowHint : SyncOptions.ApiAllowHint,
            AutoMerge = options.AutoMerge,
            OnInvalid = options.OnInvalid,
            MassDeleteShare = options.MassDeleteShare,
            MassDeleteMinimum = options.MassDeleteMinimum,
            AllowMassDelete = options.AllowMassDelete || allowMassDelete,
        });
        return (document, plan, open, stored.ToDictionary(s => s.Id, s => s.Version, StringComparer.Ordinal), view);
    }

    /// <summary>
    /// Every task's hash, this replica's base hashes and its open conflicts: for a run, from its view of the last run
    /// and what changed since (see <see cref="SyncView"/>), else read in full. The view is this attempt's until it ends.
    /// </summary>
    private async Task<(Dictionary<string, string?> Database, Dictionary<string, string> Base, HashSet<string> Open, SyncView? View)> ReadHashesAsync(
        SyncTables tables, NpgsqlConnection connection, NpgsqlTransaction tx, SyncTables.RunState? state, CancellationToken ct)
    {
        if (state is null)
        {
            var (all, allBases, allOpen) = await tables.ReadHashesAsync(connection, tx, ct);
            return (all, allBases, allOpen, null);
        }
        var view = Interlocked.Exchange(ref _view, null);
        if (view is not null && view.CanFollow(state))
        {
            var changes = await tables.ReadChangesAsync(connection, tx, view.EventSeq, state.EventSeq, ct);
            if (view.Follow(changes, state.EventSeq))
            {
                ViewReads++;
                return (view.Database, view.Base, changes.Open, view);
            }
        }
        var (database, bases, open) = await tables.ReadHashesAsync(connection, tx, ct);
        FullReads++;
        return (database, bases, open,
            new SyncView { Database = database, Base = bases, EventSeq = state.EventSeq, ReplicaCreated = state.ReplicaCreated, LastRun = state.LastRun });
    }

    /// <summary>The view as it stands after an attempt that committed or rolled back; <paramref name="lastRun"/> is the
    /// newest run of this replica now (this attempt's own, if it recorded one).</summary>
    private void KeepView(SyncView? view, long? lastRun)
    {
        if (view is null) return;
        view.LastRun = lastRun;
        _view = view;
    }

    private SyncView? _view;

    /// <summary>How many runs read only the changes since the last (<see cref="ViewReads"/>) or everything: for tests.</summary>
    internal int ViewReads { get; private set; }

    internal int FullReads { get; private set; }

    /// <summary>The parsed file for a snapshot, from the cache when the content is the same.</summary>
    public ScheduleDocument Load(FileSnapshot snapshot) => _documents.Load(snapshot);

    public void Remember(string checksum, ScheduleDocument document) => _documents.Remember(checksum, document);

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "write-back: {Warning}")]
        public static partial void WriteBackWarning(ILogger logger, string warning);

        [LoggerMessage(Level = LogLevel.Information, Message = "sync {Trigger}: {Inserts} inserted, {Updates} updated, {Deletes} deleted, {Exports} exported, {OpenConflicts} open conflicts, {ElapsedMs:F1} ms")]
        public static partial void SyncRun(ILogger logger, string trigger, int inserts, int updates, int deletes, int exports, int openConflicts, double elapsedMs);

        [LoggerMessage(Level = LogLevel.Information, Message = "sync startup: file and database already in sync, {ElapsedMs:F1} ms")]
        public static partial void SyncStartupNoOp(ILogger logger, double elapsedMs);

        [LoggerMessage(Level = LogLevel.Debug, Message = "sync {Trigger}: nothing changed, {ElapsedMs:F1} ms")]
        public static partial void SyncNoOp(ILogger logger, string trigger, double elapsedMs);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger}: {Path} is invalid, nothing was synced in either direction: {Problems}")]
        public static partial void SyncInvalidFile(ILogger logger, string trigger, string path, string problems);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger} refused, nothing was synced: {Reason}")]
        public static partial void SyncRefused(ILogger logger, string trigger, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger}: {Count} new conflict(s), tasks {TaskIds}: both sides keep their version until resolved (schedsync conflicts list, then schedsync conflicts resolve ID --keep yaml|db|merge, or POST /api/conflicts/ID/resolve)")]
        public static partial void NewConflicts(ILogger logger, string trigger, int count, string taskIds);

        [LoggerMessage(Level = LogLevel.Warning, Message = "sync {Trigger}: {Error}")]
        public static partial void InvalidRows(ILogger logger, string trigger, string error);
    }
}

/// <summary>Reports the end of a run (or plan) however it ends, so a terminal's progress line is cleared.</summary>
internal readonly struct ProgressFinished(IProgress<SyncProgress>? progress) : IDisposable
{
    public void Dispose() => progress?.Report(new SyncProgress(SyncProgress.FinishedPhase));
}
