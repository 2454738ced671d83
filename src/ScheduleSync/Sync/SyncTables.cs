using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>
/// The SQL of the sync's own tables: <c>sync_state</c> (the lock, the counters, what a run remembers), <c>sync_base</c>,
/// <c>sync_conflicts</c>, <c>sync_runs</c> and <c>sync_exports</c>. The runner decides; this class reads and writes.
/// </summary>
internal sealed class SyncTables(NpgsqlDataSource dataSource)
{
    /// <summary>The advisory lock every sync and conflict resolution holds.</summary>
    public const long SyncLockKey = 0x5CED_5_1C_0002;

    /// <summary>
    /// Takes the sync lock and reads the sync state and the open-conflict count in one round trip. Each statement of
    /// the batch gets its own snapshot (read committed), so the state is read after the lock is held.
    /// </summary>
    public async Task<(long Counter, long? SyncedCounter, string? SyncedChecksum, int Open)> LockAndReadStateAsync(
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
    public async Task<(Dictionary<string, string?> Database, Dictionary<string, string> Base, HashSet<string> Open)> ReadHashesAsync(
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
    public async Task<Dictionary<string, TaskDefinition>> ReadBaseAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, CancellationToken ct, IReadOnlyCollection<string>? ids = null)
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

    public async Task WriteBaseAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> upserts, IReadOnlyList<string> deletes, CancellationToken ct)
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

    public async Task InsertConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> conflicts, long run, CancellationToken ct)
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

    public async Task CloseConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> closed, CancellationToken ct)
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
    public Task RefreshConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> frozen, CancellationToken ct, long? run = null) =>
        RefreshConflictVersionsAsync(connection, tx, [.. frozen.Select(a => (a.Id, a.Yaml, a.Database))], run, ct);

    public async Task<int> RefreshConflictVersionsAsync(NpgsqlConnection connection, NpgsqlTransaction tx,
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
    public async Task<long> StartRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, ChangeContext context, CancellationToken ct)
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

    public async Task<long> RecordFailedRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, string error, CancellationToken ct)
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
    public async Task FinishRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncResult result, CancellationToken ct)
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
    public static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, CancellationToken ct, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// What a run remembers for the next one, outside the three-way state: a mass deletion it refused (so an unrelated
    /// later change cannot slip it through) and the versions it is about to write to the file (so a crash between that
    /// write and the commit is recognised).
    /// </summary>
    public sealed record Memory(string? RefusedChecksum, HashSet<string> RefusedIds, HashSet<(string Id, string Hash)> Exports);

    public async Task<Memory> ReadMemoryAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT refused_file_checksum, refused_task_ids FROM sync_state WHERE id = 1"),
                new NpgsqlBatchCommand("SELECT task_id, content_hash FROM sync_exports"),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var checksum = reader.IsDBNull(0) ? null : reader.GetString(0);
        var ids = new HashSet<string>(reader.GetFieldValue<string[]>(1), StringComparer.Ordinal);
        await reader.NextResultAsync(ct);
        var exports = new HashSet<(string, string)>();
        while (await reader.ReadAsync(ct))
            exports.Add((reader.GetString(0), reader.GetString(1)));
        return new Memory(checksum, ids, exports);
    }

    /// <summary>The refused deletions stay refused while the file is the one they were refused for.</summary>
    public Task RememberRefusalAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string fileChecksum, SyncPlan plan, CancellationToken ct) =>
        ExecuteAsync(connection, tx, "UPDATE sync_state SET refused_file_checksum = $1, refused_task_ids = $2 WHERE id = 1", ct,
            fileChecksum, plan.Actions.Where(a => a.Deletes).Select(a => a.Id).ToArray());

    /// <summary>
    /// Records, committed before the file is written (own connection, outside the run's transaction), the versions
    /// this run exports. If the run dies after the write and before its commit, the next run finds the file holding
    /// one of them and knows it as its own export rather than as a person's edit. A merge is not recorded: its file
    /// side carries a change the database has not got yet.
    /// </summary>
    public async Task RecordExportsAsync(IReadOnlyList<SyncAction> exports, CancellationToken ct)
    {
        var written = exports.Where(a => a.Kind is SyncActionKind.ExportAdd or SyncActionKind.ExportUpdate && a.Result is not null).ToList();
        if (written.Count == 0) return;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand("""
            INSERT INTO sync_exports (task_id, content_hash) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = written.Select(a => a.Id).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = written.Select(a => a.Result!.ContentHash).ToArray() });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// A completed run: the refusal (if any) is over, the recorded exports are committed, the file's default zone is
    /// kept for plain-SQL inserts. While a row is invalid the run is not recorded as a full sync, so the next one looks
    /// again and reports it again (never a silent no-op).
    /// </summary>
    public async Task AfterRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncResult result, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("""
                    UPDATE sync_state SET refused_file_checksum = NULL, refused_task_ids = '{}', default_timezone = coalesce($1, default_timezone),
                        synced_change_counter = CASE WHEN $2 THEN NULL ELSE synced_change_counter END
                    WHERE id = 1
                    """)
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = (object?)result.DefaultTimezone ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
                        new NpgsqlParameter { Value = result.Error is not null },
                    },
                },
                new NpgsqlBatchCommand("DELETE FROM sync_exports"),
                new NpgsqlBatchCommand("UPDATE sync_runs SET error = $2 WHERE id = $1 AND $2 IS NOT NULL")
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = result.RunId!.Value },
                        new NpgsqlParameter { Value = (object?)result.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
                    },
                },
            },
        };
        await batch.ExecuteNonQueryAsync(ct);
    }
}
