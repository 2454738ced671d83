using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Benchmarks;

/// <summary>Floors and sync scenarios for one N, on fresh databases of the benchmark's PostgreSQL cluster.</summary>
internal sealed class SyncBench(BenchEnvironment env, Report report, int n, int runs, bool floorsOnly = false)
{
    private readonly Dictionary<string, double> _floors = new(StringComparer.Ordinal);
    private string _path = "";
    private byte[] _bytes = [];
    private List<TaskDefinition> _tasks = [];

    public IReadOnlyDictionary<string, double> FloorValues => _floors;

    public async Task RunAsync()
    {
        var folder = env.NewFolder(string.Create(CultureInfo.InvariantCulture, $"sync-{n}"));
        _path = Path.Combine(folder, "schedule_config.yml");
        var text = TaskFiles.Generate(n);
        await File.WriteAllTextAsync(_path, text, new UTF8Encoding(false));
        _bytes = await File.ReadAllBytesAsync(_path);
        var document = ScheduleLoader.Load(_bytes, _path);
        if (!document.IsValid) throw new InvalidOperationException("generated file is invalid: " + string.Join("; ", document.FormatProblems().Take(3)));
        _tasks = [.. document.ValidTasks];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"N = {n:N0}: {_bytes.Length / 1024.0 / 1024.0:0.00} MiB of YAML, {runs} runs per measurement"));

        await MeasureFloorsAsync(folder);
        if (!floorsOnly) await MeasureScenariosAsync();
    }

    private double Floor(string name) => _floors[name];

    private void AddFloor(string key, string name, IReadOnlyList<double> samples, string? note = null)
    {
        var row = report.Add(Stats.Row("floors", n, name, samples) with { Note = note });
        _floors[key] = row.Median;
    }

    private async Task MeasureFloorsAsync(string folder)
    {
        // fsync on this VM's disk comes in ~4 ms steps and varies a lot: the cheap floors get more samples.
        var floorRuns = n >= 50_000 ? 5 : 15;
        var upsertRuns = n >= 50_000 ? runs : Math.Max(runs, 7);
        await env.SettleAsync();
        AddFloor("read", "read + SHA-256 of the file", Floors.Sample(3, floorRuns, () => Floors.ReadAndHash(_path)));
        AddFloor("parse", "parse only (UTF-8 decode + YamlDotNet event scan)", Floors.Sample(2, floorRuns, () => Floors.ParseOnly(_bytes)));

        var writePath = Path.Combine(folder, "floor-write.yml");
        await env.SettleAsync();
        AddFloor("write", "atomic write + fsync (temp, fsync, rename, fsync dir)", Floors.Sample(2, floorRuns, () => Floors.AtomicWrite(writePath, _bytes)));

        // The database floors run in a database of their own, on a table without triggers or constraints beyond the key.
        var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"floor_{n}"), migrate: false);
        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
        {
            await Floors.CreateCommitTableAsync(dataSource);
            await env.SettleAsync();
            var commits = new List<double>();
            for (var i = 0; i < 10 + 50; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await Floors.CommitOneRowAsync(dataSource, i);
                if (i >= 10) commits.Add(Floors.Ms(start));
            }
            AddFloor("commit", "one-row durable commit (autocommit upsert)", commits);

            await env.SettleAsync();
            var unnest = await SampleUpsertAsync(dataSource, Floors.UpsertUnnestAsync, upsertRuns);
            await env.SettleAsync();
            var copy = await SampleUpsertAsync(dataSource, Floors.UpsertCopyAsync, upsertRuns);
            report.Add(Stats.Row("floors", n, "bulk upsert of N rows: unnest(text[]) into a fresh table", unnest));
            report.Add(Stats.Row("floors", n, "bulk upsert of N rows: binary COPY + INSERT…ON CONFLICT", copy));
            _floors["upsert"] = Math.Min(Stats.Median(unnest), Stats.Median(copy));
            report.Add(Stats.Row("floors", n, "bulk upsert of N rows (floor = faster of the two)", Stats.Median(unnest) <= Stats.Median(copy) ? unnest : copy));
        }
        await env.DropDatabaseAsync(connectionString);
        await UpsertAnatomyAsync(upsertRuns);
    }

    /// <summary>
    /// Where the import's upsert goes over the floor: <see cref="TaskStore.UpsertManyAsync"/> into the real schema
    /// (empty), with all its triggers, without the audit/counter statement trigger, and without any trigger.
    /// </summary>
    private async Task UpsertAnatomyAsync(int count)
    {
        var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"anatomy_{n}"));
        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
        {
            foreach (var (name, disable) in new[]
            {
                ("TaskStore.UpsertManyAsync into empty scheduled_tasks, real schema and triggers", ""),
                ("… the same without the audit + change-counter statement trigger", "ALTER TABLE scheduled_tasks DISABLE TRIGGER scheduled_tasks_after_insert;"),
                ("… the same without the event-log (task_changed) statement trigger", "ALTER TABLE scheduled_tasks DISABLE TRIGGER scheduled_tasks_events_insert;"),
                ("… the same without any trigger (CHECKs, tags via jsonb, statement shape only)", "ALTER TABLE scheduled_tasks DISABLE TRIGGER USER;"),
            })
            {
                await using (var setup = dataSource.CreateCommand("ALTER TABLE scheduled_tasks ENABLE TRIGGER USER; " + disable))
                    await setup.ExecuteNonQueryAsync();
                await env.SettleAsync();
                var samples = new List<double>();
                for (var i = -1; i < count; i++)
                {
                    await using (var clear = dataSource.CreateCommand("DELETE FROM scheduled_tasks; DELETE FROM task_audit;"))
                        await clear.ExecuteNonQueryAsync();
                    await using (var vacuum = dataSource.CreateCommand("VACUUM scheduled_tasks, task_audit"))
                        await vacuum.ExecuteNonQueryAsync();
                    var start = Stopwatch.GetTimestamp();
                    await using (var connection = await dataSource.OpenConnectionAsync())
                    await using (var tx = await connection.BeginTransactionAsync())
                    {
                        await TaskStore.SetContextAsync(connection, tx, new ChangeContext("yaml", "bench"), default);
                        var rows = await TaskStore.UpsertManyAsync(connection, tx, _tasks, "bench", default);
                        await tx.CommitAsync();
                        if (rows != n) throw new InvalidOperationException($"UpsertManyAsync wrote {rows} rows, not {n}");
                    }
                    if (i >= 0) samples.Add(Floors.Ms(start));
                }
                report.Add(Stats.Row("pieces", n, name, samples) with { Floor = "upsert", FloorValue = Floor("upsert") });
            }
        }
        await env.DropDatabaseAsync(connectionString);
    }

    private async Task<List<double>> SampleUpsertAsync(NpgsqlDataSource dataSource, Func<NpgsqlDataSource, IReadOnlyList<TaskDefinition>, Task<int>> upsert, int count)
    {
        var samples = new List<double>();
        for (var i = -1; i < count; i++)
        {
            await Floors.ResetTableAsync(dataSource);
            var start = Stopwatch.GetTimestamp();
            var rows = await upsert(dataSource, _tasks);
            if (i >= 0) samples.Add(Floors.Ms(start));
            if (rows != n) throw new InvalidOperationException($"upsert floor wrote {rows} rows, not {n}");
        }
        return samples;
    }

    private async Task MeasureScenariosAsync()
    {
        // Cold import: every run on a brand-new database (migrated, its pool warm), the same file.
        var cold = new List<double>();
        string? kept = null;
        for (var i = 0; i < runs; i++)
        {
            var connectionString = await env.CreateDatabaseAsync(string.Create(CultureInfo.InvariantCulture, $"sync_{n}"));
            await using (var dataSource = NpgsqlDataSource.Create(connectionString))
            {
                await WarmPoolAsync(dataSource);
                var runner = new SyncRunner(dataSource, ConfigFileStore.Open(_path), new SyncOptions());
                await env.SettleAsync();
                var start = Stopwatch.GetTimestamp();
                var result = await runner.RunAsync("cli");
                cold.Add(Floors.Ms(start));
                Expect(result, SyncStatus.Completed, inserts: n);
            }
            if (kept is not null) await env.DropDatabaseAsync(kept);
            kept = connectionString;
        }
        var coldTarget = n == 100 ? 10.0 : n == 10_000 ? 1.3 * (Floor("parse") + Floor("upsert")) : (double?)null;
        report.Add(Stats.Row("sync scenarios", n, "cold import (SyncRunner.RunAsync, empty database)", cold) with
        {
            Issue15 = n is 100 or 10_000 ? $"{n:N0} tasks, cold import" : null,
            Floor = "parse + upsert",
            FloorValue = Floor("parse") + Floor("upsert"),
            Target = n == 100 ? "≤ 10 ms" : n == 10_000 ? $"≤ 1.3 × (parse + upsert) = {coldTarget:0} ms" : null,
            Met = coldTarget is { } ct ? Stats.Median(cold) <= ct : null,
        });

        await using var source = NpgsqlDataSource.Create(kept!);
        await WarmPoolAsync(source);
        var store = ConfigFileStore.Open(_path);
        var sync = new SyncRunner(source, store, new SyncOptions());
        var tasks = new TaskStore(source);
        await env.SettleAsync();

        // No-op: nothing changed on either side since the import.
        var noop = new List<double>();
        for (var i = -1; i < runs; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var result = await sync.RunAsync("cli");
            if (i >= 0) noop.Add(Floors.Ms(start));
            Expect(result, SyncStatus.NoOp);
        }
        report.Add(Stats.Row("sync scenarios", n, "no-op sync (nothing changed)", noop) with
        {
            Floor = "read + hash",
            FloorValue = Floor("read"),
            Target = n == 10_000 ? "≤ 15 ms" : null,
            Met = n == 10_000 ? Stats.Median(noop) <= 15 : null,
        });

        // One task changed in the file (a one-line edit, file replaced by rename) → database.
        var fileTask = n / 2;
        var fileVariant = 0;
        var fileToDb = new List<double>();
        await env.SettleAsync();
        for (var i = -1; i < runs; i++)
        {
            var text = await File.ReadAllTextAsync(_path);
            TaskFiles.ReplaceByRename(_path, TaskFiles.WithCommand(text, fileTask, fileVariant + 1));
            fileVariant++;
            var start = Stopwatch.GetTimestamp();
            var result = await sync.RunAsync("cli");
            if (i >= 0) fileToDb.Add(Floors.Ms(start));
            Expect(result, SyncStatus.Completed, updates: 1);
        }
        var fileTarget = 1.3 * Floor("parse") + 15;
        report.Marks[$"filetodb-{n}"] = Stats.Median(fileToDb);
        report.Add(Stats.Row("sync scenarios", n, "one task changed in the file → database", fileToDb) with
        {
            Issue15 = n == 10_000 ? "10,000 tasks, one task changed in the file → database" : null,
            Floor = "read + parse + commit",
            FloorValue = Floor("read") + Floor("parse") + Floor("commit"),
            Target = n == 10_000 ? $"≤ 1.3 × parse + 15 ms = {fileTarget:0} ms (stretch ≤ 30 ms)" : null,
            Met = n == 10_000 ? Stats.Median(fileToDb) <= fileTarget : null,
        });
        if (n > 1000 && report.Marks.TryGetValue("filetodb-1000", out var small))
        {
            // Cost follows the change, not the file: the same one-task edit at N against it at 1,000 tasks (issue 15).
            report.Add(Stats.Row("sync scenarios", n, "one task changed in the file → database, against the same edit at 1,000 tasks", fileToDb) with
            {
                Issue15 = n == 50_000 ? "50,000 tasks, one task changed in the file → database (SyncRunner in process)" : null,
                Floor = "the 1,000-task edit",
                FloorValue = small,
                Target = "≤ 3 × the 1,000-task edit",
                Met = Stats.Median(fileToDb) <= 3 * small,
            });
        }

        // One task changed in the database (as the API would) → file.
        var dbTask = n / 3;
        var dbVariant = 0;
        var current = _tasks[dbTask];
        var dbToFile = new List<double>();
        await env.SettleAsync();
        for (var i = -1; i < runs; i++)
        {
            current = current with { Command = TaskFiles.Command(dbTask, ++dbVariant) };
            await tasks.UpdateAsync(current, null, new ChangeContext("api", "bench"));
            var start = Stopwatch.GetTimestamp();
            var result = await sync.RunAsync("cli");
            if (i >= 0) dbToFile.Add(Floors.Ms(start));
            Expect(result, SyncStatus.Completed, exports: 1);
        }
        report.Add(Stats.Row("sync scenarios", n, "one task changed in the database → file", dbToFile) with
        {
            Floor = "read + parse + write + commit",
            FloorValue = Floor("read") + Floor("parse") + Floor("write") + Floor("commit"),
        });

        // The pieces of the scenarios above, to show where their time goes (and what the store costs over the floor).
        await env.SettleAsync();
        report.Add(Stats.Row("pieces", n, "ConfigFileStore.Read (read + hash + eager UTF-8 decode)", Floors.Sample(2, runs, () => store.Read())) with
        {
            Floor = "read + hash",
            FloorValue = Floor("read"),
        });
        report.Add(Stats.Row("pieces", n, "ScheduleLoader.Load (parse + validate + normalise)", Floors.Sample(1, runs, () => ScheduleLoader.Load(_bytes, _path))) with
        {
            Floor = "parse",
            FloorValue = Floor("parse"),
        });
        var safeWritePath = Path.Combine(Path.GetDirectoryName(_path)!, "safe-write.yml");
        var safeStore = ConfigFileStore.Open(safeWritePath);
        var variants = new[] { _bytes, [.. _bytes, (byte)'\n'] };
        var k = 0;
        report.Add(Stats.Row("pieces", n, "ConfigFileStore safe write (lock, re-read, .bak, rotation, write, verify)", Floors.Sample(2, runs, () =>
        {
            using var held = safeStore.Lock();
            safeStore.WriteLocked(null, variants[k++ % 2]);
        })) with
        {
            Floor = "atomic write",
            FloorValue = Floor("write"),
        });
        var noRotation = ConfigFileStore.Open(Path.Combine(Path.GetDirectoryName(_path)!, "safe-write-no-rotation.yml"), new FileStoreOptions { BackupCount = 0 });
        report.Add(Stats.Row("pieces", n, "ConfigFileStore safe write with BackupCount = 0 (.bak only, no rotation copy)", Floors.Sample(2, runs, () =>
        {
            using var held = noRotation.Lock();
            noRotation.WriteLocked(null, variants[k++ % 2]);
        })) with
        {
            Floor = "atomic write",
            FloorValue = Floor("write"),
        });

        await env.DropDatabaseAsync(kept!);
    }

    internal static async Task WarmPoolAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync();
    }

    internal static void Expect(SyncResult result, SyncStatus status, int? inserts = null, int? updates = null, int? exports = null)
    {
        if (result.Status != status || (inserts is { } i && result.Inserts != i) || (updates is { } u && result.Updates != u)
            || (exports is { } e && result.Exports != e))
        {
            throw new InvalidOperationException(
                $"unexpected sync result: {result.Status}, {result.Inserts} inserted, {result.Updates} updated, {result.Exports} exported {result.Error}");
        }
    }
}
