using System.Text.Json;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Sync;

public enum ResolutionChoice { KeepYaml, KeepDb, Merge }

/// <summary>One field of a conflict: its value in the base, the file and the database (canonical JSON text, null when absent).</summary>
public sealed record FieldDifference(string Field, string? Base, string? Yaml, string? Database, bool ChangedOnBothSides);

internal sealed record ConflictRecord(
    long Id, string TaskId, TaskDefinition? Base, TaskDefinition? Yaml, TaskDefinition? Database, string Status,
    DateTime DetectedAt, string? Choice, TaskDefinition? Result, string? ResolvedBy, DateTime? ResolvedAt)
{
    /// <summary>The replica whose file and database disagree (SPEC §8): only it can resolve the conflict.</summary>
    public string Replica { get; init; } = "";

    /// <summary>Every field on which the three versions are not all equal.</summary>
    public IReadOnlyList<FieldDifference> Differences()
    {
        var list = new List<FieldDifference>();
        foreach (var field in TaskFields.Names)
        {
            var b = TaskFields.Value(Base, field);
            var y = TaskFields.Value(Yaml, field);
            var d = TaskFields.Value(Database, field);
            if (b == y && y == d) continue;
            list.Add(new FieldDifference(field, b, y, d, y != b && d != b && y != d));
        }
        return list;
    }
}

internal sealed class ConflictNotFoundException(long id) : Exception($"conflict {id} does not exist");

/// <summary>A resolution that cannot be applied as asked (already resolved, a field value missing or invalid, the file invalid).</summary>
internal sealed class ResolutionException(string message, IReadOnlyDictionary<string, string[]>? errors = null) : Exception(message)
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors ?? new Dictionary<string, string[]>();
}

/// <summary>Lists stored conflicts and resolves them: the result goes to both sides, becomes the base, and is audited.</summary>
internal sealed class ConflictService(SyncRunner runner)
{
    private readonly NpgsqlDataSource _dataSource = runner.DataSource;
    private readonly ConfigFileStore _store = runner.Store;

    /// <summary>This replica's conflicts (another replica's are its own business: its file, its resolution).</summary>
    public async Task<IReadOnlyList<ConflictRecord>> ListAsync(string? status = "open", CancellationToken ct = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        var tables = await runner.Tables.ForReadingAsync(connection, null, ct);
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM sync_conflicts WHERE ($1::text IS NULL OR status = $1) AND replica = $2 ORDER BY id", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)status ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = tables.Replica });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var list = new List<ConflictRecord>();
        while (await reader.ReadAsync(ct))
            list.Add(Read(reader));
        return list;
    }

    public async Task<ConflictRecord?> GetAsync(long id, CancellationToken ct = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        return await GetAsync(connection, null, id, lockRow: false, ct);
    }

    /// <summary>
    /// The file's and the database's versions of the task as a client showed them (task JSON as the conflict's
    /// <c>yaml</c>/<c>db</c>; null for deleted). A resolution that carries them is applied only if they are still what exists:
    /// a run may have refreshed the stored conflict after the client read it.
    /// </summary>
    internal sealed record ShownVersions(JsonElement? Yaml, JsonElement? Db)
    {
        public bool Shows(JsonElement? shown, TaskDefinition? now) =>
            shown is not { ValueKind: not JsonValueKind.Null } version ? now is null
                : now is not null && JsonElement.DeepEquals(version, SyncJson.Task(now)!.Value);
    }

    /// <summary>
    /// Resolves an open conflict with the current file and database versions of the task. <paramref name="fields"/>
    /// gives values (JSON) for fields; with <see cref="ResolutionChoice.Merge"/> every field changed on both sides
    /// needs one. Same crash ordering as a sync: database and base in one transaction, the file, then commit.
    /// </summary>
    public async Task<ConflictRecord> ResolveAsync(long id, ResolutionChoice choice, IReadOnlyDictionary<string, JsonElement>? fields, string actor, CancellationToken ct = default, ShownVersions? shown = null)
    {
        SyncPlanner.CheckResolutionFields(choice, fields);
        await runner.Tables.EnsureAsync(ct); // the legacy conflicts of a database from before replicas become this replica's
        using var fileLock = _store.Lock();
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var lockReplica = new NpgsqlBatch(connection, tx) { BatchCommands = { SyncTables.LockCommand(runner.Replica) } })
            await lockReplica.ExecuteNonQueryAsync(ct);
        var conflict = await GetAsync(connection, tx, id, lockRow: true, ct) ?? throw new ConflictNotFoundException(id);
        if (conflict.Status != "open")
            throw new ResolutionException($"conflict {id} is already resolved ({conflict.Choice} by {conflict.ResolvedBy})");
        if (conflict.Replica != runner.Replica)
            throw new ResolutionException($"conflict {id} belongs to replica '{conflict.Replica}' (its copy of the file), not to this one ('{runner.Replica}'); resolve it there, or run with --replica '{conflict.Replica}' on its host");
        // The row stays as read until this commits: another writer waits instead of being overwritten unseen.
        await SyncTables.ExecuteAsync(connection, tx, "SELECT 1 FROM scheduled_tasks WHERE id = $1 FOR UPDATE", ct, conflict.TaskId);

