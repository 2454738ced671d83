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
/// plans, applies the database changes, the new base and the conflicts in one transaction, writes the file, and only
/// then commits. A crash anywhere leaves a state the next run completes: exported tasks are already equal on both
/// sides (Y = D), imports not yet committed are still "changed in the file" (D = B ≠ Y).
/// </summary>
internal sealed partial class SyncRunner(NpgsqlDataSource dataSource, ConfigFileStore store, SyncOptions options, ILogger<SyncRunner>? logger = null)
{
    /// <summary>The advisory lock every sync and conflict resolution holds (also the lock a leader holds, SPEC §8).</summary>
    public const long SyncLockKey = 0x5CED_5_1C_0002;

    /// <summary>Environment variable naming a step at which the process kills itself (crash-ordering tests).</summary>
    public const string FaultVariable = "SCHEDSYNC_FAULT";

    private const int MaxAttempts = 5;
    private readonly ILogger _logger = logger ?? NullLogger<SyncRunner>.Instance;

    public ConfigFileStore Store => store;
    public NpgsqlDataSource DataSource => dataSource;

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
            for (var attempt = 1; ; attempt++)
            {
                var result = await TryRunAsync(trigger, force, allowMassDelete, source, ct, mode, replacement);
                if (result is not null)
                {
                    result = result with { Duration = clock.Elapsed };
                    LogRun(trigger, result);
                    Telemetry.RecordRun(activity, trigger, result, clock.Elapsed);
                    return result;
                }
                if (attempt == MaxAttempts)
                    throw new InvalidOperationException($"{store.ConfigPath} kept changing during the sync; gave up after {MaxAttempts} attempts");
                // The file changed between our read and our write (an editor takes no lock): plan again from the new content.
            }
        }
        catch (Exception e)
        {
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

    /// <summary>One attempt; null when the file changed under us and the attempt was rolled back.</summary>
    private async Task<SyncResult?> TryRunAsync(string trigger, bool force, bool allowMassDelete, string source, CancellationToken ct, SyncMode mode, FileSnapshot? replacement)
    {
        using var fileLock = store.Lock();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var (counter, syncedCounter, syncedChecksum, openCount) = await LockAndReadStateAsync(connection, tx, ct);
        var snapshot = store.Read();
        if (!force && replacement is null && syncedCounter == counter && syncedChecksum == snapshot.Checksum)
            return new SyncResult { Status = SyncStatus.NoOp, ChecksumBefore = snapshot.Checksum, ChecksumAfter = snapshot.Checksum, OpenConflicts = openCount };

        var (document, plan, open) = await PrepareAsync(connection, tx, replacement ?? snapshot, allowMassDelete, lockTable: true, ct, mode, trigger);
        if (plan is null)
        {
            var error = $"{store.ConfigPath} is invalid ({document.Problems.Count} problem(s)); nothing was synced in either direction";
            var runId = await RecordFailedRunAsync(connection, tx, trigger, snapshot.Checksum, error, ct);
            await SyncEvents.AppendAsync(connection, tx,
                [("sync_error", new { reason = error, trigger, problems = document.Problems.Select(p => p.Format(store.ConfigPath)).Take(50) })], ct);
            await tx.CommitAsync(ct);
            return new SyncResult { Status = SyncStatus.InvalidFile, RunId = runId, Error = error, Problems = document.Problems, ChecksumBefore = snapshot.Checksum, OpenConflicts = open.Count };
        }
        Fault("after-plan");
        if (plan.IsRefused)
        {
            var runId = await RecordFailedRunAsync(connection, tx, trigger, snapshot.Checksum, plan.Refusal!, ct);
            await RememberRefusalAsync(connection, tx, (replacement ?? snapshot).Checksum, plan, ct);
            await SyncEvents.AppendAsync(connection, tx, [("sync_error", new { reason = plan.Refusal, trigger })], ct);
            await tx.CommitAsync(ct);
            return new SyncResult { Status = SyncStatus.Refused, RunId = runId, Error = plan.Refusal, Plan = plan, ChecksumBefore = snapshot.Checksum, OpenConflicts = open.Count };
        }

        var run = await StartRunAsync(connection, tx, trigger, snapshot.Checksum, new ChangeContext(source, $"schedsync:{trigger}"), ct);

        var actions = plan.Actions;
        var large = Math.Max(document.Entries.Count, plan.Actions.Count) >= SyncProgress.LargeRun;
        Progress?.Report(new SyncProgress("writing", 0,
            actions.Count(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.Merge or SyncActionKind.ImportDelete),
            "rows", large));
        await TaskStore.UpsertManyAsync(connection, tx,
            [.. actions.Where(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.Merge).Select(a => a.Result!)],
            $"schedsync:{trigger}", ct);
        await TaskStore.DeleteManyAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.ImportDelete).Select(a => a.Id)], ct);
        await WriteBaseAsync(connection, tx,
            [.. actions.Where(a => a.Result is not null && a.Kind is not (SyncActionKind.InSync or SyncActionKind.Frozen)).Select(a => a.Result!)],
            [.. actions.Where(a => a.Kind is SyncActionKind.DropBase or SyncActionKind.ImportDelete or SyncActionKind.ExportRemove
                || a is { Kind: SyncActionKind.CloseConflict, Result: null }).Select(a => a.Id)],
            ct);
        var conflicts = actions.Where(a => a.Kind == SyncActionKind.Conflict).ToList();
        await InsertConflictsAsync(connection, tx, conflicts, run, ct);
        await CloseConflictsAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.CloseConflict)], ct);
        await RefreshConflictsAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.Frozen)], ct, run);
        Fault("after-db");

        var exports = actions.Where(a => a.ChangesFile).ToList();
        var checksumAfter = snapshot.Checksum;
        IReadOnlyList<string> warnings = [];
        if (exports.Count > 0 || replacement is not null)
        {
            Progress?.Report(exports.Count > 0 ? new SyncProgress("writing the file with", 0, exports.Count, "changed tasks", large) : new SyncProgress("writing the file", Large: large));
            var (text, written) = (document.Text, document);
            if (exports.Count > 0)
            {
                var (writtenText, writtenDocument, writeWarnings, failed) = ScheduleWriter.Write(document,
                    [.. exports.Where(a => a.Result is not null).Select(a => a.Result!)],
                    [.. exports.Where(a => a.Result is null).Select(a => a.Id)]);
                (text, written, warnings) = (writtenText, writtenDocument, writeWarnings);
                foreach (var warning in warnings) Log.WriteBackWarning(_logger, warning);
                if (failed.Count > 0)
                {
                    // An export the file could not take: its base goes back to what it was, so the next run sees the
                    // database change again (and the file's version is not mistaken for a newer edit and imported).
                    var skipped = exports.Where(a => failed.Contains(a.Id)).ToList();
                    await WriteBaseAsync(connection, tx, [.. skipped.Where(a => a.Base is not null).Select(a => a.Base!)], [.. skipped.Where(a => a.Base is null).Select(a => a.Id)], ct);
                    exports = [.. exports.Where(a => !failed.Contains(a.Id))];
                }
            }
            await RecordExportsAsync(exports, ct);
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
                    return null;
                case WriteResult.Written done:
                    checksumAfter = done.Checksum;
                    Remember(done.Checksum, written);
                    break;
            }
        }
        Fault("after-file");

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
            Error = InvalidRowsError(plan),
            FileTasks = document.ValidTasks.Count() + exports.Count(a => a.Kind == SyncActionKind.ExportAdd) - exports.Count(a => a.Kind == SyncActionKind.ExportRemove),
        };
        await SyncRunEvents.AppendAsync(connection, tx, trigger, plan, run, conflicts.Count, ct);
        // Rows that break a rule in the database (plain SQL) are not exported: said on every run until fixed. A layout the
        // writer could not edit in place was re-rendered: said as a warning.
        await SyncEvents.AppendAsync(connection, tx, [
            .. result.Error is null ? [] : new[] { ("sync_error", (object)new { reason = result.Error, trigger, invalid_task_ids = result.InvalidRows }) },
            .. warnings.Count == 0 ? [] : new[] { ("sync_warning", (object)new { reason = "the file was partly re-rendered in the canonical layout", trigger, warnings }) },
        ], ct);
        await FinishRunAsync(connection, tx, result, ct);
        await AfterRunAsync(connection, tx, result, ct);
        Progress?.Report(new SyncProgress("committing", Large: large));
        Fault("before-commit");
        await tx.CommitAsync(ct);
        return result;
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
        var (document, plan, _) = await PrepareAsync(connection, tx, snapshot ?? store.Read(), allowMassDelete, lockTable: false, ct, mode, trigger);
        await tx.RollbackAsync(ct);
        return (document, plan);
    }

    /// <summary>
    /// Reads both sides, the base and the open conflicts, and plans; the plan is null when the file is invalid.
    /// Hashes are compared first: only tasks whose file, database and base hashes are not all equal (or that have an
    /// open conflict, or a row changed by plain SQL) are loaded in full and planned, so one change costs little.
    /// </summary>
    private async Task<(ScheduleDocument Document, SyncPlan? Plan, HashSet<string> Open)> PrepareAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, FileSnapshot snapshot, bool allowMassDelete, bool lockTable, CancellationToken ct,
        SyncMode mode = SyncMode.Normal, string trigger = "cli")
    {
        var (databaseHashes, baseHashes, open) = await ReadHashesAsync(connection, tx, lockTable, ct);
        var memory = await ReadMemoryAsync(connection, tx, ct);
        var large = databaseHashes.Count >= SyncProgress.LargeRun || snapshot.Bytes.Length >= SyncProgress.LargeFileBytes;
        var document = Load(snapshot, Progress is { } progress ? (done, total) => progress.Report(
            new SyncProgress("validating", done, total, "tasks", large || total >= SyncProgress.LargeRun)) : null, large);
        if (document.HasFileProblems || (!document.IsValid && options.OnInvalid == InvalidTaskPolicy.RejectFile))
            return (document, null, open);

        var yaml = document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
        var yamlInvalid = document.InvalidTaskIds.ToHashSet(StringComparer.Ordinal);
        var differing = new HashSet<string>(open, StringComparer.Ordinal);
        differing.UnionWith(yamlInvalid);
        foreach (var (id, hash) in databaseHashes)
            if (hash is null || !yaml.TryGetValue(id, out var y) || y.ContentHash != hash || baseHashes.GetValueOrDefault(id) != hash)
                differing.Add(id);
        foreach (var (id, task) in yaml)
            if (!databaseHashes.ContainsKey(id) || baseHashes.GetValueOrDefault(id) != task.ContentHash)
                differing.Add(id);
        foreach (var id in baseHashes.Keys)
            if (!databaseHashes.ContainsKey(id) || !yaml.ContainsKey(id))
                differing.Add(id);

        large |= yaml.Count >= SyncProgress.LargeRun;
        Progress?.Report(new SyncProgress("planning", 0, differing.Count, "tasks", large));
        var stored = differing.Count == 0 ? [] : await TaskStore.ListAsync(connection, tx, ct, differing);
        var bases = differing.Count == 0 ? [] : await ReadBaseAsync(connection, tx, ct, differing);
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
        return (document, plan, open);
    }

    // The last document read or written, by checksum: when the file has not changed since, the next sync (an API
    // write's export, say) does not parse it again.
    private sealed record CachedDocument(string Checksum, ScheduleDocument Document);
    private volatile CachedDocument? _lastDocument;

    /// <summary>The parsed file for a snapshot, from the cache when the content is the same.</summary>
    public ScheduleDocument Load(FileSnapshot snapshot) => Load(snapshot, null, false);

    private ScheduleDocument Load(FileSnapshot snapshot, Action<int, int>? validating, bool large)
    {
        if (_lastDocument is { } last && last.Checksum == snapshot.Checksum && snapshot.Exists)
            return last.Document;
        if (snapshot.Exists)
        {
            Progress?.Report(new SyncProgress(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"parsing {Path.GetFileName(store.ConfigPath)} ({snapshot.Bytes.Length / 1024.0 / 1024.0:0.0} MB)"), Large: large));
        }

        var document = snapshot.Exists
            ? ScheduleLoader.Load(snapshot.Bytes.Span, store.ConfigPath, validating: validating)
            : ScheduleLoader.Parse("", store.ConfigPath);
        if (snapshot.Exists) Remember(snapshot.Checksum, document);
        return document;
    }

    public void Remember(string checksum, ScheduleDocument document) => _lastDocument = new CachedDocument(checksum, document);

    internal static void Fault(string step)
    {
        if (Environment.GetEnvironmentVariable(FaultVariable) == step)
            Process.GetCurrentProcess().Kill(); // SIGKILL: no finally blocks, no flush — a real crash.
    }

    /// <summary>
    /// Takes the sync lock and reads the sync state and the open-conflict count in one round trip. Each statement of
    /// the batch gets its own snapshot (read committed), so the state is read after the lock is held.
    /// </summary>
    private static async Task<(long Counter, long? SyncedCounter, string? SyncedChecksum, int Open)> LockAndReadStateAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                // PostgreSQL's JIT compiles the bulk statements anew each run, costing more than it saves (bench: 10k import).
                new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock($1), set_config('jit', 'off', true)") { Parameters = { new NpgsqlParameter { Value = SyncLockKey } } },
                new NpgsqlBatchCommand("SELECT change_counter, synced_change_counter, synced_file_checksum FROM sync_state WHERE id = 1"),
                new NpgsqlBatchCommand("SELECT count(*)::int FROM sync_conflicts WHERE status = 'open'"),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        await reader.NextResultAsync(ct);
        await reader.ReadAsync(ct);
        var state = (reader.GetInt64(0), reader.IsDBNull(1) ? (long?)null : reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2));
        await reader.NextResultAsync(ct);
        await reader.ReadAsync(ct);
        return (state.Item1, state.Item2, state.Item3, reader.GetInt32(0));
    }

    /// <summary>
    /// Every task's stored hash, every base hash and the ids with open conflicts, in one round trip; with
    /// <paramref name="lockTable"/>, writers first wait for the (short) run, so nothing changes between what the run
    /// reads and what it writes.
    /// </summary>
    private static async Task<(Dictionary<string, string?> Database, Dictionary<string, string> Base, HashSet<string> Open)> ReadHashesAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, bool lockTable, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx);
        if (lockTable) batch.BatchCommands.Add(new NpgsqlBatchCommand("LOCK TABLE scheduled_tasks IN SHARE ROW EXCLUSIVE MODE"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT id, content_hash FROM scheduled_tasks"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT task_id, content_hash FROM sync_base"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT task_id FROM sync_conflicts WHERE status = 'open'"));
        await using var reader = await batch.ExecuteReaderAsync(ct);
        var database = new Dictionary<string, string?>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
            database[reader.GetString(0)] = reader.IsDBNull(1) ? null : reader.GetString(1);
        await reader.NextResultAsync(ct);
        var bases = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
            bases[reader.GetString(0)] = reader.GetString(1);
        await reader.NextResultAsync(ct);
        var open = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
            open.Add(reader.GetString(0));
        return (database, bases, open);
    }

    /// <summary>The base of every task (or only of the given ids).</summary>
    internal static async Task<Dictionary<string, TaskDefinition>> ReadBaseAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, CancellationToken ct, IReadOnlyCollection<string>? ids = null)
    {
        await using var command = new NpgsqlCommand(
            "SELECT task_id, content::text, content_hash FROM sync_base" + (ids is null ? "" : " WHERE task_id = ANY($1)"), connection, tx);
        if (ids is not null) command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var bases = new Dictionary<string, TaskDefinition>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
        {
            var task = TaskJson.FromCanonical(reader.GetString(0), reader.GetString(1));
            task.AdoptStoredHash(reader.GetString(2));
            bases[reader.GetString(0)] = task;
        }
        return bases;
    }

    internal static async Task WriteBaseAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> upserts, IReadOnlyList<string> deletes, CancellationToken ct)
    {
        if (upserts.Count > 0)
        {
            await using var command = new NpgsqlCommand("""
                INSERT INTO sync_base (task_id, content, content_hash)
                SELECT u.id, u.content::jsonb, u.hash FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, content, hash)
                ON CONFLICT (task_id) DO UPDATE SET content = EXCLUDED.content, content_hash = EXCLUDED.content_hash, updated_at = now()
                """, connection, tx);
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(t => t.Id).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(TaskJson.ToCanonical).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(t => t.ContentHash).ToArray() });
            await command.ExecuteNonQueryAsync(ct);
        }
        if (deletes.Count > 0)
            await ExecuteAsync(connection, tx, "DELETE FROM sync_base WHERE task_id = ANY($1)", ct, (object)deletes.ToArray());
    }

    private static async Task InsertConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> conflicts, long run, CancellationToken ct)
    {
        if (conflicts.Count == 0) return;
        static string? Json(TaskDefinition? task) => task is null ? null : TaskJson.ToCanonical(task);
        await using var command = new NpgsqlCommand("""
            INSERT INTO sync_conflicts (task_id, base, yaml, db, sync_run_id)
            SELECT c.id, c.base::jsonb, c.yaml::jsonb, c.db::jsonb, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(id, base, yaml, db)
            ON CONFLICT (task_id) WHERE status = 'open' DO NOTHING
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => c.Id).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Base)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Yaml)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Database)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = run });
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task CloseConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> closed, CancellationToken ct)
    {
        if (closed.Count == 0) return;
        await ExecuteAsync(connection, tx, """
            UPDATE sync_conflicts SET status = 'resolved', choice = 'auto_closed', result = base_result.content, resolved_by = 'schedsync', resolved_at = now()
            FROM (SELECT task_id, content FROM sync_base) AS base_result
            WHERE sync_conflicts.status = 'open' AND sync_conflicts.task_id = ANY($1) AND base_result.task_id = sync_conflicts.task_id
            """, ct, (object)closed.Select(c => c.Id).ToArray());
        // A conflict closed because the task is gone from both sides has no base left.
        await ExecuteAsync(connection, tx,
            "UPDATE sync_conflicts SET status = 'resolved', choice = 'auto_closed', resolved_by = 'schedsync', resolved_at = now() WHERE status = 'open' AND task_id = ANY($1)",
            ct, (object)closed.Select(c => c.Id).ToArray());
    }

    /// <summary>
    /// A side of a frozen task changed again: the open conflict shows (and a resolution decides on) the newest versions,
    /// so no edit made while the conflict was open goes unseen. The file side's superseded version is audited (the
    /// database side's changes already are, by the trigger).
    /// </summary>
    private static Task RefreshConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> frozen, CancellationToken ct, long? run = null) =>
        RefreshConflictVersionsAsync(connection, tx, [.. frozen.Select(a => (a.Id, a.Yaml, a.Database))], run, ct);

    internal static async Task<int> RefreshConflictVersionsAsync(NpgsqlConnection connection, NpgsqlTransaction tx,
        IReadOnlyList<(string Id, TaskDefinition? Yaml, TaskDefinition? Database)> current, long? run, CancellationToken ct)
    {
        if (current.Count == 0) return 0;
        static string? Json(TaskDefinition? task) => task is null ? null : TaskJson.ToCanonical(task);
        await using var command = new NpgsqlCommand("""
            WITH changed AS (
                SELECT c.id, c.task_id, c.yaml AS old_yaml, f.yaml::jsonb AS new_yaml, f.db::jsonb AS new_db
                FROM sync_conflicts c JOIN unnest($1::text[], $2::text[], $3::text[]) AS f(id, yaml, db) ON c.task_id = f.id
                WHERE c.status = 'open' AND (c.yaml IS DISTINCT FROM f.yaml::jsonb OR c.db IS DISTINCT FROM f.db::jsonb)
            ), audited AS (
                INSERT INTO task_audit (task_id, action, source, actor, before, after, sync_run_id)
                SELECT task_id, 'update', 'yaml', 'schedsync:open-conflict', old_yaml, new_yaml, $4 FROM changed
                WHERE old_yaml IS DISTINCT FROM new_yaml
            )
            UPDATE sync_conflicts c SET yaml = changed.new_yaml, db = changed.new_db FROM changed WHERE c.id = changed.id
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = current.Select(c => c.Id).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = current.Select(c => Json(c.Yaml)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = current.Select(c => Json(c.Database)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)run ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        return await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Records the run and names it (source, actor, run id) for the audit trigger, in one statement.</summary>
    private static async Task<long> StartRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, ChangeContext context, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            WITH run AS (INSERT INTO sync_runs (trigger, checksum_before) VALUES ($1, $2) RETURNING id)
            SELECT id, set_config('schedsync.source', $3, true), set_config('schedsync.actor', $4, true), set_config('schedsync.sync_run', id::text, true)
            FROM run
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = trigger });
        command.Parameters.Add(new NpgsqlParameter { Value = checksum });
        command.Parameters.Add(new NpgsqlParameter { Value = context.Source });
        command.Parameters.Add(new NpgsqlParameter { Value = context.Actor });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return reader.GetInt64(0);
    }

    private static async Task<long> RecordFailedRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, string error, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            INSERT INTO sync_runs (trigger, checksum_before, checksum_after, finished_at, status, error)
            VALUES ($1, $2, $2, now(), 'failed', $3) RETURNING id
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = trigger });
        command.Parameters.Add(new NpgsqlParameter { Value = checksum });
        command.Parameters.Add(new NpgsqlParameter { Value = error });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Marks the run done and records what both sides now are, so an unchanged next run is a no-op.</summary>
    private static async Task FinishRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncResult result, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            UPDATE sync_runs SET finished_at = clock_timestamp(), status = 'completed', inserts = $2, updates = $3, deletes = $4, exports = $5, conflicts = $6, checksum_after = $7
            WHERE id = $1
            """, connection, tx);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter { Value = result.RunId!.Value });
        p.Add(new NpgsqlParameter { Value = result.Inserts });
        p.Add(new NpgsqlParameter { Value = result.Updates });
        p.Add(new NpgsqlParameter { Value = result.Deletes });
        p.Add(new NpgsqlParameter { Value = result.Exports });
        p.Add(new NpgsqlParameter { Value = result.NewConflicts });
        p.Add(new NpgsqlParameter { Value = result.ChecksumAfter! });
        await command.ExecuteNonQueryAsync(ct);
        // Read inside this transaction, the counter includes our own writes and nobody else's (the table is locked).
        await ExecuteAsync(connection, tx,
            "UPDATE sync_state SET synced_change_counter = change_counter, synced_file_checksum = $1, synced_at = now() WHERE id = 1",
            ct, result.ChecksumAfter!);
    }

    /// <summary>Runs a statement with positional parameters. An array meant as ONE parameter must be passed as (object)array.</summary>
    internal static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, CancellationToken ct, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        await command.ExecuteNonQueryAsync(ct);
    }

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
