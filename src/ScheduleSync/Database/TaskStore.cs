using Npgsql;
using NpgsqlTypes;
using ScheduleSync.Tasks;

namespace ScheduleSync.Database;

/// <summary>Who is changing tasks, recorded by the audit trigger with every change of the transaction.</summary>
internal sealed record ChangeContext(string Source, string Actor, long? SyncRunId = null);

/// <summary>A task as stored, with its row metadata. <see cref="Task"/> is null when the row breaks a rule (plain SQL).</summary>
internal sealed record StoredTask(string Id, TaskDefinition? Task, long Version, DateTime CreatedAt, DateTime UpdatedAt, string? UpdatedBy, IReadOnlyList<string> Problems)
{
    public string ContentHash => Task?.ContentHash ?? "";

    /// <summary>The row's values as stored, before the rules: what the API shows for an invalid row.</summary>
    public TaskDraft? Raw { get; init; }
}

internal sealed class TaskExistsException(string id) : Exception($"task '{id}' already exists")
{
    public string Id { get; } = id;
}

internal sealed class TaskNotFoundException(string id) : Exception($"task '{id}' does not exist")
{
    public string Id { get; } = id;
}

internal sealed class VersionMismatchException(string id, long expected, long actual)
    : Exception($"task '{id}' is at version {actual}, not {expected}")
{
    public long Actual { get; } = actual;
}

/// <summary>
/// Reads and writes <c>scheduled_tasks</c>. Every write runs in a transaction that names its source and actor, so
/// the statement triggers audit it, bump the change counter and notify, all committing together with the change.
/// </summary>
internal sealed class TaskStore(NpgsqlDataSource dataSource)
{
    // The field columns come from the field table (TaskColumns): id, the fields, then the row metadata.
    private static readonly string Columns = $"id, {TaskColumns.Select}, version, created_at, updated_at, updated_by";
    private static readonly int MetaColumn = 1 + TaskFields.All.Count;

    public NpgsqlDataSource DataSource => dataSource;

    public async Task<IReadOnlyList<StoredTask>> ListAsync(CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await ListAsync(connection, null, ct);
    }

