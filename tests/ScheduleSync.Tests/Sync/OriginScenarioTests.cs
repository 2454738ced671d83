using System.Globalization;
using System.Text;
using ScheduleSync.Tasks;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// The five test scenarios of the origin document (<c>seed/schedule_config_sync_summary.md</c>, "Concurrent Write
/// Tests"), with real OS processes: python3 scripts that write the file by the protocol of SPEC §2, <c>psql</c> writing
/// the database, and the built <c>schedsync</c> running syncs and restores, all at the same time.
/// </summary>
public sealed class OriginScenarioTests(ITestOutputHelper output)
{
    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);

    // ---- 1. three processes writing the file at once ----

    [Fact]
    public async Task Three_processes_editing_the_file_at_once_corrupt_nothing_lose_no_edit_and_a_sync_imports_every_last_edit()
    {
        const int rounds = 40;
        string[][] owned = [["w1-a", "w1-b"], ["w2-a", "w2-b"], ["w3-a", "w3-b"]];
        string[] ids = [.. owned.SelectMany(o => o), "keep"];
        await using var bed = await OriginBed.CreateAsync("origin_file_writers", OriginBed.Yaml(ids.Select(id => (id, $"{id} step 0"))));
        Assert.Equal(7, (await bed.Runner().RunAsync("test")).Inserts);

        var stop = Path.Combine(bed.Folder, "stop");
        using var reader = bed.StartPython("file_reader", OriginScripts.FileReader, [bed.ConfigPath, stop, .. ids]);
        var writers = owned.Select((tasks, i) =>
            bed.StartPython("file_writer", OriginScripts.FileWriter, [bed.ConfigPath, N(rounds), "0.02", $"w{i + 1}", "command", .. tasks])).ToList();
        var syncs = new List<OriginProcessResult>();
        try
        {
            // Meanwhile schedsync syncs again and again: it takes the same lock and imports whatever it finds.
            while (writers.Any(w => !w.HasExited))
                syncs.Add(await bed.SchedSyncAsync("sync"));
            foreach (var writer in writers)
            {
                var result = await writer.WaitAsync();
                Assert.True(result.ExitCode == 0, result.ToString());
                Assert.Equal($"edits={rounds * 2}", result.Stdout.Trim());
            }
        }
        finally
        {
            OriginChild.DisposeAll(writers);
        }
        await File.WriteAllTextAsync(stop, "");
        var reads = await reader.WaitAsync();
        output.WriteLine($"3 writers x {rounds * 2} edits, {syncs.Count} syncs meanwhile; reader: {reads.Stdout.Trim()}");

        Assert.True(reads.ExitCode == 0 && reads.Stderr.Length == 0, reads.ToString());
        Assert.Matches(@"^reads=[1-9]\d* failures=0$", reads.Stdout.Trim());
        Assert.True(syncs.Count >= 2, "the writers finished before a second sync could overlap them");
        Assert.All(syncs, s => Assert.True(s.ExitCode == 0, s.ToString()));
        var file = bed.FileTasks();
        for (var i = 0; i < owned.Length; i++)
            foreach (var id in owned[i])
                Assert.Equal($"w{i + 1} {id} {rounds}", file[id].Command);
        Assert.Equal("keep step 0", file["keep"].Command);
        Assert.StartsWith("# origin scenario: comments and layout must survive every write\n", await File.ReadAllTextAsync(bed.ConfigPath), StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(bed.Folder, "*.tmp-*", SearchOption.AllDirectories));

        var last = await bed.SchedSyncAsync("sync");
        Assert.True(last.ExitCode == 0, last.ToString());
        await bed.AssertAllEqualAsync();
        var database = await bed.DatabaseTasksAsync();
        Assert.All(owned.SelectMany(o => o), id => Assert.Equal(file[id].Command, database[id].Command));
        // Every import was audited as coming from the file.
        Assert.Equal(0L, await bed.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE source <> 'yaml'"));
    }

    // ---- 2. three processes writing the database at once, schedsync syncing meanwhile ----

    [Fact]
    public async Task Three_psql_processes_updating_the_database_while_schedsync_syncs_repeatedly_end_with_every_last_value_on_both_sides()
    {
        const int rounds = 50;
        string[][] owned = [["p1-a", "p1-b"], ["p2-a", "p2-b"], ["p3-a", "p3-b"]];
        string[] ids = [.. owned.SelectMany(o => o), "keep"];
        await using var bed = await OriginBed.CreateAsync("origin_db_writers", OriginBed.Yaml(ids.Select(id => (id, $"{id} v 0"))));
        Assert.Equal(7, (await bed.Runner().RunAsync("test")).Inserts);

        var stop = Path.Combine(bed.Folder, "stop");
        using var reader = bed.StartPython("file_reader", OriginScripts.FileReader, [bed.ConfigPath, stop, .. ids]);
        var writers = owned.Select((tasks, i) =>
        {
            var sql = new StringBuilder();
            for (var round = 1; round <= rounds; round++)
            {
                // Halfway, wait (at most 60 s) until a sync of this test has committed: however slow a schedsync process
                // starts on a loaded machine, the second half of the writes overlaps the syncs that follow it.
                if (round == rounds / 2 + 1)
                    sql.Append("DO $$ BEGIN FOR i IN 1..1200 LOOP EXIT WHEN (SELECT count(*) FROM sync_runs) >= 2; PERFORM pg_sleep(0.05); END LOOP; END $$;\n");
                foreach (var id in tasks)
                    sql.Append(CultureInfo.InvariantCulture, $"UPDATE scheduled_tasks SET command = 'p{i + 1} {id} {round}' WHERE id = '{id}';\n");
                sql.Append("SELECT pg_sleep(0.04);\n");
            }
            return bed.StartPsql($"writer{i + 1}", sql.ToString());
        }).ToList();
        var syncs = new List<OriginProcessResult>();
        try
        {
            while (writers.Any(w => !w.HasExited))
                syncs.Add(await bed.SchedSyncAsync("sync", "--json"));
            foreach (var writer in writers)
            {
                var result = await writer.WaitAsync();
                Assert.True(result.ExitCode == 0, result.ToString());
            }
        }
        finally
        {
            OriginChild.DisposeAll(writers);
        }
        var last = await bed.SchedSyncAsync("sync", "--json");
        await File.WriteAllTextAsync(stop, "");
        var reads = await reader.WaitAsync();
        Assert.All(syncs.Append(last), s => Assert.True(s.ExitCode == 0, s.ToString()));
        var exported = syncs.Sum(s => s.Json().GetProperty("exports").GetInt32());
        output.WriteLine($"3 psql x {rounds * 2} updates; {syncs.Count} syncs meanwhile exported {exported} changes; reader: {reads.Stdout.Trim()}");

        Assert.True(syncs.Count >= 2 && exported > 0, "the writers finished before a second sync could overlap them");
        Assert.True(reads.ExitCode == 0 && reads.Stderr.Length == 0, reads.ToString());
        Assert.Matches(@"^reads=[1-9]\d* failures=0$", reads.Stdout.Trim());
        await bed.AssertAllEqualAsync();
        var file = bed.FileTasks();
        for (var i = 0; i < owned.Length; i++)
            foreach (var id in owned[i])
                Assert.Equal($"p{i + 1} {id} {rounds}", file[id].Command);
        Assert.Equal("keep v 0", file["keep"].Command);
        // Every statement landed, once: 50 audited SQL updates per task, and the version counted each of them.
        foreach (var id in owned.SelectMany(o => o))
        {
            Assert.Equal((long)rounds, await bed.ScalarAsync<long>($"SELECT count(*) FROM task_audit WHERE task_id = '{id}' AND action = 'update' AND source = 'sql'"));
            Assert.Equal(1L + rounds, await bed.ScalarAsync<long>($"SELECT version FROM scheduled_tasks WHERE id = '{id}'"));
        }
        Assert.Equal(0L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE status <> 'completed'"));
        Assert.Equal(0L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts"));
    }

    // ---- 3. the same tasks changed in the file and in the database at once ----

    [Fact]
    public async Task Concurrent_file_and_database_updates_of_the_same_tasks_store_one_conflict_per_task_changed_on_both_sides_and_sync_the_rest()
    {
        const int rounds = 10;
        string[] both = ["s1", "s2", "s3", "s4"];
        string[] fileOnly = ["f1", "f2"];
        string[] databaseOnly = ["d1", "d2"];
        string[] merged = ["m1", "m2"];
        string[] ids = [.. both, .. fileOnly, .. databaseOnly, .. merged, "keep"];
        await using var bed = await OriginBed.CreateAsync("origin_mixed", OriginBed.Yaml(ids.Select(id => (id, $"{id} at first"))));
        Assert.Equal(ids.Length, (await bed.Runner().RunAsync("test")).Inserts);

        // The file: commands of s* and f*, descriptions of m*. The database: commands of s* and d*, names of m*.
        using var fileCommands = bed.StartPython("file_writer", OriginScripts.FileWriter, [bed.ConfigPath, N(rounds), "0", "file", "command", .. both, .. fileOnly]);
        using var fileDescriptions = bed.StartPython("file_writer", OriginScripts.FileWriter, [bed.ConfigPath, N(rounds), "0", "file", "description", .. merged]);
        var sql = new StringBuilder();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var id in both.Concat(databaseOnly))
                sql.Append(CultureInfo.InvariantCulture, $"UPDATE scheduled_tasks SET command = 'db {id} {round}' WHERE id = '{id}';\n");
            foreach (var id in merged)
                sql.Append(CultureInfo.InvariantCulture, $"UPDATE scheduled_tasks SET name = 'db {id} {round}' WHERE id = '{id}';\n");
            sql.Append("SELECT pg_sleep(0.005);\n");
        }
        using var database = bed.StartPsql("writer", sql.ToString());
        foreach (var writer in (OriginChild[])[fileCommands, fileDescriptions, database])
        {
            var result = await writer.WaitAsync();
            Assert.True(result.ExitCode == 0, result.ToString());
        }

        var sync = await bed.SchedSyncAsync("sync", "--json");

        Assert.True(sync.ExitCode == 2, sync.ToString());
        var summary = sync.Json();
        Assert.Equal((4, 4), (summary.GetProperty("new_conflicts").GetInt32(), summary.GetProperty("open_conflicts").GetInt32()));
        var conflicts = await bed.ConflictRowsAsync();
        Assert.Equal(both, conflicts.Select(c => c.TaskId).Order(StringComparer.Ordinal));
        foreach (var (taskId, status, yaml, db) in conflicts)
        {
            Assert.Equal("open", status);
            Assert.Equal($"file {taskId} {rounds}", TaskJson.FromCanonical(taskId, yaml!).Command);
            Assert.Equal($"db {taskId} {rounds}", TaskJson.FromCanonical(taskId, db!).Command);
        }
        var file = bed.FileTasks();
        var stored = await bed.DatabaseTasksAsync();
        foreach (var id in both)
            Assert.Equal(($"file {id} {rounds}", $"db {id} {rounds}"), (file[id].Command, stored[id].Command));
        foreach (var id in fileOnly)
            Assert.Equal(($"file {id} {rounds}", $"file {id} {rounds}"), (file[id].Command, stored[id].Command));
        foreach (var id in databaseOnly)
            Assert.Equal(($"db {id} {rounds}", $"db {id} {rounds}"), (file[id].Command, stored[id].Command));
        foreach (var id in merged)
        {
            Assert.Equal(file[id].ContentHash, stored[id].ContentHash);
            Assert.Equal(($"db {id} {rounds}", $"file {id} {rounds}"), (file[id].Name, file[id].Description));
        }
        Assert.Equal(file["keep"].ContentHash, stored["keep"].ContentHash);

        // Syncing again stores nothing twice: the four conflicts stay, once each.
        var again = await bed.SchedSyncAsync("sync", "--json");
        Assert.True(again.ExitCode == 2, again.ToString());
        Assert.Equal(0, again.Json().GetProperty("new_conflicts").GetInt32());
        var list = await bed.SchedSyncAsync("conflicts", "list", "--json");
        Assert.True(list.ExitCode == 2, list.ToString());
        Assert.Equal(both, list.Json().EnumerateArray().Select(c => c.GetProperty("task_id").GetString()!).Order(StringComparer.Ordinal));
        Assert.Equal(4, (await bed.ConflictRowsAsync()).Count);
    }

    // ---- 4. conflict detection under load ----

    [Fact]
    public async Task Several_syncs_started_at_once_under_load_store_every_conflict_exactly_once_and_all_exit_2()
    {
        const int conflicted = 40;
        const int syncProcesses = 4;
        const int loadRounds = 25;
        string[] changed = [.. Enumerable.Range(0, conflicted).Select(i => string.Create(CultureInfo.InvariantCulture, $"c{i:00}"))];
        string[] load = [.. Enumerable.Range(0, 8).Select(i => string.Create(CultureInfo.InvariantCulture, $"l{i}"))];
        await using var bed = await OriginBed.CreateAsync("origin_load", OriginBed.Yaml(changed.Concat(load).Select(id => (id, $"{id} at first"))));
        Assert.Equal(conflicted + load.Length, (await bed.Runner().RunAsync("test")).Inserts);

        // Every c* task changed on both sides, the same field to different values.
        using (var fileWriter = bed.StartPython("file_writer", OriginScripts.FileWriter, [bed.ConfigPath, "1", "0", "file", "command", .. changed]))
        using (var databaseWriter = bed.StartPsql("conflicting", "UPDATE scheduled_tasks SET command = 'db ' || id WHERE id LIKE 'c%';\n"))
        {
            foreach (var writer in (OriginChild[])[fileWriter, databaseWriter])
            {
                var result = await writer.WaitAsync();
                Assert.True(result.ExitCode == 0, result.ToString());
            }
        }
        var before = bed.FileTasks();
        // Load: other tasks keep changing in the database while the syncs run.
        var loadSql = new StringBuilder();
        for (var round = 1; round <= loadRounds; round++)
        {
            foreach (var id in load)
                loadSql.Append(CultureInfo.InvariantCulture, $"UPDATE scheduled_tasks SET command = 'load {id} {round}' WHERE id = '{id}';\n");
            loadSql.Append("SELECT pg_sleep(0.04);\n");
        }
        using var loader = bed.StartPsql("load", loadSql.ToString());

        var syncs = Enumerable.Range(0, syncProcesses).Select(_ => bed.StartSchedSync("sync", "--json")).ToList();
        var results = new List<OriginProcessResult>();
        try
        {
            foreach (var sync in syncs)
                results.Add(await sync.WaitAsync());
        }
        finally
        {
            OriginChild.DisposeAll(syncs);
        }
        var loaded = await loader.WaitAsync();
        Assert.True(loaded.ExitCode == 0, loaded.ToString());

        Assert.All(results, r => Assert.True(r.ExitCode == 2, r.ToString()));
        foreach (var result in results)
        {
            var json = result.Json();
            output.WriteLine($"exit {result.ExitCode}: {json.GetProperty("status")}, {json.GetProperty("new_conflicts")} new conflicts, {json.GetProperty("open_conflicts")} open, {json.GetProperty("exports")} exported");
        }
        Assert.Equal(conflicted, results.Sum(r => r.Json().GetProperty("new_conflicts").GetInt32()));
        var conflicts = await bed.ConflictRowsAsync();
        Assert.Equal(changed, conflicts.Select(c => c.TaskId).Order(StringComparer.Ordinal));
        Assert.All(conflicts, c => Assert.Equal("open", c.Status));
        Assert.Equal((long)conflicted, await bed.ScalarAsync<long>("SELECT coalesce(sum(conflicts), 0) FROM sync_runs"));
        // Frozen: neither side of a conflicted task was touched.
        var file = bed.FileTasks();
        var stored = await bed.DatabaseTasksAsync();
        Assert.All(changed, id => Assert.Equal(($"file {id} 1", $"db {id}"), (file[id].Command, stored[id].Command)));
        Assert.All(changed, id => Assert.Equal(before[id].ContentHash, file[id].ContentHash));

        // The load's last values reach the file with the next sync; the conflicts stay as they are.
        var last = await bed.SchedSyncAsync("sync", "--json");
        Assert.True(last.ExitCode == 2, last.ToString());
        file = bed.FileTasks();
        Assert.All(load, id => Assert.Equal($"load {id} {loadRounds}", file[id].Command));
        Assert.Equal(conflicted, (await bed.ConflictRowsAsync()).Count);
    }

    // ---- 5. recovery from a partial failure ----

    /// <summary>Imports five tasks, then three rounds of database changes, each exported by a sync (each a file write with a backup).</summary>
    private static async Task<OriginBed> SyncedWithThreeExportsAsync(string prefix)
    {
        string[] ids = ["r1", "r2", "r3", "r4", "r5"];
        var bed = await OriginBed.CreateAsync(prefix, OriginBed.Yaml(ids.Select(id => (id, $"{id} at first"))));
        Assert.Equal(5, (await bed.Runner().RunAsync("test")).Inserts);
        for (var round = 1; round <= 3; round++)
        {
            using var psql = bed.StartPsql($"round{round}", $"UPDATE scheduled_tasks SET command = 'round {round}' WHERE id = 'r{round}';\n");
            var updated = await psql.WaitAsync();
            Assert.True(updated.ExitCode == 0, updated.ToString());
            var sync = await bed.SchedSyncAsync("sync", "--json");
            Assert.True(sync.ExitCode == 0 && sync.Json().GetProperty("exports").GetInt32() == 1, sync.ToString());
        }
        await bed.AssertAllEqualAsync();
        return bed;
    }

    private static readonly byte[] Garbage = Encoding.UTF8.GetBytes("\0\0 {[ garbage: : :\n\t- ]");

    [Fact]
    public async Task Corrupted_file_is_refused_without_changing_anything_and_restore_brings_back_the_newest_backup_and_both_sides_agree()
    {
        await using var bed = await SyncedWithThreeExportsAsync("origin_recovery");
        var good = await File.ReadAllBytesAsync(bed.ConfigPath);
        var database = await bed.DatabaseFingerprintAsync();

        // A partial failure: the file is cut short and ends in garbage.
        byte[] corrupt = [.. good.AsSpan(0, good.Length / 2), .. Garbage];
        await File.WriteAllBytesAsync(bed.ConfigPath, corrupt);
        var refused = await bed.SchedSyncAsync("sync");

        Assert.True(refused.ExitCode == 3, refused.ToString());
        Assert.Equal(corrupt, await File.ReadAllBytesAsync(bed.ConfigPath));
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(1L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE status = 'failed'"));

        var list = await bed.SchedSyncAsync("restore", "--list");
        Assert.True(list.ExitCode == 0, list.ToString());
        var backups = bed.Store.ListBackups();
        // The hand-written first version and the three versions the exports wrote (the last good one included).
        Assert.Equal(4, backups.Count);
        Assert.Equal(backups.Select(b => b.Path), list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split("  ")[0]));
        var newest = await File.ReadAllBytesAsync(backups[0].Path);

        var restored = await bed.SchedSyncAsync("restore");

        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.Equal(newest, await File.ReadAllBytesAsync(bed.ConfigPath));
        var after = await bed.SchedSyncAsync("sync");
        Assert.True(after.ExitCode == 0, after.ToString());
        await bed.AssertAllEqualAsync();
        // The corrupt version was itself kept: restore is a safe write like any other.
        Assert.Contains(bed.Store.ListBackups(), b => File.ReadAllBytes(b.Path).AsSpan().SequenceEqual(corrupt));
    }

    [Fact]
    public async Task Restore_after_a_corrupted_file_keeps_the_database_changes_the_last_sync_had_exported()
    {
        await using var bed = await SyncedWithThreeExportsAsync("origin_recovery_lost");
        var agreed = await bed.DatabaseTasksAsync();
        var good = await File.ReadAllBytesAsync(bed.ConfigPath);
        await File.WriteAllBytesAsync(bed.ConfigPath, [.. good.AsSpan(0, good.Length / 2), .. Garbage]);
        Assert.Equal(3, (await bed.SchedSyncAsync("sync")).ExitCode);

        var restored = await bed.SchedSyncAsync("restore");
        Assert.True(restored.ExitCode == 0, restored.ToString());
        var after = await bed.SchedSyncAsync("sync");
        Assert.True(after.ExitCode == 0, after.ToString());

        // Both sides agreed on every task before a person's editor cut the file short: nothing of that may be lost.
        await bed.AssertAllEqualAsync();
        var stored = await bed.DatabaseTasksAsync();
        Assert.All(agreed, a => Assert.True(a.Value.ContentHash == stored[a.Key].ContentHash,
            $"{a.Key}: '{a.Value.Command}' before the corruption, '{stored[a.Key].Command}' after the restore"));
    }
}
