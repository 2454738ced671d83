using System.Text;
using CsCheck;
using ScheduleSync.Sync;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// A long-lived runner (the server's) reads only what changed since its last run (issue 15): the tasks named by the
/// event log and the bases of resolved conflicts. Whatever happens in between — plain SQL, another process syncing the
/// same replica, a resolution, pruned events — its plan must be the plan a fresh runner makes from a full read.
/// </summary>
public class SyncViewTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task A_kept_runner_plans_what_a_full_read_plans_after_any_change_and_reads_only_the_changes(int seed)
    {
        await using var bed = await SyncTestBed.CreateAsync("view_" + seed, yaml: null);
        var random = new Random(seed);
        var file = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < 12; i++) file[$"t{i:00}"] = $"cmd-{i}";
        WriteFile(bed, file);
        var kept = bed.Runner();
        Assert.Equal(SyncStatus.Completed, (await kept.RunAsync("cli")).Status);
        var next = 100;
        var followed = 0;

        for (var step = 0; step < 30; step++)
        {
            var ids = file.Keys.ToList();
            string Pick() => ids[random.Next(ids.Count)];
            var kind = random.Next(9);
            var expectFull = false;
            switch (kind)
            {
                case 0: await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"sql-{next++}", Pick()); break;
                case 1: await bed.ExecuteAsync("INSERT INTO scheduled_tasks (id, schedule, command) VALUES ($1, '@daily', $2)", $"n{next++}", "new"); break;
                case 2 when ids.Count > 6: await bed.ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = $1", Pick()); break;
                case 3: await bed.ExecuteAsync("UPDATE scheduled_tasks SET id = $1 WHERE id = $2", $"r{next++}", Pick()); break;
                case 4: file[Pick()] = $"file-{next++}"; WriteFile(bed, file); break;
                case 5:
                    // The same task changed on both sides, differently: a conflict, resolved by another service.
                    var id = Pick();
                    file[id] = $"file-{next++}";
                    WriteFile(bed, file);
                    await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"sql-{next++}", id);
                    Assert.Equal(1, (await kept.RunAsync("cli")).NewConflicts);
                    var conflict = Assert.Single(await bed.Conflicts().ListAsync(), c => c.Status == "open");
                    await bed.Conflicts().ResolveAsync(conflict.Id, random.Next(2) == 0 ? ResolutionChoice.KeepYaml : ResolutionChoice.KeepDb, null, "tester");
                    break;
                case 6:
                    // Another process syncs this replica: the kept runner cannot know its base writes and reads everything.
                    await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"other-{next++}", Pick());
                    Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
                    await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"sql-{next++}", Pick());
                    expectFull = true;
                    break;
                case 7:
                    // The events since the last run are pruned: the kept runner reads everything.
                    await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"sql-{next++}", Pick());
                    await bed.ExecuteAsync("DELETE FROM sync_events");
                    expectFull = true;
                    break;
                default:
                    // Both sides changed, different tasks.
                    var (inDatabase, inFile) = (ids[0], ids[^1]);
                    await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = $2", $"sql-{next++}", inDatabase);
                    file[inFile] = $"file-{next++}";
                    WriteFile(bed, file);
                    break;
            }

            var (_, full) = await bed.Runner().PlanAsync();
            var (views, fulls) = (kept.ViewReads, kept.FullReads);
            var result = await kept.RunAsync("cli");
            Assert.NotNull(full);
            Assert.Equal(Changes(full!), result.Plan is null ? [] : Changes(result.Plan));
            if (expectFull) Assert.Equal(fulls + 1, kept.FullReads);
            else if (kept.ViewReads == views + 1) followed++;

            // The run left both sides and the base equal; the file is now the model.
            var tasks = await bed.AssertConvergedAsync();
            file = new SortedDictionary<string, string>(tasks.ToDictionary(t => t.Key, t => t.Value.Command), StringComparer.Ordinal);
            WriteFile(bed, file);
            Assert.NotEqual(SyncStatus.Refused, (await kept.RunAsync("cli")).Status);
        }
        // Runs after changes made elsewhere followed the event log rather than reading every row.
        Assert.True(followed >= 15, $"only {followed} of 30 runs read the changes alone");
    }

    [Fact]
    public async Task A_kept_runner_that_finds_its_replica_forgotten_reads_everything_and_starts_over()
    {
        await using var bed = await SyncTestBed.SyncedAsync("view_forget");
        var kept = bed.Runner();
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'v2' WHERE id = 'gamma'");
        Assert.Equal(1, (await kept.RunAsync("cli")).Exports);
        Assert.True(await ScheduleSync.Sync.Replicas.ForgetAsync(bed.DataSource, kept.Replica, default));
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'v3' WHERE id = 'gamma'");

        // Its row is gone with its base: the next run (which makes the row again) must not trust the old view. The
        // first attempt may fail on the missing row (the runner then makes it again).
        var (_, full) = await bed.Runner().PlanAsync();
        var views = kept.ViewReads;
        SyncResult result;
        try
        {
            result = await kept.RunAsync("cli");
        }
        catch (Npgsql.PostgresException)
        {
            result = await kept.RunAsync("cli");
        }
        Assert.Equal(views, kept.ViewReads); // read in full, not followed
        Assert.Equal(Changes(full!), Changes(result.Plan!));
        Assert.Equal(1, result.NewConflicts); // gamma differs on both sides without a base: a conflict, never a silent revert
        var (_, after) = await bed.Runner().PlanAsync();
        Assert.Empty(after!.Changes);
    }

    [Fact]
    public void Following_the_changes_gives_the_hashes_and_the_candidates_a_full_read_gives()
    {
        Gen.Int.Sample(seed =>
        {
            var random = new Random(seed);
            string[] pool = ["a", "b", "c", "d", "e", "f", "g", "h"];
            string? Hash() => random.Next(4) switch { 0 => null, 1 => "h1", 2 => "h2", _ => "h3" };
            Dictionary<string, string?> Database() => pool.Where(_ => random.Next(3) > 0).ToDictionary(id => id, _ => Hash(), StringComparer.Ordinal);
            Dictionary<string, string> Base() => pool.Where(_ => random.Next(3) > 0).ToDictionary(id => id, _ => Hash() ?? "h1", StringComparer.Ordinal);
            var (database, bases) = (Database(), Base());
            // What changed since: every task whose row differs has an event (and some whose change was undone); a base
            // changes only by a resolution, which has its event too.
            var (newDatabase, newBases) = (new Dictionary<string, string?>(database), new Dictionary<string, string>(bases));
            var named = new HashSet<string>(StringComparer.Ordinal);
            var resolved = new HashSet<string>(StringComparer.Ordinal);
            foreach (var id in pool)
            {
                switch (random.Next(5))
                {
                    case 0: newDatabase[id] = Hash(); named.Add(id); break;
                    case 1: newDatabase.Remove(id); named.Add(id); break;
                    case 2: named.Add(id); break;
                    case 3: if (random.Next(2) == 0) newBases[id] = "h2"; else newBases.Remove(id); resolved.Add(id); break;
                }
            }
            var view = new SyncView { Database = new(database), Base = new(bases), EventSeq = 10 };
            var changes = new SyncTables.Changes(5,
                [.. named.Select(id => (id, newDatabase.GetValueOrDefault(id), newDatabase.ContainsKey(id)))],
                [.. resolved.Select(id => (id, (string?)newBases.GetValueOrDefault(id)))],
                []);
            Assert.False(new SyncView { Database = new(database), Base = new(bases), EventSeq = 10 }.Follow(changes with { EventsHeld = 4 }, 15));
            Assert.True(view.Follow(changes, 15));
            Assert.Equal(newDatabase.OrderBy(kv => kv.Key, StringComparer.Ordinal), view.Database.OrderBy(kv => kv.Key, StringComparer.Ordinal));
            Assert.Equal(newBases.OrderBy(kv => kv.Key, StringComparer.Ordinal), view.Base.OrderBy(kv => kv.Key, StringComparer.Ordinal));
            var yaml = pool.Where(_ => random.Next(2) == 0).ToDictionary(id => id, _ => Hash() ?? "h2", StringComparer.Ordinal);
            Assert.True(SyncPlanner.Candidates(yaml, newDatabase, newBases, [], []).SetEquals(SyncPlanner.Candidates(yaml, view.Database, view.Base, [], [])));
        }, iter: 1_000);
    }

    private static IEnumerable<string> Changes(SyncPlan plan) =>
        plan.Actions.Where(a => a.Kind != SyncActionKind.InSync).Select(a => $"{a.Id}|{a.Kind}|{a.Result?.ContentHash}");

    private static void WriteFile(SyncTestBed bed, IReadOnlyDictionary<string, string> tasks)
    {
        var text = new StringBuilder("version: 1\ntasks:\n");
        foreach (var (id, command) in tasks)
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"  {id}:\n    schedule: \"@daily\"\n    command: {command}\n");
        bed.WriteFile(text.ToString());
    }
}
