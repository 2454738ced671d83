using System.Text.Json;
using ScheduleSync.Database;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;

namespace ScheduleSync.Tests.Sync;

/// <summary>Conflicts end to end: detected once, the task frozen, resolved onto both sides, or closed by hand.</summary>
public class ConflictTests
{
    /// <summary>
    /// A synced bed where alpha's schedule changed to 0 5 in the file and 0 6 in the database (a conflict), plus a
    /// file-only change of beta and a database-only change of gamma that must sync regardless.
    /// </summary>
    private static async Task<SyncResult> MakeConflictAsync(SyncTestBed bed)
    {
        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        bed.EditFile("name: Nightly backup", "name: Nightly backup (file)");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *', max_retries = 4 WHERE id = 'alpha'");
        bed.EditFile("command: warm-cache", "command: warm-cache --all");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'gamma --fast' WHERE id = 'gamma'");
        return await bed.SyncAsync();
    }

    private static async Task<ConflictRecord> OpenConflictAsync(SyncTestBed bed) =>
        Assert.Single(await bed.Conflicts().ListAsync());

    [Fact]
    public async Task Same_field_changed_on_both_sides_is_stored_once_and_freezes_only_that_task()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_detect");
        var result = await MakeConflictAsync(bed);
        var alphaBase = ScheduleSync.Yaml.ScheduleLoader.Parse(SyncTestBed.InitialYaml, "initial.yml").ValidTasks.Single(t => t.Id == "alpha").ContentHash;

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal((1, 1, 1, 1), (result.NewConflicts, result.OpenConflicts, result.Updates, result.Exports));
        var conflict = await OpenConflictAsync(bed);
        Assert.Equal(("alpha", "open", result.RunId), (conflict.TaskId, conflict.Status, await bed.ScalarAsync<long?>("SELECT sync_run_id FROM sync_conflicts")));
        Assert.Equal(alphaBase, conflict.Base!.ContentHash);
        Assert.Equal(("0 3 * * *", "0 5 * * *", "0 6 * * *"), (conflict.Base.Schedule, conflict.Yaml!.Schedule, conflict.Database!.Schedule));
        Assert.Equal((2, 2, 4), (conflict.Base.MaxRetries, conflict.Yaml.MaxRetries, conflict.Database.MaxRetries));
        var schedule = Assert.Single(conflict.Differences(), d => d.ChangedOnBothSides);
        Assert.Equal("schedule", schedule.Field);

        // Frozen: neither side of alpha was overwritten, its base kept; beta and gamma synced.
        var file = bed.FileTasks();
        var database = await bed.DatabaseTasksAsync();
        Assert.Equal(("0 5 * * *", "0 6 * * *"), (file["alpha"].Schedule, database["alpha"].Schedule));
        Assert.Equal(alphaBase, (await bed.BaseHashesAsync())["alpha"]);
        Assert.Equal(("warm-cache --all", "warm-cache --all"), (file["beta"].Command, database["beta"].Command));
        Assert.Equal(("gamma --fast", "gamma --fast"), (file["gamma"].Command, database["gamma"].Command));

        // Further runs, and further edits of the frozen task, store nothing twice and overwrite neither side.
        bed.EditFile("\"0 5 * * *\"", "\"0 7 * * *\"");
        var again = await bed.SyncAsync();
        var forced = await bed.SyncAsync(force: true);