        var snapshot = _store.Read();
        var document = runner.Load(snapshot);
        if (document.HasFileProblems)
            throw new ResolutionException($"{_store.ConfigPath} is invalid; fix it before resolving: {string.Join("; ", document.FormatProblems().Take(3))}");
        var yaml = document.Entries.FirstOrDefault(e => e.Id == conflict.TaskId);
        if (yaml is { Task: null })
            throw new ResolutionException($"task '{conflict.TaskId}' is invalid in {_store.ConfigPath}; fix it before resolving");
        var stored = (await TaskStore.ListAsync(connection, tx, ct, [conflict.TaskId])).FirstOrDefault();
        if (stored is { Task: null })
            throw new ResolutionException($"task '{conflict.TaskId}' is invalid in the database; fix it before resolving");
        var bases = await runner.Tables.ReadBaseAsync(connection, tx, ct, [conflict.TaskId]);
        if (yaml?.Task?.ContentHash != conflict.Yaml?.ContentHash || stored?.Task?.ContentHash != conflict.Database?.ContentHash
            || (shown is not null && !(shown.Shows(shown.Yaml, yaml?.Task) && shown.Shows(shown.Db, stored?.Task))))
        {
            // A side changed after the conflict was shown: deciding now could discard an edit nobody saw. Show the
            // newest versions and let the person decide again.
            await runner.Tables.RefreshConflictVersionsAsync(connection, tx, [(conflict.TaskId, yaml?.Task, stored?.Task)], null, ct);
            await tx.CommitAsync(ct);
            throw new ResolutionException($"task '{conflict.TaskId}' changed since conflict {id} was stored; the conflict now shows the newest versions: review it and resolve again");
        }

        var result = SyncPlanner.Resolve(conflict.TaskId, choice, yaml?.Task, stored?.Task, bases.GetValueOrDefault(conflict.TaskId), fields);
        await TaskStore.SetContextAsync(connection, tx, new ChangeContext("resolve", actor), ct);
        var databaseChanged = false;
        if (result is null)
        {
            databaseChanged = stored is not null;
            await TaskStore.DeleteManyAsync(connection, tx, [conflict.TaskId], ct);
            await runner.Tables.WriteBaseAsync(connection, tx, [], [conflict.TaskId], ct);
        }
        else
        {
            var changed = await TaskStore.UpsertManyAsync(connection, tx, [result], actor, ct);
            databaseChanged = changed > 0;
            await runner.Tables.WriteBaseAsync(connection, tx, [result], [], ct);
            if (changed == 0)
            {
                // The database already holds the result (keep_db): the trigger audits nothing, so record the decision.
                await SyncTables.ExecuteAsync(connection, tx, """
                    INSERT INTO task_audit (task_id, action, source, actor, before, after)
                    SELECT id, 'update', 'resolve', $2, to_jsonb(t) - 'created_at' - 'updated_at', to_jsonb(t) - 'created_at' - 'updated_at'
                    FROM scheduled_tasks t WHERE id = $1
                    """, ct, conflict.TaskId, actor);
            }
        }
        await SyncTables.ExecuteAsync(connection, tx, """
            UPDATE sync_conflicts SET status = 'resolved', choice = $2, result = $3::jsonb, resolved_by = $4, resolved_at = now() WHERE id = $1
            """, ct, id, ChoiceName(choice), result is null ? "null" : TaskJson.ToCanonical(result), actor);

        var fileChanged = yaml?.Task?.ContentHash != result?.ContentHash;
        // The decision as recorded and what it changed, committed with it (the row's task_changed comes from the trigger).
        await SyncTables.ExecuteAsync(connection, tx, """
            SELECT sync_events_append(
                ARRAY['sync_conflict_resolved'] || CASE WHEN $2 THEN ARRAY['schedule_config_updated'] ELSE '{}'::text[] END,
                ARRAY[jsonb_build_object('conflict_id', id, 'task_id', task_id, 'choice', choice)]
                    || CASE WHEN $2 THEN ARRAY[jsonb_build_object('source', 'resolve', 'task_ids', jsonb_build_array(task_id), 'sync_run_id', NULL)] ELSE '{}'::jsonb[] END)
            FROM sync_conflicts WHERE id = $1
            """, ct, id, databaseChanged || fileChanged);
        if (fileChanged)
        {
            var (text, written) = ScheduleWriter.ApplyWithDocument(document, result is null ? [] : [result], result is null ? [conflict.TaskId] : []);
            switch (_store.WriteLocked(snapshot.Checksum, text))
            {
                case WriteResult.ChangedMeanwhile:
                    throw new ResolutionException($"{_store.ConfigPath} changed while resolving; nothing was changed, try again");
                case WriteResult.Written done:
                    runner.Remember(done.Checksum, written);
                    break;
            }
        }
        await tx.CommitAsync(ct);
        return (await GetAsync(id, ct))!;
    }

    public static string ChoiceName(ResolutionChoice choice) => choice switch
    {
        ResolutionChoice.KeepYaml => "keep_yaml",
        ResolutionChoice.KeepDb => "keep_db",
        _ => "merge",
    };

    private const string Columns = "id, task_id, base::text, yaml::text, db::text, status, detected_at, choice, result::text, resolved_by, resolved_at, replica";

    private static async Task<ConflictRecord?> GetAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, long id, bool lockRow, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM sync_conflicts WHERE id = $1" + (lockRow ? " FOR UPDATE" : ""), connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    private static ConflictRecord Read(NpgsqlDataReader reader)
    {
        var taskId = reader.GetString(1);
        TaskDefinition? Task(int column) =>
            reader.IsDBNull(column) || reader.GetString(column) == "null" ? null : TaskJson.FromCanonical(taskId, reader.GetString(column));
        return new ConflictRecord(reader.GetInt64(0), taskId, Task(2), Task(3), Task(4), reader.GetString(5), reader.GetFieldValue<DateTime>(6),
            reader.IsDBNull(7) ? null : reader.GetString(7), Task(8), reader.IsDBNull(9) ? null : reader.GetString(9),
            reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTime>(10)) { Replica = reader.GetString(11) };
    }
}
