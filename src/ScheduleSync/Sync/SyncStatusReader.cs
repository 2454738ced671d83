using Npgsql;

namespace ScheduleSync.Sync;

internal sealed record SyncRunRecord(long Id, string Trigger, string Status, DateTime StartedAt, DateTime? FinishedAt, int Inserts, int Updates, int Deletes, int Exports, int Conflicts, string? Error);

internal sealed record SyncStatusReport(
    string ConfigPath, bool FileExists, bool FileValid, string FileChecksum, IReadOnlyList<string> FileProblems,
    int DatabaseTasks, long ChangeCounter, long? SyncedChangeCounter, string? SyncedFileChecksum,
    int OpenConflicts, int PendingImports, int PendingExports, IReadOnlyList<SyncRunRecord> RecentRuns,
    IReadOnlyList<InvalidRowReport> InvalidTasks, string? Refusal)
{
    /// <summary>Every replica on this database (SPEC §8): this one is <c>Current</c>.</summary>
    public IReadOnlyList<ReplicaInfo> Replicas { get; init; } = [];
}

/// <summary>A database row that breaks a rule (plain SQL): not exported until fixed.</summary>
internal sealed record InvalidRowReport(string Id, string Reason);

/// <summary>The state both the <c>status</c> command and <c>GET /api/sync/status</c> report.</summary>
internal static class SyncStatusReader
{
    /// <param name="storedState">False: always the full path (parse and plan), which the stored state must equal (tests).</param>
    public static async Task<SyncStatusReport> ReadAsync(SyncRunner runner, CancellationToken ct, string trigger = "cli", bool storedState = true)
    {
        var snapshot = runner.Store.Read();
        // One read of the file: the checksum reported is the content the plan was made from. Unchanged since the last
        // run on both sides: the stored state answers (the same report, without a parse or a read of the tasks).
        var (valid, problems, plan) = storedState && await StoredState.UnchangedAsync(runner, snapshot, ct)
            ? (true, [], StoredState.EmptyPlan)
            : await PlanAsync(runner, snapshot, trigger, ct);
        await using var connection = await runner.DataSource.OpenConnectionAsync(ct);
        var replica = (await runner.Tables.ForReadingAsync(connection, null, ct)).Replica;
        await using var command = new NpgsqlCommand("""
            SELECT s.change_counter, r.synced_change_counter, r.synced_file_checksum,
                   (SELECT count(*) FROM scheduled_tasks)::int, (SELECT count(*) FROM sync_conflicts WHERE status = 'open' AND replica = $1)::int
            FROM sync_state s LEFT JOIN sync_replicas r ON r.name = $1 WHERE s.id = 1
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = replica });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var counter = reader.GetInt64(0);
        long? synced = reader.IsDBNull(1) ? null : reader.GetInt64(1);
        var syncedChecksum = reader.IsDBNull(2) ? null : reader.GetString(2);
        var tasks = reader.GetInt32(3);
        var open = reader.GetInt32(4);
        await reader.CloseAsync();

        var runs = new List<SyncRunRecord>();
        await using (var runsCommand = new NpgsqlCommand(
            "SELECT id, trigger, status, started_at, finished_at, inserts, updates, deletes, exports, conflicts, error FROM sync_runs WHERE replica = $1 ORDER BY id DESC LIMIT 5", connection)
            { Parameters = { new NpgsqlParameter { Value = replica } } })
        await using (var runReader = await runsCommand.ExecuteReaderAsync(ct))
            while (await runReader.ReadAsync(ct))
                runs.Add(new SyncRunRecord(runReader.GetInt64(0), runReader.GetString(1), runReader.GetString(2), runReader.GetFieldValue<DateTime>(3),
                    runReader.IsDBNull(4) ? null : runReader.GetFieldValue<DateTime>(4), runReader.GetInt32(5), runReader.GetInt32(6), runReader.GetInt32(7),
                    runReader.GetInt32(8), runReader.GetInt32(9), runReader.IsDBNull(10) ? null : runReader.GetString(10)));

        var imports = plan?.Actions.Count(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.ImportDelete or SyncActionKind.Merge) ?? 0;
        var exports = plan?.Actions.Count(a => a.ChangesFile) ?? 0;
        return new SyncStatusReport(runner.Store.ConfigPath, snapshot.Exists, valid, snapshot.Checksum, problems,
            tasks, counter, synced, syncedChecksum, open, imports, exports, runs,
            [.. plan?.InvalidInDatabase.Select(a => new InvalidRowReport(a.Id, a.Reason ?? "invalid")) ?? []], plan?.Refusal)
        {
            Replicas = await Replicas.ListAsync(runner.DataSource, runner.Replica, ct),
        };
    }

    private static async Task<(bool Valid, IReadOnlyList<string> Problems, SyncPlan? Plan)> PlanAsync(SyncRunner runner, Files.FileSnapshot snapshot, string trigger, CancellationToken ct)
    {
        var (document, plan) = await runner.PlanAsync(snapshot: snapshot, ct: ct, trigger: trigger);
        return (document.IsValid, [.. document.FormatProblems()], plan);
    }
}
