using System.Text;
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
