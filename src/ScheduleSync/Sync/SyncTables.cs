using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>
/// The SQL of the sync's own tables, all of them per replica (SPEC §8): <c>sync_replicas</c> (the sync state: counter
/// seen, file checksum, refused deletions), <c>sync_base</c>, <c>sync_conflicts</c>, <c>sync_runs</c> and
/// <c>sync_exports</c>. The runner decides; this class reads and writes. <see cref="Replica"/> is the key of every row.
/// </summary>
internal sealed class SyncTables(NpgsqlDataSource dataSource, string replica)
{
    /// <summary>The name of the replica whose rows this reads and writes.</summary>
    public string Replica => replica;

    /// <summary>The replica that holds what one instance synced before replicas existed, until a replica adopts it.</summary>
    public const string Legacy = "";

    /// <summary>The same tables under another key (a read before this replica adopted the legacy rows).</summary>
    private SyncTables WithKey(string key) => key == replica ? this : new SyncTables(dataSource, key);

    /// <summary>
    /// Creates this replica's row, committed on its own (rows written on other connections during a run — the recorded
    /// exports — reference it). The first replica to get here after the upgrade adopts the legacy rows: renaming the
    /// legacy replica renames the key of its base, conflicts and recorded exports (ON UPDATE CASCADE), so nothing is
    /// imported or exported again. Two replicas starting at once: the row lock lets one rename, the other finds no
    /// legacy row left and starts fresh.
    /// </summary>
    public async Task EnsureAsync(CancellationToken ct)
    {
        await using var batch = dataSource.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("""
            UPDATE sync_replicas SET name = $1 WHERE name = '' AND NOT EXISTS (SELECT 1 FROM sync_replicas WHERE name = $1)
            """) { Parameters = { new NpgsqlParameter { Value = replica } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("UPDATE sync_runs SET replica = $1 WHERE replica = '' AND EXISTS (SELECT 1 FROM sync_replicas WHERE name = $1) AND NOT EXISTS (SELECT 1 FROM sync_replicas WHERE name = '')")
            { Parameters = { new NpgsqlParameter { Value = replica } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO sync_replicas (name) VALUES ($1) ON CONFLICT DO NOTHING")
            { Parameters = { new NpgsqlParameter { Value = replica } } });
        await batch.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// The tables a read (plan, status, conflicts list) uses without writing anything: this replica's, or the legacy
    /// rows while no replica has adopted them and this one has no row yet (its first sync will adopt them).
    /// </summary>
    public async Task<SyncTables> ForReadingAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT coalesce((SELECT name FROM sync_replicas WHERE name = $1), (SELECT name FROM sync_replicas WHERE name = ''), $1)", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        return WithKey((string)(await command.ExecuteScalarAsync(ct))!);
    }

    /// <summary>Takes this replica's advisory lock (runs and resolutions of one replica one at a time; other replicas go on).</summary>
    public static NpgsqlBatchCommand LockCommand(string replica) =>
        new("SELECT pg_advisory_xact_lock(hashtextextended('schedsync:replica:' || $1, 0))") { Parameters = { new NpgsqlParameter { Value = replica } } };

    /// <summary>
    /// Takes this replica's lock and reads the database's change counter, the replica's sync state and its open-conflict
    /// count in one round trip. Each statement of the batch gets its own snapshot (read committed), so the state is read
    /// after the lock is held.
    /// </summary>
    public async Task<RunState> LockAndReadStateAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                // PostgreSQL's JIT compiles the bulk statements anew each run, costing more than it saves (bench: 10k import).
                LockCommand(replica),
                new NpgsqlBatchCommand("SELECT set_config('jit', 'off', true)"),
                new NpgsqlBatchCommand("""
                    SELECT s.change_counter, r.synced_change_counter, r.synced_file_checksum, s.event_seq, r.created_at,
                        (SELECT max(id) FROM sync_runs WHERE replica = $1)
                    FROM sync_state s LEFT JOIN sync_replicas r ON r.name = $1 WHERE s.id = 1
                    """) { Parameters = { new NpgsqlParameter { Value = replica } } },
                new NpgsqlBatchCommand("SELECT count(*)::int FROM sync_conflicts WHERE status = 'open' AND replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } },
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        await reader.NextResultAsync(ct);
        await reader.NextResultAsync(ct);
        await reader.ReadAsync(ct);
        var state = new RunState(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2), 0,
            reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTime>(4), reader.IsDBNull(5) ? null : reader.GetInt64(5));
        await reader.NextResultAsync(ct);
        await reader.ReadAsync(ct);
        return state with { Open = reader.GetInt32(0) };
    }

    /// <summary>What a run reads first, under the replica's lock.</summary>
    /// <param name="Counter">The database's change counter.</param>
    /// <param name="EventSeq">The newest event number: every change of a task up to it has its <c>task_changed</c> event.</param>
    /// <param name="ReplicaCreated">When this replica's row was made (null: none yet); another value means it was forgotten and made again.</param>
    /// <param name="LastRun">The newest run recorded for this replica (by any process).</param>
    public sealed record RunState(long Counter, long? SyncedCounter, string? SyncedChecksum, int Open, long EventSeq, DateTime? ReplicaCreated, long? LastRun);

    /// <summary>
    /// What changed since event <paramref name="after"/> up to <paramref name="upTo"/>, in one round trip: how many events
    /// the log still holds in that range (fewer than the range: pruned, the caller reads everything instead), the current
    /// hash of each task a <c>task_changed</c> event names (absent: deleted), this replica's base hash of each task a
    /// conflict resolution decided (it writes the base), and the open conflicts.
    /// </summary>
    public async Task<Changes> ReadChangesAsync(NpgsqlConnection connection, NpgsqlTransaction tx, long after, long upTo, CancellationToken ct)
    {
        // One statement, one snapshot: a prune committed between counting the events and reading them cannot go unseen.
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("""
                    WITH e AS MATERIALIZED (SELECT type, payload FROM sync_events WHERE seq > $1 AND seq <= $2),
                         t AS (SELECT DISTINCT payload->>'id' AS id FROM e WHERE type = 'task_changed'),
                         r AS (SELECT DISTINCT payload->>'task_id' AS id FROM e WHERE type = 'sync_conflict_resolved')
                    SELECT 0, NULL::text, NULL::text, false, (SELECT count(*) FROM e)
                    UNION ALL
                    SELECT 1, t.id, s.content_hash, s.id IS NOT NULL, 0 FROM t LEFT JOIN scheduled_tasks s ON s.id = t.id WHERE t.id IS NOT NULL
                    UNION ALL
                    SELECT 2, r.id, b.content_hash, b.task_id IS NOT NULL, 0 FROM r LEFT JOIN sync_base b ON b.replica = $3 AND b.task_id = r.id WHERE r.id IS NOT NULL
                    """)
                {
                    Parameters = { new NpgsqlParameter { Value = after }, new NpgsqlParameter { Value = upTo }, new NpgsqlParameter { Value = replica } },
                },
                new NpgsqlBatchCommand("SELECT task_id FROM sync_conflicts WHERE status = 'open' AND replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } },
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        long held = 0;
        var tasks = new List<(string Id, string? Hash, bool Exists)>();
        var bases = new List<(string Id, string? Hash)>();
        while (await reader.ReadAsync(ct))
        {
            switch (reader.GetInt32(0))
            {
                case 0: held = reader.GetInt64(4); break;
                case 1: tasks.Add((reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetBoolean(3))); break;
                default: bases.Add((reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2))); break;
            }
        }
        await reader.NextResultAsync(ct);
        var open = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
            open.Add(reader.GetString(0));
        return new Changes(held, tasks, bases, open);
    }

    public sealed record Changes(long EventsHeld, List<(string Id, string? Hash, bool Exists)> Tasks, List<(string Id, string? Hash)> Bases, HashSet<string> Open);

    /// <summary>
    /// Every task's stored hash, this replica's base hashes and its ids with open conflicts, in one round trip. No table
    /// lock: writers (the API, other replicas, plain SQL) go on while a run reads and writes the file; the run checks the
    /// rows it writes before it writes them (<see cref="CheckRowsAsync"/>).
    /// </summary>
    public async Task<(Dictionary<string, string?> Database, Dictionary<string, string> Base, HashSet<string> Open)> ReadHashesAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT id, content_hash FROM scheduled_tasks"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT task_id, content_hash FROM sync_base WHERE replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT task_id FROM sync_conflicts WHERE status = 'open' AND replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } });
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
            "SELECT task_id, content::text, content_hash FROM sync_base WHERE replica = $1" + (ids is null ? "" : " AND task_id = ANY($2)"), connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
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
                INSERT INTO sync_base (replica, task_id, content, content_hash)
                SELECT $4, u.id, u.content::jsonb, u.hash FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, content, hash)
                ON CONFLICT (replica, task_id) DO UPDATE SET content = EXCLUDED.content, content_hash = EXCLUDED.content_hash, updated_at = now()
                """, connection, tx);
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(t => t.Id).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(TaskJson.ToCanonical).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = upserts.Select(t => t.ContentHash).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = replica });
            await command.ExecuteNonQueryAsync(ct);
        }
        if (deletes.Count > 0)
            await ExecuteAsync(connection, tx, "DELETE FROM sync_base WHERE replica = $2 AND task_id = ANY($1)", ct, deletes.ToArray(), replica);
    }

    /// <summary>Base rows for tasks that have none (a sync's inserts), by binary COPY: no conflict handling needed.</summary>
    public async Task InsertBaseAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> tasks, CancellationToken ct)
    {
        if (tasks.Count == 0) return;
        await using var copy = await connection.BeginBinaryImportAsync("COPY sync_base (replica, task_id, content, content_hash) FROM STDIN (FORMAT BINARY)", ct);
        foreach (var task in tasks)
        {
            copy.StartRow();
            copy.Write(replica, NpgsqlTypes.NpgsqlDbType.Text);
            copy.Write(task.Id, NpgsqlTypes.NpgsqlDbType.Text);
            copy.Write(TaskJson.ToCanonical(task), NpgsqlTypes.NpgsqlDbType.Jsonb);
            copy.Write(task.ContentHash, NpgsqlTypes.NpgsqlDbType.Text);
        }
        await copy.CompleteAsync(ct);
    }

    public async Task InsertConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> conflicts, long run, CancellationToken ct)
    {
        if (conflicts.Count == 0) return;
        static string? Json(TaskDefinition? task) => task is null ? null : TaskJson.ToCanonical(task);
        await using var command = new NpgsqlCommand("""
            INSERT INTO sync_conflicts (replica, task_id, base, yaml, db, sync_run_id)
            SELECT $6, c.id, c.base::jsonb, c.yaml::jsonb, c.db::jsonb, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(id, base, yaml, db)
            ON CONFLICT (replica, task_id) WHERE status = 'open' DO NOTHING
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => c.Id).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Base)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Yaml)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = conflicts.Select(c => Json(c.Database)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = run });
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        await command.ExecuteNonQueryAsync(ct);
    }

    public async Task CloseConflictsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<SyncAction> closed, CancellationToken ct)
    {
        if (closed.Count == 0) return;
        await ExecuteAsync(connection, tx, """
            UPDATE sync_conflicts SET status = 'resolved', choice = 'auto_closed', result = base_result.content, resolved_by = 'schedsync', resolved_at = now()
            FROM (SELECT task_id, content FROM sync_base WHERE replica = $2) AS base_result
            WHERE sync_conflicts.status = 'open' AND sync_conflicts.replica = $2 AND sync_conflicts.task_id = ANY($1) AND base_result.task_id = sync_conflicts.task_id
            """, ct, closed.Select(c => c.Id).ToArray(), replica);
        // A conflict closed because the task is gone from both sides has no base left.
        await ExecuteAsync(connection, tx,
            "UPDATE sync_conflicts SET status = 'resolved', choice = 'auto_closed', resolved_by = 'schedsync', resolved_at = now() WHERE status = 'open' AND replica = $2 AND task_id = ANY($1)",
            ct, closed.Select(c => c.Id).ToArray(), replica);
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
                WHERE c.status = 'open' AND c.replica = $5 AND (c.yaml IS DISTINCT FROM f.yaml::jsonb OR c.db IS DISTINCT FROM f.db::jsonb)
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
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        return await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Records the run and names it (source, actor, run id) for the audit trigger, in one statement.</summary>
    public async Task<long> StartRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, ChangeContext context, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            WITH run AS (INSERT INTO sync_runs (trigger, checksum_before, replica) VALUES ($1, $2, $5) RETURNING id)
            SELECT id, set_config('schedsync.source', $3, true), set_config('schedsync.actor', $4, true), set_config('schedsync.sync_run', id::text, true)
            FROM run
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = trigger });
        command.Parameters.Add(new NpgsqlParameter { Value = checksum });
        command.Parameters.Add(new NpgsqlParameter { Value = context.Source });
        command.Parameters.Add(new NpgsqlParameter { Value = context.Actor });
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return reader.GetInt64(0);
    }

    public async Task<long> RecordFailedRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, string checksum, string error, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            INSERT INTO sync_runs (trigger, checksum_before, checksum_after, finished_at, status, error, replica)
            VALUES ($1, $2, $2, now(), 'failed', $3, $4) RETURNING id
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = trigger });
        command.Parameters.Add(new NpgsqlParameter { Value = checksum });
        command.Parameters.Add(new NpgsqlParameter { Value = error });
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Marks the run done and records what both sides now are, so an unchanged next run is a no-op.</summary>
    /// <param name="counterSeen">The change counter read before the run read the database: a change committed after that
    /// (by the API, another replica, plain SQL) moved it further, so the next run looks again.</param>
    public async Task FinishRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncResult result, long counterSeen, CancellationToken ct)
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
        await RecordSyncedAsync(connection, tx, counterSeen, result.ChecksumAfter!, ct);
    }

    /// <summary>
    /// This replica has everything up to <paramref name="counterSeen"/> in its file, which now has
    /// <paramref name="checksum"/> (its row made again if it was forgotten meanwhile). Not the counter as it is now: this run did not see what others committed since it
    /// read (its own writes moved the counter too; the next run finds them in sync and records nothing).
    /// </summary>
    public Task RecordSyncedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, long counterSeen, string checksum, CancellationToken ct) =>
        ExecuteAsync(connection, tx, """
            INSERT INTO sync_replicas AS r (name, synced_change_counter, synced_file_checksum, synced_at, synced_event_seq)
            VALUES ($3, $1, $2, now(), (SELECT event_seq FROM sync_state WHERE id = 1))
            ON CONFLICT (name) DO UPDATE SET synced_change_counter = EXCLUDED.synced_change_counter,
                synced_file_checksum = EXCLUDED.synced_file_checksum, synced_at = EXCLUDED.synced_at, synced_event_seq = EXCLUDED.synced_event_seq
            """, ct, counterSeen, checksum, replica);

    /// <summary>
    /// A run that found nothing to do records only that it has seen up to <paramref name="counterSeen"/>; a refusal it
    /// no longer needs is over and recorded exports are settled (the file and the database agree on every task).
    /// </summary>
    public Task RecordQuietRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, long counterSeen, string checksum, CancellationToken ct) =>
        ExecuteAsync(connection, tx, """
            WITH settled AS (DELETE FROM sync_exports WHERE replica = $3)
            INSERT INTO sync_replicas AS r (name, synced_change_counter, synced_file_checksum, synced_at, synced_event_seq)
            VALUES ($3, $1, $2, now(), (SELECT event_seq FROM sync_state WHERE id = 1))
            ON CONFLICT (name) DO UPDATE SET synced_change_counter = EXCLUDED.synced_change_counter,
                synced_file_checksum = EXCLUDED.synced_file_checksum, synced_at = EXCLUDED.synced_at, synced_event_seq = EXCLUDED.synced_event_seq,
                refused_file_checksum = NULL, refused_task_ids = '{}'
            """, ct, counterSeen, checksum, replica);

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
                new NpgsqlBatchCommand("SELECT max(refused_file_checksum), coalesce(max(refused_task_ids), '{}') FROM sync_replicas WHERE name = $1") { Parameters = { new NpgsqlParameter { Value = replica } } },
                new NpgsqlBatchCommand("SELECT task_id, content_hash FROM sync_exports WHERE replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } },
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
        ExecuteAsync(connection, tx, "UPDATE sync_replicas SET refused_file_checksum = $1, refused_task_ids = $2 WHERE name = $3", ct,
            fileChecksum, plan.Actions.Where(a => a.Deletes).Select(a => a.Id).ToArray(), replica);

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
            INSERT INTO sync_exports (replica, task_id, content_hash) SELECT $3, u.* FROM unnest($1::text[], $2::text[]) AS u ON CONFLICT DO NOTHING
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = written.Select(a => a.Id).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = written.Select(a => a.Result!.ContentHash).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
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
                    UPDATE sync_replicas SET refused_file_checksum = NULL, refused_task_ids = '{}',
                        synced_change_counter = CASE WHEN $2 THEN NULL ELSE synced_change_counter END
                    WHERE name = $1
                    """)
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = replica },
                        new NpgsqlParameter { Value = result.Error is not null },
                    },
                },
                // Only when it changes: the row is the one every writer of tasks locks (the counter), not to be held longer.
                new NpgsqlBatchCommand("UPDATE sync_state SET default_timezone = $1 WHERE id = 1 AND $1 IS NOT NULL AND default_timezone IS DISTINCT FROM $1")
                {
                    Parameters = { new NpgsqlParameter { Value = (object?)result.DefaultTimezone ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text } },
                },
                new NpgsqlBatchCommand("DELETE FROM sync_exports WHERE replica = $1") { Parameters = { new NpgsqlParameter { Value = replica } } },
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

    /// <summary>
    /// Before a run writes task rows: locks them (in id order, so two runs never deadlock) and checks that each is still
    /// the version the plan was made from (null: absent). False when one moved on — an API write, another replica, plain
    /// SQL: the run starts over from what is there now instead of overwriting a change it never saw.
    /// </summary>
    public static async Task<bool> CheckRowsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyDictionary<string, long?> expected, CancellationToken ct)
    {
        if (expected.Count == 0) return true;
        await using var command = new NpgsqlCommand("SELECT id, version FROM scheduled_tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = expected.Keys.ToArray() });
        var found = 0;
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            found++;
            if (expected.GetValueOrDefault(reader.GetString(0)) != reader.GetInt64(1)) return false;
        }
        return found == expected.Values.Count(v => v is not null);
    }

    /// <summary>
    /// After a run inserted rows: each is its own (version 1). A row another writer inserted between the check and the
    /// insert was updated instead (version 2 or more): the run starts over.
    /// </summary>
    public static async Task<bool> CheckInsertedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<string> ids, CancellationToken ct)
    {
        if (ids.Count == 0) return true;
        await using var command = new NpgsqlCommand("SELECT count(*) FROM scheduled_tasks WHERE id = ANY($1) AND version <> 1", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        return (long)(await command.ExecuteScalarAsync(ct))! == 0;
    }
}
