using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>The runner against a real database and a real file: each direction, the guards, invalid files (SPEC §4).</summary>
public class SyncRunnerTests
{
    [Fact]
    public async Task First_sync_imports_the_file_into_an_empty_database_and_audits_it_as_yaml()
    {
        await using var bed = await SyncTestBed.CreateAsync("run_first_import");
        var bytes = bed.ReadFileBytes();

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal((3, 0, 0, 0, 0), (result.Inserts, result.Updates, result.Deletes, result.Exports, result.NewConflicts));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(["alpha", "beta", "gamma"], tasks.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(("Nightly backup", 2, "7"), (tasks["alpha"].Name, tasks["alpha"].MaxRetries, tasks["alpha"].Args["keep"].Text));
        Assert.Equal(bytes, bed.ReadFileBytes());

        var history = await bed.Tasks.HistoryAsync(null);
        Assert.Equal(3, history.Count);
        Assert.All(history, h => Assert.Equal(("create", "yaml", "schedsync:cli", result.RunId), (h.Action, h.Source, h.Actor, h.SyncRunId)));
        Assert.Equal(1, await bed.CountAsync("sync_runs WHERE status = 'completed' AND trigger = 'cli' AND inserts = 3 AND id = $1", result.RunId!.Value));
    }

    [Fact]
    public async Task Second_sync_without_changes_is_a_no_op_that_touches_nothing_and_records_no_run()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_noop");
        var runs = await bed.CountAsync("sync_runs");
        var database = await bed.DatabaseFingerprintAsync();
        var counter = await bed.ChangeCounterAsync();
        var mtime = File.GetLastWriteTimeUtc(bed.ConfigPath);

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.NoOp, result.Status);
        Assert.Null(result.RunId);
        Assert.Equal(runs, await bed.CountAsync("sync_runs"));
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(counter, await bed.ChangeCounterAsync());
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(bed.ConfigPath));
    }

    [Fact]
    public async Task File_edit_updates_the_database_row_and_is_audited_as_yaml_without_rewriting_the_file()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_file_edit");
        bed.EditFile("\"*/5 * * * *\"", "\"*/10 * * * *\"");
        var bytes = bed.ReadFileBytes();

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal((0, 1, 0, 0), (result.Inserts, result.Updates, result.Deletes, result.Exports));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal("*/10 * * * *", tasks["beta"].Schedule);
        Assert.Equal(2L, (await bed.Tasks.GetAsync("beta"))!.Version);
        Assert.Equal(bytes, bed.ReadFileBytes());
        var last = (await bed.Tasks.HistoryAsync("beta"))[^1];
        Assert.Equal(("update", "yaml", result.RunId), (last.Action, last.Source, last.SyncRunId));
    }

    [Fact]
    public async Task Plain_sql_update_reaches_the_file_rewriting_only_that_task()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_sql_update");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '*/10 * * * *' WHERE id = 'beta'");

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal((0, 0, 1), (result.Inserts + result.Updates + result.Deletes, result.NewConflicts, result.Exports));
        Assert.Equal(SyncTestBed.ReplaceOnce(SyncTestBed.InitialYaml, "\"*/5 * * * *\"", "\"*/10 * * * *\""), bed.ReadFile());
        await bed.AssertConvergedAsync();
        Assert.Equal(ConfigFileStore.Checksum(bed.ReadFileBytes()), await bed.ScalarAsync<string>("SELECT synced_file_checksum FROM sync_replicas"));
        Assert.Equal(SyncTestBed.InitialYaml, File.ReadAllText(bed.ConfigPath + ".bak"));
    }

    [Theory]
    [InlineData("    tags: [ops, nightly]\n")]
    [InlineData("    args: { target: s3 }\n")]
    public async Task Plain_sql_update_of_a_task_whose_last_field_is_a_flow_collection_reaches_the_file(string lastLine)
    {
        var yaml = "version: 1\ntasks:\n  alpha:\n    schedule: \"0 3 * * *\"\n    command: backup\n" + lastLine
            + "  beta:\n    schedule: \"0 4 * * *\"\n    command: other\n";
        await using var bed = await SyncTestBed.CreateAsync("run_flow_end", yaml);
        Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *' WHERE id = 'alpha'");

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        Assert.Equal(SyncTestBed.ReplaceOnce(yaml, "\"0 3 * * *\"", "\"0 5 * * *\""), bed.ReadFile());
        await bed.AssertConvergedAsync();
    }

    [Fact]
    public async Task Plain_sql_insert_is_appended_to_the_file_keeping_every_other_line()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_sql_insert");
        await bed.ExecuteAsync("""
            INSERT INTO scheduled_tasks (id, name, schedule, timezone, command, args, tags)
            VALUES ('delta', 'Delta report', '0 1 * * 1', 'Europe/Berlin', 'report --weekly', '{"to": "ops@example.com"}', '{reports}')
            """);

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        var text = bed.ReadFile();
        AssertKeepsLinesInOrder(SyncTestBed.InitialYaml, text);
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("Delta report", "Europe/Berlin", "ops@example.com"), (tasks["delta"].Name, tasks["delta"].Timezone, tasks["delta"].Args["to"].Text));
        Assert.Contains("  delta:\n    name: Delta report\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_sql_delete_removes_only_that_task_from_the_file()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_sql_delete");
        await bed.ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = 'beta'");

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1, 0), (result.Status, result.Exports, result.Deletes));
        // beta goes with its own comment line; every other byte stays.
        Assert.Equal(SyncTestBed.ReplaceOnce(SyncTestBed.InitialYaml, """
              # beta keeps the cache warm
              beta:
                schedule: "*/5 * * * *"
                command: warm-cache
                enabled: false

            """, ""), bed.ReadFile());
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(["alpha", "gamma"], tasks.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Plain_sql_rename_of_a_task_id_reaches_the_file()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_sql_rename");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET id = 'gamma-renamed' WHERE id = 'gamma'");

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Completed, result.Status);
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(["alpha", "beta", "gamma-renamed"], tasks.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Missing_file_is_created_from_the_database_on_the_first_sync()
    {
        await using var bed = await SyncTestBed.CreateAsync("run_create_file", yaml: null);
        foreach (var id in new[] { "beta", "alpha" })
            await bed.Tasks.CreateAsync(new TaskDefinition { Id = id, Name = id, Schedule = "0 3 * * *", Timezone = "UTC", Command = "run-" + id }, new ChangeContext("api", "alice"));

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 2, 0), (result.Status, result.Exports, result.Inserts));
        Assert.Equal(ScheduleWriter.WriteNew((await bed.DatabaseTasksAsync()).Values), bed.ReadFile());
        await bed.AssertConvergedAsync();
    }

    [Fact]
    public async Task Emptied_file_is_refused_and_changes_nothing_unless_mass_delete_is_allowed()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_emptied");
        bed.WriteFile("version: 1\ntasks: {}\n");
        var database = await bed.DatabaseFingerprintAsync();
        var bases = await bed.BaseHashesAsync();

        var refused = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Refused, refused.Status);
        Assert.Contains("--allow-mass-delete", refused.Error, StringComparison.Ordinal);
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(bases, await bed.BaseHashesAsync());
        Assert.Equal("version: 1\ntasks: {}\n", bed.ReadFile());
        Assert.Equal(1, await bed.CountAsync("sync_runs WHERE status = 'failed' AND error LIKE '%--allow-mass-delete%'"));

        var allowed = await bed.SyncAsync(allowMassDelete: true);

        Assert.Equal((SyncStatus.Completed, 3), (allowed.Status, allowed.Deletes));
        Assert.Empty(await bed.AssertConvergedAsync());
        Assert.Equal(3, await bed.CountAsync("task_audit WHERE action = 'delete' AND source = 'yaml'"));
    }

    [Fact]
    public async Task Deleted_file_is_refused_and_changes_nothing_unless_mass_delete_is_allowed()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_deleted_file");
        File.Delete(bed.ConfigPath);
        var database = await bed.DatabaseFingerprintAsync();

        var refused = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Refused, refused.Status);
        Assert.Contains("--allow-mass-delete", refused.Error, StringComparison.Ordinal);
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.False(File.Exists(bed.ConfigPath));

        var allowed = await bed.SyncAsync(allowMassDelete: true);

        Assert.Equal((SyncStatus.Completed, 3), (allowed.Status, allowed.Deletes));
        Assert.Equal(0, await bed.CountAsync("scheduled_tasks"));
        Assert.Empty(await bed.BaseHashesAsync());
    }

    [Fact]
    public async Task Emptied_table_is_refused_and_leaves_the_file_unchanged()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_truncated");
        await bed.ExecuteAsync("TRUNCATE scheduled_tasks");

        var refused = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Refused, refused.Status);
        Assert.Contains("--allow-mass-delete", refused.Error, StringComparison.Ordinal);
        Assert.Equal(SyncTestBed.InitialYaml, bed.ReadFile());
        Assert.Equal(3, (await bed.BaseHashesAsync()).Count);
    }

    [Fact]
    public async Task Two_syncs_started_at_once_import_the_file_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("run_concurrent");

        var results = await Task.WhenAll(Task.Run(() => bed.SyncAsync()), Task.Run(() => bed.SyncAsync()));

        Assert.Equal([SyncStatus.NoOp, SyncStatus.Completed], results.Select(r => r.Status).Order());
        Assert.Equal(3, results.Sum(r => r.Inserts));
        Assert.Equal(3, await bed.CountAsync("task_audit"));
        Assert.Equal(1, await bed.CountAsync("sync_runs"));
        await bed.AssertConvergedAsync();
    }

    [Fact]
    public async Task Invalid_file_changes_nothing_on_either_side_and_the_export_follows_once_it_is_valid_again()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_invalid_file");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");
        // A person mid-edit: a typo in gamma (line 17) and a change to alpha that must not be imported yet.
        bed.EditFile("    schedule: \"@daily\"", "    shedule: \"@daily\"");
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");
        var invalid = bed.ReadFileBytes();
        var database = await bed.DatabaseFingerprintAsync();
        var bases = await bed.BaseHashesAsync();

        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.InvalidFile, result.Status);
        Assert.Contains(result.Problems, p => p.Line == 17 && p.Column == 5 && p.Message.Contains("shedule", StringComparison.Ordinal));
        Assert.All(result.Problems, p => Assert.True(p.Line > 0 && p.Column > 0, p.ToString()));
        Assert.Equal(invalid, bed.ReadFileBytes());
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(bases, await bed.BaseHashesAsync());

        bed.EditFile("    shedule: \"@daily\"", "    schedule: \"@daily\"");
        var valid = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1, 1), (valid.Status, valid.Updates, valid.Exports));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("warm-cache --all", "0 4 * * *"), (tasks["beta"].Command, tasks["alpha"].Schedule));
    }

    [Fact]
    public async Task Row_made_invalid_with_sql_is_skipped_and_the_file_keeps_its_last_good_state_until_the_row_is_fixed()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_invalid_row");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = 'every full moon' WHERE id = 'beta'");
        bed.EditFile("command: gamma", "command: gamma --file");

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1, 0, 0), (result.Status, result.Updates, result.Exports, result.Deletes));
        Assert.Equal(SyncActionKind.SkipInvalid, result.Plan!.Actions.Single(a => a.Id == "beta").Kind);
        Assert.Equal("*/5 * * * *", bed.FileTasks()["beta"].Schedule);
        Assert.Equal("every full moon", await bed.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'beta'"));

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '*/7 * * * *' WHERE id = 'beta'");
        var fixedRow = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1), (fixedRow.Status, fixedRow.Exports));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("*/7 * * * *", "gamma --file"), (tasks["beta"].Schedule, tasks["gamma"].Command));
    }

    [Fact]
    public async Task Both_sides_changing_different_fields_of_a_task_are_merged_on_both_sides()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_merge");
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = '/opt/backup.sh', tags = '{nightly}' WHERE id = 'alpha'");

        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 0, 1, 1), (result.Status, result.NewConflicts, result.Updates, result.Exports));
        Assert.Equal(SyncActionKind.Merge, Assert.Single(result.Plan!.Changes).Kind);
        var alpha = (await bed.AssertConvergedAsync())["alpha"];
        Assert.Equal(("0 4 * * *", "/opt/backup.sh", "nightly", "Nightly backup"), (alpha.Schedule, alpha.Command, Assert.Single(alpha.Tags), alpha.Name));
        Assert.Contains("# alpha: the nightly backup\n", bed.ReadFile(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_skip_task_valid_tasks_sync_and_the_invalid_one_keeps_its_last_good_state_on_both_sides()
    {
        await using var bed = await SyncTestBed.SyncedAsync("run_skip_task");
        var options = new SyncOptions { OnInvalid = InvalidTaskPolicy.SkipTask };
        var alphaBase = (await bed.BaseHashesAsync())["alpha"];
        bed.EditFile("\"0 3 * * *\"", "\"every night\"");          // alpha becomes invalid in the file
        bed.EditFile("command: warm-cache", "command: warm-cache --all"); // beta changes in the file
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'gamma --fast' WHERE id = 'gamma'");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 5 WHERE id = 'alpha'");
        var alphaRow = await bed.ScalarAsync<string>("SELECT to_jsonb(t)::text FROM scheduled_tasks t WHERE id = 'alpha'");

        var result = await bed.SyncAsync(options: options);

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal((1, 1, 0), (result.Updates, result.Exports, result.Deletes));
        Assert.Equal(SyncActionKind.SkipInvalid, result.Plan!.Actions.Single(a => a.Id == "alpha").Kind);
        var text = bed.ReadFile();
        Assert.Contains("    schedule: \"every night\"\n", text, StringComparison.Ordinal);
        Assert.Contains("    command: gamma --fast\n", text, StringComparison.Ordinal);
        Assert.Equal(alphaRow, await bed.ScalarAsync<string>("SELECT to_jsonb(t)::text FROM scheduled_tasks t WHERE id = 'alpha'"));
        Assert.Equal("warm-cache --all", (await bed.Tasks.GetAsync("beta"))!.Task!.Command);
        Assert.Equal(alphaBase, (await bed.BaseHashesAsync())["alpha"]);

        // Once alpha is valid again (as it was), the database's change to it is exported: it was never treated as deleted.
        bed.EditFile("\"every night\"", "\"0 3 * * *\"");
        var repaired = await bed.SyncAsync(options: options);

        Assert.Equal((SyncStatus.Completed, 1), (repaired.Status, repaired.Exports));
        Assert.Equal(5, (await bed.AssertConvergedAsync())["alpha"].MaxRetries);
    }

    /// <summary>Every line of <paramref name="original"/> is still in <paramref name="actual"/>, in the same order.</summary>
    private static void AssertKeepsLinesInOrder(string original, string actual)
    {
        var lines = actual.Split('\n');
        var at = 0;
        foreach (var line in original.Split('\n'))
        {
            while (at < lines.Length && lines[at] != line) at++;
            Assert.True(at < lines.Length, $"line '{line}' is missing or out of order in:\n{actual}");
            at++;
        }
    }
}
