using System.Text.Json;
using ScheduleSync.Sync;
using ScheduleSync.Tests.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// SPEC §2 step 5 through the real paths that write the file (plain SQL, a merge resolution, a restore followed by a
/// sync): each changes only the lines of the fields that changed. And issue 10 item 6: a file the writer cannot edit in
/// place (JSON style, explicit '?' keys) still takes database changes and still imports its own new tasks.
/// </summary>
public class FieldWriteBackSyncTests
{
    private const string Rich = FieldWriteBackTests.Rich;
    private const string ScheduleLine = "    schedule: \"0 3 * * *\"        # double-quoted\n";

    private static async Task<SyncTestBed> RichBedAsync(string prefix)
    {
        var bed = await SyncTestBed.CreateAsync(prefix, Rich);
        var first = await bed.SyncAsync();
        Assert.Equal(SyncStatus.Completed, first.Status);
        Assert.Equal(2, first.Inserts);
        return bed;
    }

    [Fact]
    public async Task A_plain_sql_update_of_one_field_changes_one_line_of_the_file()
    {
        await using var bed = await RichBedAsync("fieldwb_sql");

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '*/5 * * * *' WHERE id = 'rich'");
        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        Assert.Empty(result.Warnings);
        Assert.Equal(Rich.Replace(ScheduleLine, "    schedule: \"*/5 * * * *\"      # double-quoted\n", StringComparison.Ordinal), bed.ReadFile());
        await bed.AssertBothSidesEqualAsync();
    }

    [Fact]
    public async Task A_plain_sql_update_of_args_and_tags_changes_only_their_entries()
    {
        await using var bed = await RichBedAsync("fieldwb_sql_args");

        await bed.ExecuteAsync("""UPDATE scheduled_tasks SET args = '{"target": "s3", "keep": 8, "mail": "kpi@example.com"}'::jsonb, tags = ARRAY['ops', 'backup', 'nightly'] WHERE id = 'rich'""");
        var result = await bed.SyncAsync();

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal(Rich
            .Replace("      keep: 7                    # int\n", "      keep: 8                    # int\n", StringComparison.Ordinal)
            .Replace("      - backup                   # second\n", "      - backup                   # second\n      - nightly\n", StringComparison.Ordinal), bed.ReadFile());
    }

    [Fact]
    public async Task A_merge_resolution_changes_only_the_merged_fields_and_keeps_the_folded_description()
    {
        await using var bed = await RichBedAsync("fieldwb_merge");
        // Both sides change the schedule (a conflict); the file also changes the command, the database the timeout.
        bed.EditFile(ScheduleLine, "    schedule: \"0 4 * * *\"        # double-quoted\n");
        bed.EditFile("command: /usr/bin/run --all  #", "command: /usr/bin/run --most #");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *', timeout_seconds = 60 WHERE id = 'rich'");
        Assert.Equal(1, (await bed.SyncAsync()).NewConflicts);
        var conflict = Assert.Single(await bed.Conflicts().ListAsync());
        var before = bed.ReadFile();

        var fields = new Dictionary<string, JsonElement> { ["schedule"] = JsonSerializer.SerializeToElement("0 6 * * *") };
        await bed.Conflicts().ResolveAsync(conflict.Id, ResolutionChoice.Merge, fields, "tester");

        Assert.Equal(before
            .Replace("    schedule: \"0 4 * * *\"        # double-quoted\n", "    schedule: \"0 6 * * *\"        # double-quoted\n", StringComparison.Ordinal)
            .Replace("    timeout_seconds: 3600        # int\n", "    timeout_seconds: 60          # int\n", StringComparison.Ordinal), bed.ReadFile());
        Assert.Contains("    description: >               # folded\n      Folded text that\n      continues here.\n", bed.ReadFile(), StringComparison.Ordinal);
        await bed.AssertBothSidesEqualAsync();
    }

    [Fact]
    public async Task The_export_after_a_restore_changes_only_field_lines()
    {
        await using var bed = await RichBedAsync("fieldwb_restore");
        // An export makes a backup of the original file.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 4 * * *' WHERE id = 'rich'");
        await bed.SyncAsync();
        var store = bed.Runner().Store;
        var original = store.ListBackups().First(b => File.ReadAllText(b.Path) == Rich);

        store.Restore(original);
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET timeout_seconds = 60 WHERE id = 'rich'");
        var result = await bed.Runner().RunAsync("cli", source: "restore");

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Empty(result.Warnings);
        // Whatever the restore keeps of each side, the file differs from the restored one only in those fields' lines.
        var restored = Rich.Split('\n');
        var now = bed.ReadFile().Split('\n');
        Assert.Equal(restored.Length, now.Length);
        var differing = restored.Zip(now).Where(p => p.First != p.Second).Select(p => p.First.TrimStart().Split(':')[0]).ToList();
        Assert.Contains("timeout_seconds", differing);
        Assert.All(differing, key => Assert.Contains(key, new[] { "schedule", "timeout_seconds" }));
        await bed.AssertBothSidesEqualAsync();
    }

    // ---- issue 10 item 6: any accepted file is writable ----

    private const string JsonStyle = """
        {"version": 1, "tasks": {"a": {"schedule": "@daily", "command": "run-a"}, "b": {"schedule": "@hourly", "command": "run-b"}}}

        """;

    private const string ExplicitKeys = """
        ? version
        : 1
        ? tasks
        :
          ? a
          : schedule: "@daily"
            command: run-a
          ? b
          : schedule: "@hourly"
            command: run-b

        """;

    [Theory]
    [InlineData("json", JsonStyle, "\"b\": {\"schedule\": \"@hourly\", \"command\": \"run-b\"}", "\"b\": {\"schedule\": \"@hourly\", \"command\": \"run-b\"}, \"c\": {\"schedule\": \"@weekly\", \"command\": \"run-c\"}")]
    [InlineData("explicit", ExplicitKeys, "    command: run-b\n", "    command: run-b\n  c:\n    schedule: \"@weekly\"\n    command: run-c\n")]
    public async Task A_file_that_cannot_be_edited_in_place_takes_a_database_change_and_its_new_task_is_imported(string name, string yaml, string find, string replace)
    {
        await using var bed = await SyncTestBed.CreateAsync("fieldwb_layout_" + name, yaml);
        Assert.Equal(2, (await bed.SyncAsync()).Inserts);

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'run-a --changed' WHERE id = 'a'");
        bed.EditFile(find, replace);
        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 1, 1), (result.Status, result.Inserts, result.Exports));
        Assert.NotEmpty(result.Warnings);
        var tasks = await bed.AssertBothSidesEqualAsync();
        Assert.Equal(["a", "b", "c"], tasks.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("run-a --changed", tasks["a"].Command);
        Assert.Equal(1, await bed.CountAsync("sync_runs WHERE status = 'completed' AND exports = 1 AND inserts = 1"));

        // And the file stays writable from then on.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'run-b --changed' WHERE id = 'b'");
        Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
        Assert.Equal("run-b --changed", bed.FileTasks()["b"].Command);
    }
}
