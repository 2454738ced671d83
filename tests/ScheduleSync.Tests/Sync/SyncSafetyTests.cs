using System.Text;
using System.Text.Json;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// SPEC §4's promises for bad days (issue 10): restore repairs the file and keeps the database, a refused mass deletion
/// stays refused, a crash between the file write and the commit is not a conflict, rows broken with SQL are reported.
/// The real executable, real files, PostgreSQL, kill -9.
/// </summary>
public class SyncSafetyTests
{
    private static Task<ProcessOutcome> CliAsync(SyncTestBed bed, params string[] args) =>
        SchedSyncProcess.RunAsync([.. args, "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

    private static void AssertExit(int expected, ProcessOutcome outcome) =>
        Assert.True(outcome.ExitCode == expected && !outcome.TimedOut, $"expected exit {expected}, got {outcome}");

    private static readonly string Garbage = "\0\0 {[ garbage: : :\n\t- ]";

    private const string Delta = """
          delta:
            schedule: "@hourly"
            command: added-in-an-editor

        """;

    /// <summary>
    /// Synced, then a database change exported (the file is written through the store, so backups exist), then a
    /// person adds <c>delta</c> with an editor and it is imported: the newest backup predates <c>delta</c>.
    /// </summary>
    private static async Task<SyncTestBed> WithTaskNewerThanEveryBackupAsync(string prefix)
    {
        var bed = await SyncTestBed.SyncedAsync(prefix);
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");
        Assert.Equal(1, (await bed.SyncAsync()).Exports);
        Assert.NotEmpty(ConfigFileStore.Open(bed.ConfigPath).ListBackups());
        bed.EditFile("# end of file\n", Delta + "# end of file\n");
        Assert.Equal(1, (await bed.SyncAsync()).Inserts);
        Assert.DoesNotContain(ConfigFileStore.Open(bed.ConfigPath).ListBackups(),
            b => File.ReadAllText(b.Path).Contains("delta:", StringComparison.Ordinal));
        return bed;
    }

    // ---- item 1: restore ----

    [Fact]
    public async Task Restore_repairs_a_broken_file_and_keeps_a_task_added_after_the_newest_backup()
    {
        await using var bed = await WithTaskNewerThanEveryBackupAsync("safety_restore_keeps");
        var database = await bed.DatabaseFingerprintAsync();
        bed.WriteFile(Garbage);
        AssertExit(3, await CliAsync(bed, "sync"));

        var restored = await CliAsync(bed, "restore");

        AssertExit(0, restored);
        // The database was kept, the file now holds the backup plus what the database has that the backup lacks.
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal("added-in-an-editor", tasks["delta"].Command);
        Assert.Equal("warm-cache --all", tasks["beta"].Command);
        Assert.Contains("  # alpha: the nightly backup\n", bed.ReadFile(), StringComparison.Ordinal);

        var next = await CliAsync(bed, "sync", "--force", "--json");

        AssertExit(0, next);
        Assert.Equal(0, JsonDocument.Parse(next.Stdout).RootElement.GetProperty("deletes").GetInt32());
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'delta'"));
    }

    [Fact]
    public async Task Restore_takes_the_newest_valid_backup_when_newer_ones_are_invalid()
    {
        await using var bed = await SyncTestBed.SyncedAsync("safety_restore_valid");
        var store = ConfigFileStore.Open(bed.ConfigPath);
        // A script writes a good version, then (through the lock protocol too) one the loader rejects.
        store.Update(s => s.Text.Replace("command: gamma", "command: gamma --v2", StringComparison.Ordinal));
        Assert.Equal(1, (await bed.SyncAsync()).Updates);
        var good = bed.ReadFileBytes();
        store.Update(s => s.Text.Replace("command: gamma --v2", "command: gamma --v3\n    enabled: yes", StringComparison.Ordinal));
        Assert.Equal(SyncStatus.InvalidFile, (await bed.SyncAsync()).Status);
        bed.WriteFile(Garbage);
        Assert.False(ScheduleLoader.Load(File.ReadAllBytes(store.ListBackups()[0].Path), "newest").IsValid);

        var restored = await CliAsync(bed, "restore");

        AssertExit(0, restored);
        Assert.Equal(good, bed.ReadFileBytes());
        Assert.Equal("gamma --v2", (await bed.AssertConvergedAsync())["gamma"].Command);
    }

    [Fact]
    public async Task Restore_revert_database_shows_the_plan_then_applies_the_backup_to_the_database()
    {
        await using var bed = await WithTaskNewerThanEveryBackupAsync("safety_restore_revert");
        bed.WriteFile(Garbage);
        var backup = ConfigFileStore.Open(bed.ConfigPath).ListBackups()[0];

        var reverted = await CliAsync(bed, "restore", "--revert-database");

        AssertExit(0, reverted);
        var plan = reverted.Stdout.IndexOf("- delta: delete from the database", StringComparison.Ordinal);
        var done = reverted.Stdout.IndexOf("restored ", StringComparison.Ordinal);
        Assert.True(plan >= 0 && done > plan, reverted.ToString());
        Assert.Equal(File.ReadAllBytes(backup.Path), bed.ReadFileBytes());
        var tasks = await bed.AssertConvergedAsync();
        Assert.False(tasks.ContainsKey("delta"));
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'delta' AND action = 'delete' AND source = 'restore'"));
    }

    [Fact]
    public async Task Restore_revert_database_is_refused_by_the_mass_delete_guard_and_changes_nothing()
    {
        var yaml = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 8; i++) yaml.Append($"  t{i}:\n    schedule: \"@daily\"\n    command: c{i}\n");
        await using var bed = await SyncTestBed.CreateAsync("safety_restore_guard", yaml.ToString());
        Assert.Equal(8, (await bed.SyncAsync()).Inserts);
        var store = ConfigFileStore.Open(bed.ConfigPath);
        // An old version with only two tasks, kept as a backup; the database moved on since.
        var old = Path.Combine(bed.Folder, "old.yml");
        File.WriteAllText(old, "version: 1\ntasks:\n  t0:\n    schedule: \"@daily\"\n    command: c0\n  t1:\n    schedule: \"@daily\"\n    command: c1\n");
        var file = bed.ReadFileBytes();
        var database = await bed.DatabaseFingerprintAsync();

        var refused = await CliAsync(bed, "restore", old, "--revert-database");

        AssertExit(1, refused);
        Assert.Contains("--allow-mass-delete", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(file, bed.ReadFileBytes());
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());

        Assert.Empty(store.ListBackups());

        // Without --revert-database the database is kept: the file gets the old version plus the six tasks it lacks.
        var kept = await CliAsync(bed, "restore", old);

        AssertExit(0, kept);
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(8, (await bed.AssertConvergedAsync()).Count);
    }

    // ---- item 2: the mass-deletion guard ----

    [Fact]
    public async Task Refused_mass_deletion_stays_refused_after_a_database_write_shifts_the_share_until_allowed()
    {
        var yaml = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 21; i++) yaml.Append($"  t{i:00}:\n    schedule: \"@daily\"\n    command: c{i}\n");
        await using var bed = await SyncTestBed.CreateAsync("safety_guard_persists", yaml.ToString());
        Assert.Equal(21, (await bed.SyncAsync()).Inserts);
        var lines = yaml.ToString().Split('\n');
        // The file loses t10..t20 (11 of 21).
        bed.WriteFile(string.Join('\n', lines.Take(2 + (10 * 3))) + "\n");
        var first = await bed.SyncAsync();
        Assert.Equal(SyncStatus.Refused, first.Status);

        // An unrelated write through the API's store; its sync (trigger "api") must not let 11 of 22 through.
        await bed.Tasks.CreateAsync(TaskDefinitionFor("added"), new ChangeContext("api", "api"));
        var api = await bed.Runner().RunAsync("api");

        Assert.Equal(SyncStatus.Refused, api.Status);
        Assert.Contains("allow_mass_delete=true", api.Error, StringComparison.Ordinal);
        Assert.Equal(22, await bed.CountAsync("scheduled_tasks"));
        Assert.DoesNotContain("added", bed.ReadFile(), StringComparison.Ordinal); // its export waits
        var status = await CliAsync(bed, "status", "--json");
        Assert.Contains("--allow-mass-delete", JsonDocument.Parse(status.Stdout).RootElement.GetProperty("refusal").GetString(), StringComparison.Ordinal);

        var allowed = await CliAsync(bed, "sync", "--allow-mass-delete");

        AssertExit(0, allowed);
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(11, tasks.Count);
        Assert.Contains("added", tasks.Keys);
    }

