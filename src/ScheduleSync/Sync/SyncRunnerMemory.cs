using Npgsql;

namespace ScheduleSync.Sync;

/// <summary>How a run weighs the two sides (SPEC §4, restore).</summary>
public enum SyncMode
{
    /// <summary>The three-way rules.</summary>
    Normal,
    /// <summary><c>restore</c>: the file was brought back from a backup; every difference is exported from the database.</summary>
    PreferDatabase,
    /// <summary><c>restore --revert-database</c>: the backup is applied to the database.</summary>
    PreferFile,
}

/// <summary>
/// What a run remembers for the next one, outside the three-way state: a mass deletion it refused (so an unrelated later
/// change cannot slip it through), the versions it is about to write to the file (so a crash between that write and
/// the commit is recognised), the file's default time zone (for plain-SQL inserts) and rows that break a rule.
/// </summary>
internal sealed partial class SyncRunner
{
    private sealed record Memory(string? RefusedChecksum, HashSet<string> RefusedIds, HashSet<(string Id, string Hash)> Exports);

    private static async Task<Memory> ReadMemoryAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
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
    private static Task RememberRefusalAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string fileChecksum, SyncPlan plan, CancellationToken ct) =>
        ExecuteAsync(connection, tx, "UPDATE sync_state SET refused_file_checksum = $1, refused_task_ids = $2 WHERE id = 1", ct,
            fileChecksum, plan.Actions.Where(a => a.Deletes).Select(a => a.Id).ToArray());

    /// <summary>
    /// Records, committed before the file is written (own connection, outside the run's transaction), the versions
    /// this run exports. If the run dies after the write and before its commit, the next run finds the file holding
    /// one of them and knows it as its own export rather than as a person's edit. A merge is not recorded: its file
    /// side carries a change the database has not got yet.
    /// </summary>
    private async Task RecordExportsAsync(IReadOnlyList<SyncAction> exports, CancellationToken ct)
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

    /// <summary>The error a completed run reports for rows that break a rule in the database; null when there are none.</summary>
    internal static string? InvalidRowsError(SyncPlan plan)
    {
        var invalid = plan.InvalidInDatabase.ToList();
        if (invalid.Count == 0) return null;
        return $"{invalid.Count} task(s) in the database break the rules and are not exported until fixed: "
            + string.Join(" | ", invalid.Select(a => $"'{a.Id}' {a.Reason}"));
    }

    /// <summary>
    /// A completed run: the refusal (if any) is over, the recorded exports are committed, the file's default zone is
    /// kept for plain-SQL inserts. While a row is invalid the run is not recorded as a full sync, so the next one looks
    /// again and reports it again (never a silent no-op).
    /// </summary>
    private static async Task AfterRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncResult result, CancellationToken ct)
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