        Assert.Equal((SyncStatus.Completed, 0, 1, 0, 0), (again.Status, again.NewConflicts, again.OpenConflicts, again.Updates, again.Exports));
        Assert.Equal((SyncStatus.Completed, 0, 1), (forced.Status, forced.NewConflicts, forced.OpenConflicts));
        Assert.Equal(1, await bed.CountAsync("sync_conflicts"));
        Assert.Equal(("0 7 * * *", "0 6 * * *"), (bed.FileTasks()["alpha"].Schedule, (await bed.DatabaseTasksAsync())["alpha"].Schedule));
    }

    [Fact]
    public async Task Keep_yaml_puts_the_file_version_on_both_sides_sets_the_base_and_is_audited_as_resolve()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_keep_yaml");
        await MakeConflictAsync(bed);
        var conflict = await OpenConflictAsync(bed);
        var fileBytes = bed.ReadFileBytes();

        var resolved = await bed.Conflicts().ResolveAsync(conflict.Id, ResolutionChoice.KeepYaml, null, "tester");

        await AssertResolvedAsync(bed, resolved, "keep_yaml", schedule: "0 5 * * *", name: "Nightly backup (file)", maxRetries: 2);
        Assert.Equal(fileBytes, bed.ReadFileBytes());
    }

    [Fact]
    public async Task Keep_db_puts_the_database_version_on_both_sides_sets_the_base_and_is_audited_as_resolve()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_keep_db");
        await MakeConflictAsync(bed);
        var conflict = await OpenConflictAsync(bed);

        var version = (await bed.Tasks.GetAsync("alpha"))!.Version;

        var resolved = await bed.Conflicts().ResolveAsync(conflict.Id, ResolutionChoice.KeepDb, null, "tester");

        // The database already holds the result: its row is not rewritten (no version bump, so no task_audit row either;
        // the decision is recorded on the conflict: choice, result, resolved_by).
        await AssertResolvedAsync(bed, resolved, "keep_db", schedule: "0 6 * * *", name: "Nightly backup", maxRetries: 4, databaseChanged: false);
        Assert.Equal(version, (await bed.Tasks.GetAsync("alpha"))!.Version);
        Assert.Contains("  # alpha: the nightly backup\n  alpha:\n", bed.ReadFile(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Merge_takes_each_side_changes_and_the_given_value_for_the_field_both_changed()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_merge");
        await MakeConflictAsync(bed);
        var conflict = await OpenConflictAsync(bed);
        var service = bed.Conflicts();

        var missing = await Assert.ThrowsAsync<ResolutionException>(() => service.ResolveAsync(conflict.Id, ResolutionChoice.Merge, null, "tester"));
        Assert.Contains("fields.schedule", missing.Errors.Keys);
        Assert.Equal("open", (await service.GetAsync(conflict.Id))!.Status);

        var fields = new Dictionary<string, JsonElement> { ["schedule"] = JsonSerializer.SerializeToElement("0 8 * * *") };
        var resolved = await service.ResolveAsync(conflict.Id, ResolutionChoice.Merge, fields, "tester");

        // name from the file, max_retries from the database, schedule as given.
        await AssertResolvedAsync(bed, resolved, "merge", schedule: "0 8 * * *", name: "Nightly backup (file)", maxRetries: 4);
        await Assert.ThrowsAsync<ResolutionException>(() => service.ResolveAsync(conflict.Id, ResolutionChoice.KeepDb, null, "tester"));
    }

    private static async Task AssertResolvedAsync(SyncTestBed bed, ConflictRecord resolved, string choice, string schedule, string name, int maxRetries, bool databaseChanged = true)
    {
        Assert.Equal(("resolved", choice, "tester"), (resolved.Status, resolved.Choice, resolved.ResolvedBy));
        Assert.NotNull(resolved.ResolvedAt);
        var tasks = await bed.AssertConvergedAsync();
        var alpha = tasks["alpha"];
        Assert.Equal((schedule, name, maxRetries), (alpha.Schedule, alpha.Name, alpha.MaxRetries));
        Assert.Equal(alpha.ContentHash, resolved.Result!.ContentHash);
        Assert.Equal(("warm-cache --all", "gamma --fast"), (tasks["beta"].Command, tasks["gamma"].Command));
        Assert.Contains("# end of file\n", bed.ReadFile(), StringComparison.Ordinal);

        if (databaseChanged)
        {
            var audit = (await bed.Tasks.HistoryAsync("alpha"))[^1];
            Assert.Equal(("update", "resolve", "tester"), (audit.Action, audit.Source, audit.Actor));
            Assert.Equal(resolved.Result.ContentHash, TaskJson.FromCanonical("alpha", audit.After!).ContentHash);
        }

        // The next sync finds nothing to do and no conflict.
        var next = await bed.SyncAsync();
        Assert.Equal((0, 0, 0, 0), (next.Updates + next.Inserts + next.Deletes, next.Exports, next.NewConflicts, next.OpenConflicts));
        await bed.AssertConvergedAsync();
    }

    [Fact]
    public async Task Conflict_closes_itself_when_both_sides_are_made_equal_by_hand()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_auto_close");
        await MakeConflictAsync(bed);
        var conflict = await OpenConflictAsync(bed);
        // Someone makes the database agree with the file.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *', max_retries = 2, name = 'Nightly backup (file)' WHERE id = 'alpha'");

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 0, 0), (result.Status, result.NewConflicts, result.OpenConflicts));
        var closed = (await bed.Conflicts().GetAsync(conflict.Id))!;
        Assert.Equal(("resolved", "auto_closed"), (closed.Status, closed.Choice));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(tasks["alpha"].ContentHash, closed.Result!.ContentHash);
    }

    [Fact]
    public async Task First_sync_with_tasks_on_both_sides_takes_equal_ones_as_base_and_stores_different_ones_as_conflicts()
    {
        await using var bed = await SyncTestBed.CreateAsync("conflict_first_sync");
        var context = new ChangeContext("api", "alice");
        var file = bed.FileTasks();
        await bed.Tasks.CreateAsync(file["beta"], context);
        await bed.Tasks.CreateAsync(file["gamma"] with { Command = "gamma --db" }, context);

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1, 1), (result.Status, result.Inserts, result.NewConflicts));
        var conflict = await OpenConflictAsync(bed);
        Assert.Equal(("gamma", null, "gamma", "gamma --db"), (conflict.TaskId, conflict.Base, conflict.Yaml!.Command, conflict.Database!.Command));
        var bases = await bed.BaseHashesAsync();
        Assert.Equal(["alpha", "beta"], bases.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(file["beta"].ContentHash, bases["beta"]);
    }

    [Fact]
    public async Task Deleted_in_the_database_and_changed_in_the_file_is_a_conflict_that_keep_yaml_restores()
    {
        await using var bed = await SyncTestBed.SyncedAsync("conflict_delete_change");
        await bed.ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = 'gamma'");
        bed.EditFile("command: gamma", "command: gamma --file");

        var result = await bed.SyncAsync();

        Assert.Equal((1, 0), (result.NewConflicts, result.Exports));
        var conflict = await OpenConflictAsync(bed);
        Assert.Equal(("gamma", null), (conflict.TaskId, conflict.Database));
        Assert.Equal("gamma --file", bed.FileTasks()["gamma"].Command);

        await bed.Conflicts().ResolveAsync(conflict.Id, ResolutionChoice.KeepYaml, null, "tester");

        Assert.Equal("gamma --file", (await bed.AssertConvergedAsync())["gamma"].Command);
        Assert.Equal(("create", "resolve"), (await bed.Tasks.HistoryAsync("gamma")).Select(h => (h.Action, h.Source)).Last());
    }
}