    [Fact]
    public async Task Refused_mass_deletion_ends_when_the_file_changes()
    {
        var yaml = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 6; i++) yaml.Append($"  t{i}:\n    schedule: \"@daily\"\n    command: c{i}\n");
        await using var bed = await SyncTestBed.CreateAsync("safety_guard_file_changes", yaml.ToString());
        Assert.Equal(6, (await bed.SyncAsync()).Inserts);
        var lines = yaml.ToString().Split('\n');
        bed.WriteFile(string.Join('\n', lines.Take(2 + (2 * 3))) + "\n"); // 4 of 6 gone
        Assert.Equal(SyncStatus.Refused, (await bed.SyncAsync()).Status);

        // The person puts two back: 2 of 6 is within the limit, and the file is no longer the one refused.
        bed.WriteFile(string.Join('\n', lines.Take(2 + (4 * 3))) + "\n");
        var result = await bed.SyncAsync();

        Assert.Equal((SyncStatus.Completed, 2), (result.Status, result.Deletes));
        Assert.Equal(4, (await bed.AssertConvergedAsync()).Count);
    }

    private static TaskDefinition TaskDefinitionFor(string id)
    {
        var draft = new TaskDraft { Id = id, Schedule = "@hourly", Command = "run-" + id };
        return draft.Build("UTC", (field, message) => Assert.Fail($"{field}: {message}"))!;
    }

    // ---- item 3: a crash between the file write and the commit ----

    [Fact]
    public async Task Sync_killed_after_the_file_write_while_sql_keeps_changing_the_task_is_no_conflict()
    {
        await using var bed = await SyncTestBed.SyncedAsync("safety_crash_export");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache v1' WHERE id = 'beta'");
        string[] sync = ["sync", "--json", "--config", bed.ConfigPath, "--database", bed.ConnectionString];

        var crashed = await SchedSyncProcess.RunAsync(sync, bed.Folder, new Dictionary<string, string?> { ["SCHEDSYNC_FAULT"] = "after-file" });

        Assert.True(crashed.ExitCode == ProcessOutcome.KilledExitCode, crashed.ToString());
        Assert.Equal("warm-cache v1", bed.FileTasks()["beta"].Command);
        // psql keeps working on the task: the same field, once more.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache v2' WHERE id = 'beta'");

        var recovered = await SchedSyncProcess.RunAsync(sync, bed.Folder);

        Assert.True(recovered.ExitCode == 0, recovered.ToString());
        using var summary = JsonDocument.Parse(recovered.Stdout);
        Assert.Equal((0, 1), (summary.RootElement.GetProperty("new_conflicts").GetInt32(), summary.RootElement.GetProperty("exports").GetInt32()));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal("warm-cache v2", tasks["beta"].Command);
        Assert.Equal(0, await bed.CountAsync("sync_exports"));
    }

    [Fact]
    public async Task Sync_killed_after_adding_a_task_to_the_file_while_sql_changes_it_is_no_conflict()
    {
        await using var bed = await SyncTestBed.SyncedAsync("safety_crash_add");
        await bed.ExecuteAsync("INSERT INTO scheduled_tasks (id, name, schedule, timezone, command) VALUES ('delta', 'delta', '@hourly', 'UTC', 'd1')");
        string[] sync = ["sync", "--json", "--config", bed.ConfigPath, "--database", bed.ConnectionString];

        var crashed = await SchedSyncProcess.RunAsync(sync, bed.Folder, new Dictionary<string, string?> { ["SCHEDSYNC_FAULT"] = "after-file" });

        Assert.True(crashed.ExitCode == ProcessOutcome.KilledExitCode, crashed.ToString());
        Assert.Equal("d1", bed.FileTasks()["delta"].Command);
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'd2' WHERE id = 'delta'");

        var recovered = await SchedSyncProcess.RunAsync(sync, bed.Folder);

        Assert.True(recovered.ExitCode == 0, recovered.ToString());
        Assert.Equal("d2", (await bed.AssertConvergedAsync())["delta"].Command);
    }

    // ---- item 12: rows that break the rules in the database ----

    [Fact]
    public async Task Sql_rows_breaking_the_rules_are_reported_by_sync_status_and_plan_and_sync_once_fixed()
    {
        await using var bed = await SyncTestBed.SyncedAsync("safety_invalid_rows");
        var file = bed.ReadFileBytes();
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = 'every tuesday' WHERE id = 'alpha'");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET timezone = 'Mars/Olympus_Mons' WHERE id = 'beta'");

        var sync = await CliAsync(bed, "sync");

        AssertExit(1, sync);
        Assert.Contains("'alpha'", sync.Stderr, StringComparison.Ordinal);
        Assert.Contains("'beta'", sync.Stderr, StringComparison.Ordinal);
        Assert.Contains("Mars/Olympus_Mons", sync.Stderr, StringComparison.Ordinal);
        Assert.Equal(file, bed.ReadFileBytes());
        // Not a silent no-op the second time.
        AssertExit(1, await CliAsync(bed, "sync"));
        Assert.Equal(2, await bed.CountAsync("sync_runs WHERE error LIKE '%break the rules%'"));

        var status = await CliAsync(bed, "status");
        AssertExit(1, status);
        Assert.Contains("invalid in the database: alpha:", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("invalid in the database: beta:", status.Stdout, StringComparison.Ordinal);
        var plan = await CliAsync(bed, "plan");
        Assert.Contains("? alpha: skip: invalid in the database", plan.Stdout, StringComparison.Ordinal);

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 4 * * *' WHERE id = 'alpha'");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET timezone = 'Europe/Paris' WHERE id = 'beta'");
        var fixedSync = await CliAsync(bed, "sync");

        AssertExit(0, fixedSync);
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("0 4 * * *", "Europe/Paris"), (tasks["alpha"].Schedule, tasks["beta"].Timezone));
        AssertExit(0, await CliAsync(bed, "status"));
    }

    [Fact]
    public async Task Sql_insert_without_name_or_timezone_gets_the_file_defaults_and_reaches_the_file()
    {
        var yaml = SyncTestBed.InitialYaml.Replace("version: 1\n", "version: 1\ndefaults:\n  timezone: Europe/Berlin\n", StringComparison.Ordinal);
        await using var bed = await SyncTestBed.CreateAsync("safety_sql_defaults", yaml);
        Assert.Equal(3, (await bed.SyncAsync()).Inserts);

        await bed.ExecuteAsync("INSERT INTO scheduled_tasks (id, schedule, command) VALUES ('delta', '@hourly', 'd')");

        Assert.Equal("delta|Europe/Berlin", await bed.ScalarAsync<string>("SELECT name || '|' || timezone FROM scheduled_tasks WHERE id = 'delta'"));
        var result = await bed.SyncAsync();
        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("delta", "Europe/Berlin"), (tasks["delta"].Name, tasks["delta"].Timezone));
        // Written as a person would: the defaults are not spelled out.
        var block = bed.ReadFile()[bed.ReadFile().IndexOf("  delta:", StringComparison.Ordinal)..];
        Assert.DoesNotContain("timezone", block, StringComparison.Ordinal);
        Assert.DoesNotContain("name:", block, StringComparison.Ordinal);
    }
}
