using Npgsql;
using ScheduleSync.Files;

namespace ScheduleSync.Sync;

/// <summary>
/// <c>status</c> and <c>plan</c> on a file nothing has touched since the last run (issue 15): the stored state answers
/// without parsing the file or reading the tasks, when it provably equals the full path. The file side: this replica's
/// last run (or conflict resolution, which writes the file whenever it changes its side) left this very file (same
/// checksum), and that run could only complete on a valid file (the file-rejecting policy); it left every task it did
/// not freeze in sync, so each of the file's tasks equals its base. The database side is checked row by row, in SQL:
/// every row's content hash equals its base (plain SQL clears the hash, so such a row never passes), none is missing on
/// either side, and no conflict is open. Then the plan a full read would make is empty. Anything else (a byte changed in
/// the file, a row written since, a conflict, the legacy or a new replica) takes the full path. The change counter is not
/// asked: a run's own imports move it past what the run records, and the row check covers what it would say.
/// </summary>
internal static class StoredState
{
    /// <summary>The plan of a sync with nothing to do: what a full read makes when <see cref="UnchangedAsync"/> is true.</summary>
    public static SyncPlan EmptyPlan { get; } = new([], null);

    public static async Task<bool> UnchangedAsync(SyncRunner runner, FileSnapshot snapshot, CancellationToken ct)
    {
        if (!snapshot.Exists || runner.Options.OnInvalid != InvalidTaskPolicy.RejectFile) return false;
        await using var connection = await runner.DataSource.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand("""
            SELECT r.synced_file_checksum = $2
                AND NOT EXISTS (SELECT 1 FROM sync_conflicts WHERE status = 'open' AND replica = $1)
                AND NOT EXISTS (
                    SELECT 1 FROM scheduled_tasks t
                    FULL JOIN (SELECT task_id, content_hash FROM sync_base WHERE replica = $1) b ON b.task_id = t.id
                    WHERE t.id IS NULL OR b.task_id IS NULL OR t.content_hash IS NULL OR t.content_hash <> b.content_hash)
            FROM sync_replicas r WHERE r.name = $1
            """, connection); // one statement: one snapshot
        command.Parameters.Add(new NpgsqlParameter { Value = runner.Replica });
        command.Parameters.Add(new NpgsqlParameter { Value = snapshot.Checksum });
        return await command.ExecuteScalarAsync(ct) is true;
    }
}
