using System.Diagnostics;
using System.Globalization;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// Where a sync run's time goes: the steps of <see cref="SyncRunner"/>'s one attempt, run one by one with a
/// stopwatch around each. It mirrors <c>SyncRunner.TryRunAsync</c> (same calls, same SQL, same order, committed the
/// same way, leaving sync_state as the runner does); when that method changes, change this with it.
/// </summary>
internal sealed class StepBreakdown(Report report, int n, int runs, IReadOnlyDictionary<string, double> floors)
{
    private readonly Dictionary<string, Dictionary<string, List<double>>> _steps = new(StringComparer.Ordinal);

    public async Task RunAsync(BenchEnvironment env, string path, byte[] bytes, NpgsqlDataSource source, ConfigFileStore store, SyncRunner sync,
        int dbTask, TaskDefinition dbCurrent, int dbVariant, int fileTask, int fileVariant)
    {
        var samples = Math.Min(runs, 3);
        var tasks = new TaskStore(source);
        await env.SettleAsync();
        for (var i = 0; i < samples; i++)
        {
            var text = await File.ReadAllTextAsync(path);
            TaskFiles.ReplaceByRename(path, TaskFiles.WithCommand(text, fileTask, fileVariant + 1));
            fileVariant++;
            await RunStepsAsync("file → database", source, store, expectExports: false);
        }
        await env.SettleAsync();
        for (var i = 0; i < samples; i++)
        {
            dbCurrent = dbCurrent with { Command = TaskFiles.Command(dbTask, ++dbVariant) };
            await tasks.UpdateAsync(dbCurrent, null, new ChangeContext("api", "bench"));
            await RunStepsAsync("database → file", source, store, expectExports: true);
        }
        // The next real run must find everything in step (the breakdown committed like the runner does).
        SyncBench.Expect(await sync.RunAsync("cli"), SyncStatus.NoOp);

        for (var i = 0; i < samples; i++)
        {
            var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"cold_steps_{n}"));
            await using (var fresh = NpgsqlDataSource.Create(connectionString))
            {
                await SyncBench.WarmPoolAsync(fresh);
                TaskFiles.ReplaceByRename(path, System.Text.Encoding.UTF8.GetString(bytes));
                await env.SettleAsync();
                await RunStepsAsync("cold import", fresh, ConfigFileStore.Open(path), expectExports: false);
            }
            await env.DropDatabaseAsync(connectionString);
        }

        foreach (var (scenario, steps) in _steps)
        {
            foreach (var (step, values) in steps)
            {
                var row = Stats.Row("step breakdown (Stopwatch around each step of SyncRunner.TryRunAsync)", n, $"{scenario} · {step}", values);
                if (step.StartsWith("ScheduleLoader.Load", StringComparison.Ordinal) || step.StartsWith("ScheduleWriter.Apply", StringComparison.Ordinal))
                    row = row with { Floor = "parse", FloorValue = floors["parse"] };
                else if (step.StartsWith("store.WriteLocked", StringComparison.Ordinal))
                    row = row with { Floor = "atomic write", FloorValue = floors["write"] };
                else if (step.StartsWith("TaskStore.UpsertManyAsync", StringComparison.Ordinal) && scenario == "cold import")
                    row = row with { Floor = "upsert", FloorValue = floors["upsert"] };
                report.Add(row);
            }
        }
    }

    private void Time(string scenario, string step, long start)
    {
        if (!_steps.TryGetValue(scenario, out var steps)) _steps[scenario] = steps = new(StringComparer.Ordinal);
        if (!steps.TryGetValue(step, out var values)) steps[step] = values = [];
        values.Add(Floors.Ms(start));
    }

    private async Task RunStepsAsync(string scenario, NpgsqlDataSource dataSource, ConfigFileStore store, bool expectExports)
    {
        var total = Stopwatch.GetTimestamp();
        var t = Stopwatch.GetTimestamp();
        var tables = new SyncTables(dataSource, ReplicaName.Default(store.ConfigPath).Name);
        await tables.EnsureAsync(default);
        using var fileLock = store.Lock();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var lockReplica = new NpgsqlBatch(connection, tx) { BatchCommands = { SyncTables.LockCommand(tables.Replica) } })
            await lockReplica.ExecuteNonQueryAsync();
        Time(scenario, "replica row + file lock + connection + BEGIN + replica advisory lock", t);

        t = Stopwatch.GetTimestamp();
        var snapshot = store.Read();
        Time(scenario, "store.Read (read + hash + decode)", t);

        t = Stopwatch.GetTimestamp();
        long counter;
        await using (var state = new NpgsqlCommand("SELECT change_counter FROM sync_state WHERE id = 1", connection, tx))
            counter = (long)(await state.ExecuteScalarAsync())!;
        Time(scenario, "read sync_state", t);

        t = Stopwatch.GetTimestamp();
        var stored = await TaskStore.ListAsync(connection, tx);
        Time(scenario, "TaskStore.ListAsync (all rows, each re-validated)", t);

        t = Stopwatch.GetTimestamp();
        var bases = await tables.ReadBaseAsync(connection, tx, default);
        Time(scenario, "SyncTables.ReadBaseAsync (all base rows, JSON → task)", t);

        t = Stopwatch.GetTimestamp();
        var open = new HashSet<string>(StringComparer.Ordinal);
        await using (var conflicts = new NpgsqlCommand("SELECT task_id FROM sync_conflicts WHERE status = 'open'", connection, tx))
        await using (var reader = await conflicts.ExecuteReaderAsync())
            while (await reader.ReadAsync()) open.Add(reader.GetString(0));
        Time(scenario, "read open conflicts", t);

        t = Stopwatch.GetTimestamp();
        var document = ScheduleLoader.Load(snapshot.Bytes.Span, store.ConfigPath);
        Time(scenario, "ScheduleLoader.Load (parse + validate)", t);

        t = Stopwatch.GetTimestamp();
        var inputs = new SyncInputs(
            document.ValidTasks.ToDictionary(x => x.Id, StringComparer.Ordinal),
            stored.Where(s => s.Task is not null).ToDictionary(s => s.Id, s => s.Task!, StringComparer.Ordinal),
            bases,
            document.InvalidTaskIds.ToHashSet(StringComparer.Ordinal),
            stored.Where(s => s.Task is null).Select(s => s.Id).ToHashSet(StringComparer.Ordinal),
            open);
        var plan = SyncPlanner.Plan(inputs, new SyncOptions());
        Time(scenario, "SyncPlanner.Plan (+ input dictionaries)", t);

        t = Stopwatch.GetTimestamp();
        long run;
        await using (var start = new NpgsqlCommand("INSERT INTO sync_runs (trigger, checksum_before) VALUES ($1, $2) RETURNING id", connection, tx))
        {
            start.Parameters.Add(new NpgsqlParameter { Value = "cli" });
            start.Parameters.Add(new NpgsqlParameter { Value = snapshot.Checksum });
            run = (long)(await start.ExecuteScalarAsync())!;
        }
        await TaskStore.SetContextAsync(connection, tx, new ChangeContext("yaml", "schedsync:cli", run), default);
        Time(scenario, "insert sync_runs + set context", t);

        var actions = plan.Actions;
        t = Stopwatch.GetTimestamp();
        await TaskStore.UpsertManyAsync(connection, tx,
            [.. actions.Where(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.Merge).Select(a => a.Result!)],
            "schedsync:cli", default);
        await TaskStore.DeleteManyAsync(connection, tx, [.. actions.Where(a => a.Kind == SyncActionKind.ImportDelete).Select(a => a.Id)], default);
        Time(scenario, "TaskStore.UpsertManyAsync (+ audit/counter triggers)", t);

        t = Stopwatch.GetTimestamp();
        await tables.WriteBaseAsync(connection, tx,
            [.. actions.Where(a => a.Result is not null && a.Kind is not (SyncActionKind.InSync or SyncActionKind.Frozen)).Select(a => a.Result!)],
            [.. actions.Where(a => a.Kind is SyncActionKind.DropBase or SyncActionKind.ImportDelete or SyncActionKind.ExportRemove).Select(a => a.Id)],
            default);
        Time(scenario, "SyncTables.WriteBaseAsync", t);

        var exports = actions.Where(a => a.ChangesFile).ToList();
        if ((exports.Count > 0) != expectExports) throw new InvalidOperationException($"{scenario}: {exports.Count} exports");
        var checksumAfter = snapshot.Checksum;
        if (exports.Count > 0)
        {
            t = Stopwatch.GetTimestamp();
            var text = ScheduleWriter.Apply(document,
                [.. exports.Where(a => a.Result is not null).Select(a => a.Result!)],
                [.. exports.Where(a => a.Result is null).Select(a => a.Id)]);
            Time(scenario, "ScheduleWriter.Apply (splice + verify by re-parse)", t);

            t = Stopwatch.GetTimestamp();
            _ = ScheduleLoader.Parse(text, store.ConfigPath);
            Time(scenario, "(of Apply: its verify step alone, ScheduleLoader.Parse of the new text)", t);

            t = Stopwatch.GetTimestamp();
            var written = store.WriteLocked(snapshot.Checksum, text);
            Time(scenario, "store.WriteLocked (.bak + rotation + target, fsyncs, verify)", t);
            checksumAfter = ((WriteResult.Written)written).Checksum;
        }

        t = Stopwatch.GetTimestamp();
        await using (var finish = new NpgsqlCommand("""
            UPDATE sync_runs SET finished_at = now(), status = 'completed', checksum_after = $2 WHERE id = $1
            """, connection, tx))
        {
            finish.Parameters.Add(new NpgsqlParameter { Value = run });
            finish.Parameters.Add(new NpgsqlParameter { Value = checksumAfter });
            await finish.ExecuteNonQueryAsync();
        }
        await tables.RecordSyncedAsync(connection, tx, counter, checksumAfter, default);
        Time(scenario, "finish run (sync_runs, sync_replicas)", t);

        t = Stopwatch.GetTimestamp();
        await tx.CommitAsync();
        Time(scenario, "COMMIT (WAL fsync)", t);
        Time(scenario, "total of the steps", total);
    }
}
