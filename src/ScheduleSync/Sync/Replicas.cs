using Npgsql;

namespace ScheduleSync.Sync;

/// <summary>One replica as the database knows it (SPEC §8): when it last synced, how far behind it is, what waits for it.</summary>
/// <param name="ChangesBehind">Changes to tasks committed since what the replica last synced (the change counter).</param>
/// <param name="EventsBehind">Events in the log since its last sync (null before its first).</param>
/// <param name="PendingExports">Database rows that differ from the replica's base (not frozen by one of its conflicts): changes its file has not received.</param>
/// <remarks>A row changed with plain SQL carries no content hash (the trigger clears it), so it counts as pending only while the replica is behind.
/// Served as is (snake_case) by <c>replicas --json</c> and <c>GET /api/replicas</c>.</remarks>
internal sealed record ReplicaInfo(
    string Name, bool Current, DateTime CreatedAt, DateTime? LastSyncAt, long ChangesBehind, long? EventsBehind,
    int OpenConflicts, int PendingExports, DateTime? LastRunAt, string? LastRunStatus, string? LastError);

/// <summary>Lists replicas and forgets one (its base, sync state, conflicts and recorded exports; its runs stay as history).</summary>
internal static class Replicas
{
    public static async Task<IReadOnlyList<ReplicaInfo>> ListAsync(NpgsqlDataSource dataSource, string current, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT r.name, r.created_at, r.synced_at,
                   greatest(s.change_counter - coalesce(r.synced_change_counter, 0), 0),
                   s.event_seq - r.synced_event_seq,
                   (SELECT count(*) FROM sync_conflicts c WHERE c.replica = r.name AND c.status = 'open')::int,
                   ((SELECT count(*) FROM scheduled_tasks t WHERE NOT EXISTS
                        (SELECT 1 FROM sync_base b WHERE b.replica = r.name AND b.task_id = t.id AND b.content_hash IS NOT DISTINCT FROM t.content_hash)
                        -- A row changed with plain SQL has no hash until it changes again through schedsync: it is
                        -- pending only while the replica has not synced since (a run then exported it, or reports it).
                        AND (t.content_hash IS NOT NULL OR s.change_counter > coalesce(r.synced_change_counter, 0))
                        AND NOT EXISTS (SELECT 1 FROM sync_conflicts c WHERE c.replica = r.name AND c.task_id = t.id AND c.status = 'open'))
                    + (SELECT count(*) FROM sync_base b WHERE b.replica = r.name AND NOT EXISTS (SELECT 1 FROM scheduled_tasks t WHERE t.id = b.task_id)
                        AND NOT EXISTS (SELECT 1 FROM sync_conflicts c WHERE c.replica = r.name AND c.task_id = b.task_id AND c.status = 'open')))::int,
                   run.started_at, run.status, run.error
            FROM sync_replicas r CROSS JOIN sync_state s
            LEFT JOIN LATERAL (SELECT started_at, status, error FROM sync_runs WHERE replica = r.name ORDER BY id DESC LIMIT 1) run ON true
            WHERE s.id = 1
            ORDER BY r.name
            """);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var list = new List<ReplicaInfo>();
        while (await reader.ReadAsync(ct))
        {
            var name = reader.GetString(0);
            list.Add(new ReplicaInfo(name, name == current, reader.GetFieldValue<DateTime>(1),
                reader.IsDBNull(2) ? null : reader.GetFieldValue<DateTime>(2), reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4),
                reader.GetInt32(5), reader.GetInt32(6), reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTime>(7),
                reader.IsDBNull(8) ? null : reader.GetString(8), reader.IsDBNull(9) ? null : reader.GetString(9)));
        }
        return list;
    }

    /// <summary>
    /// Drops a replica and its state, under its lock (a run of it in progress finishes first). Returns false when no
    /// replica has that name. A replica that syncs again afterwards starts over as a new one: tasks equal on both sides
    /// become its base, those that differ are its conflicts.
    /// </summary>
    public static async Task<bool> ForgetAsync(NpgsqlDataSource dataSource, string name, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                SyncTables.LockCommand(name),
                new NpgsqlBatchCommand("DELETE FROM sync_replicas WHERE name = $1") { Parameters = { new NpgsqlParameter { Value = name } } },
            },
        };
        await batch.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
        return batch.BatchCommands[1].RecordsAffected > 0;
    }
}