    /// <summary>All tasks, or only those with the given ids.</summary>
    public static async Task<IReadOnlyList<StoredTask>> ListAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, CancellationToken ct = default, IReadOnlyCollection<string>? ids = null)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns}, content_hash FROM scheduled_tasks {(ids is null ? "" : "WHERE id = ANY($1)")} ORDER BY id", connection, tx);
        if (ids is not null) command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var tasks = new List<StoredTask>();
        while (await reader.ReadAsync(ct))
            tasks.Add(Read(reader));
        return tasks;
    }

    public async Task<StoredTask?> GetAsync(string id, CancellationToken ct = default)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns}, content_hash FROM scheduled_tasks WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    /// <summary>Inserts a new task; throws <see cref="TaskExistsException"/> when the id is taken. Returns the stored row.</summary>
    public async Task<StoredTask> CreateAsync(TaskDefinition task, ChangeContext context, CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await SetContextAsync(connection, tx, context, ct);
        try
        {
            await using var command = new NpgsqlCommand($"""
                INSERT INTO scheduled_tasks (id, {TaskColumns.Names}, content_hash, updated_by)
                VALUES ($1, {TaskColumns.Parameters}, ${MetaColumn + 1}, ${MetaColumn + 2})
                RETURNING {Columns}, content_hash
                """, connection, tx);
            AddTaskParameters(command, task, context.Actor);
            var stored = await ReadOneAsync(command, ct);
            await tx.CommitAsync(ct);
            return stored!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new TaskExistsException(task.Id);
        }
    }

    /// <summary>
    /// Replaces a task. With <paramref name="expectedVersion"/>, refuses (<see cref="VersionMismatchException"/>) when
    /// the row moved on meanwhile. Throws <see cref="TaskNotFoundException"/> for an unknown id.
    /// </summary>
    public async Task<StoredTask> UpdateAsync(TaskDefinition task, long? expectedVersion, ChangeContext context, CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await SetContextAsync(connection, tx, context, ct);
        var current = await LockRowAsync(connection, tx, task.Id, ct) ?? throw new TaskNotFoundException(task.Id);
        if (expectedVersion is { } expected && expected != current)
            throw new VersionMismatchException(task.Id, expected, current);
        await using var command = new NpgsqlCommand($"""
            UPDATE scheduled_tasks SET {TaskColumns.Assignments}, content_hash = ${MetaColumn + 1}, updated_by = ${MetaColumn + 2}
            WHERE id = $1
            RETURNING {Columns}, content_hash
            """, connection, tx);
        AddTaskParameters(command, task, context.Actor);
        var stored = await ReadOneAsync(command, ct);
        await tx.CommitAsync(ct);
        return stored!;
    }

    /// <summary>Deletes a task; returns the version it had. Same version check and not-found rule as <see cref="UpdateAsync"/>.</summary>
    public async Task<long> DeleteAsync(string id, long? expectedVersion, ChangeContext context, CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await SetContextAsync(connection, tx, context, ct);
        var current = await LockRowAsync(connection, tx, id, ct) ?? throw new TaskNotFoundException(id);
        if (expectedVersion is { } expected && expected != current)
            throw new VersionMismatchException(id, expected, current);
        await using var command = new NpgsqlCommand("DELETE FROM scheduled_tasks WHERE id = $1", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        await command.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
        return current;
    }

    /// <summary>
    /// Inserts or updates many tasks in one statement (arrays through <c>unnest</c>); rows whose content hash is
    /// unchanged are not touched. The caller's transaction names the source for the audit trigger.
    /// </summary>
    public static async Task<int> UpsertManyAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> tasks, string actor, CancellationToken ct)
    {
        if (tasks.Count == 0) return 0;
        // Measured (bench/): binary COPY into a temp table has a fixed cost of a few ms, unnest wins below ~1,000 rows.
        if (tasks.Count >= CopyThreshold) return await CopyUpsertAsync(connection, tx, tasks, actor, ct);
        await using var command = new NpgsqlCommand($"""
            INSERT INTO scheduled_tasks (id, {TaskColumns.Names}, content_hash, updated_by)
            SELECT u.id, {TaskColumns.FromUnnest("u")}, u.content_hash, ${MetaColumn + 2}
            FROM unnest($1::text[], {TaskColumns.UnnestParameters}, ${MetaColumn + 1}::text[])
                AS u(id, {TaskColumns.Names}, content_hash)
            ON CONFLICT (id) DO UPDATE SET {TaskColumns.Excluded},
                content_hash = EXCLUDED.content_hash, updated_by = EXCLUDED.updated_by
            WHERE scheduled_tasks.content_hash IS DISTINCT FROM EXCLUDED.content_hash
            """, connection, tx);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Id).ToArray() });
        foreach (var field in TaskFields.All)
            p.Add(new NpgsqlParameter { Value = TaskColumns.UnnestArray(field, tasks) });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.ContentHash).ToArray() });
        p.Add(new NpgsqlParameter { Value = actor });
        return await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Inserts tasks that are new (a sync's imports of tasks the database does not have: a cold import) by binary COPY
    /// straight into <c>scheduled_tasks</c> (no temp table, no ON CONFLICT), then records in one statement what the
    /// statement triggers record for a plain INSERT, exactly and in the rows' order: the audit rows (their JSON made by
    /// PostgreSQL as the trigger makes it: measured, that is cheaper here than building it in .NET and copying it), the
    /// change counter, its NOTIFY and a <c>task_changed</c> event per row. The triggers skip while the transaction-local
    /// setting <c>schedsync.bulk_write</c> is on (only around the COPY); the row triggers (defaults, version) still run.
    /// A task that exists after all (another writer inserted it meanwhile) fails the COPY with a unique violation.
    /// </summary>
    public static async Task InsertNewAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> tasks, ChangeContext context, CancellationToken ct)
    {
        if (tasks.Count == 0) return;
        await using (var on = new NpgsqlCommand("SELECT set_config('schedsync.bulk_write', 'on', true)", connection, tx))
            await on.ExecuteNonQueryAsync(ct);
        await CopyRowsAsync(connection, $"COPY scheduled_tasks (id, {TaskColumns.Names}, content_hash, updated_by) FROM STDIN (FORMAT BINARY)", tasks, context.Actor, ct);
        await using var record = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT set_config('schedsync.bulk_write', '', true)"),
                new NpgsqlBatchCommand("SELECT scheduled_tasks_record_inserts($1, $2, $3, $4)")
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = tasks.Select(t => t.Id).ToArray() },
                        new NpgsqlParameter { Value = context.Source },
                        new NpgsqlParameter { Value = context.Actor },
                        new NpgsqlParameter { Value = (object?)context.SyncRunId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint },
                    },
                },
            },
        };
        await record.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Binary COPY of tasks as rows (id, the field columns, content_hash[, <paramref name="actor"/> as updated_by]).</summary>
    private static async Task CopyRowsAsync(NpgsqlConnection connection, string copy, IReadOnlyList<TaskDefinition> tasks, string? actor, CancellationToken ct)
    {
        await using var importer = await connection.BeginBinaryImportAsync(copy, ct);
        // Synchronous writes: they fill a buffer and rarely touch the socket; per-call async costs more than it saves here.
        foreach (var t in tasks)
        {
            importer.StartRow();
            importer.Write(t.Id, NpgsqlDbType.Text);
            foreach (var field in TaskFields.All)
                TaskColumns.Write(importer, field, t);
            importer.Write(t.ContentHash, NpgsqlDbType.Text);
            if (actor is not null) importer.Write(actor, NpgsqlDbType.Text);
        }
        await importer.CompleteAsync(ct);
    }

    private const int CopyThreshold = 1_000;

    /// <summary>Bulk upsert through binary COPY into a per-connection temp table, then one INSERT … ON CONFLICT.</summary>
    private static async Task<int> CopyUpsertAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<TaskDefinition> tasks, string actor, CancellationToken ct)
    {
        await using (var create = new NpgsqlCommand($"""
            CREATE TEMP TABLE IF NOT EXISTS task_upload (id text, {TaskColumns.Definitions}, content_hash text) ON COMMIT DELETE ROWS
            """, connection, tx))
            await create.ExecuteNonQueryAsync(ct);

        await CopyRowsAsync(connection, $"COPY task_upload (id, {TaskColumns.Names}, content_hash) FROM STDIN (FORMAT BINARY)", tasks, actor: null, ct);

        await using var command = new NpgsqlCommand($"""
            INSERT INTO scheduled_tasks (id, {TaskColumns.Names}, content_hash, updated_by)
            SELECT id, {TaskColumns.Names}, content_hash, $1 FROM task_upload
            ON CONFLICT (id) DO UPDATE SET {TaskColumns.Excluded},
                content_hash = EXCLUDED.content_hash, updated_by = EXCLUDED.updated_by
            WHERE scheduled_tasks.content_hash IS DISTINCT FROM EXCLUDED.content_hash
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = actor });
        var changed = await command.ExecuteNonQueryAsync(ct);
        // ON COMMIT DELETE ROWS empties it at commit; within a longer transaction a second upsert must not see these rows.
        await using (var clear = new NpgsqlCommand("TRUNCATE task_upload", connection, tx))
            await clear.ExecuteNonQueryAsync(ct);
        return changed;
    }

    public static async Task<int> DeleteManyAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<string> ids, CancellationToken ct)
    {
        if (ids.Count == 0) return 0;
        await using var command = new NpgsqlCommand("DELETE FROM scheduled_tasks WHERE id = ANY($1)", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        return await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The audit trail of one task, oldest first.</summary>
    public async Task<IReadOnlyList<AuditEntry>> HistoryAsync(string? id, int limit = 200, CancellationToken ct = default)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT id, task_id, action, source, actor, before::text, after::text, at, sync_run_id FROM (
                SELECT * FROM task_audit WHERE $1::text IS NULL OR task_id = $1 ORDER BY id DESC LIMIT $2
            ) recent ORDER BY id
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)id ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var entries = new List<AuditEntry>();
        while (await reader.ReadAsync(ct))
            entries.Add(new AuditEntry(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.GetFieldValue<DateTime>(7), reader.IsDBNull(8) ? null : reader.GetInt64(8)));
        return entries;
    }

    public static async Task SetContextAsync(NpgsqlConnection connection, NpgsqlTransaction tx, ChangeContext context, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT set_config('schedsync.source', $1, true), set_config('schedsync.actor', $2, true), set_config('schedsync.sync_run', $3, true)",
            connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = context.Source });
        command.Parameters.Add(new NpgsqlParameter { Value = context.Actor });
        command.Parameters.Add(new NpgsqlParameter { Value = context.SyncRunId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "" });
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<long?> LockRowAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT version FROM scheduled_tasks WHERE id = $1 FOR UPDATE", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return await command.ExecuteScalarAsync(ct) is long version ? version : null;
    }

    private static void AddTaskParameters(NpgsqlCommand command, TaskDefinition task, string actor)
    {
        var p = command.Parameters;
        p.Add(new NpgsqlParameter { Value = task.Id });
        foreach (var field in TaskFields.All)
            p.Add(TaskColumns.Parameter(field, task));
        p.Add(new NpgsqlParameter { Value = task.ContentHash });
        p.Add(new NpgsqlParameter { Value = actor });
    }

    private static async Task<StoredTask?> ReadOneAsync(NpgsqlCommand command, CancellationToken ct)
    {
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    /// <summary>Maps a row through the same rules as the file, so a row broken by plain SQL is recognised as invalid.</summary>
    private static StoredTask Read(NpgsqlDataReader reader)
    {
        var id = reader.GetString(0);
        var problems = new List<string>();
        var draft = new TaskDraft { Id = id };
        for (var i = 0; i < TaskFields.All.Count; i++)
            TaskFields.All[i].Set(draft, TaskColumns.Read(reader, 1 + i, TaskFields.All[i], problems));
        var task = draft.Build("UTC", (field, message) => problems.Add(message));
        // The hash stored with the row (the trigger clears it whenever plain SQL changes the content) saves recomputing it.
        var meta = MetaColumn;
        if (task is not null && !reader.IsDBNull(meta + 4)) task.AdoptStoredHash(reader.GetString(meta + 4));
        return new StoredTask(id, problems.Count == 0 ? task : null, reader.GetInt64(meta), reader.GetFieldValue<DateTime>(meta + 1),
            reader.GetFieldValue<DateTime>(meta + 2), reader.IsDBNull(meta + 3) ? null : reader.GetString(meta + 3), problems) { Raw = draft };
    }
}

internal sealed record AuditEntry(long Id, string TaskId, string Action, string Source, string Actor, string? Before, string? After, DateTime At, long? SyncRunId);
