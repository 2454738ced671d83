using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using ScheduleSync.Files;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Sync;

/// <summary>The one-shot commands as a person or cron job runs them: the real executable, exit codes, output (SPEC §7).</summary>
public class SyncCliTests
{
    private static Task<ProcessOutcome> CliAsync(SyncTestBed bed, params string[] args) =>
        SchedSyncProcess.RunAsync([.. args, "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

    private static void AssertExit(int expected, ProcessOutcome outcome) =>
        Assert.True(outcome.ExitCode == expected && !outcome.TimedOut, $"expected exit {expected}, got {outcome}");

    [Fact]
    public async Task Sync_exits_0_when_done_and_2_while_a_conflict_is_open()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_sync_codes");

        var first = await CliAsync(bed, "sync");

        AssertExit(0, first);
        Assert.Contains("3 inserted", first.Stdout, StringComparison.Ordinal);
        await bed.AssertConvergedAsync();

        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *' WHERE id = 'alpha'");
        var conflicted = await CliAsync(bed, "sync");

        AssertExit(2, conflicted);
        Assert.Contains("1 new conflict(s), 1 open", conflicted.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_exits_3_for_an_invalid_file_and_prints_every_problem_as_path_line_column()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_sync_invalid");
        bed.EditFile("    enabled: false", "    enabled: no");                  // line 15
        bed.EditFile("    schedule: \"@daily\"", "    shedule: \"@daily\"");  // line 17

        var outcome = await CliAsync(bed, "sync");

        AssertExit(3, outcome);
        var lines = outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var pattern = new Regex("^" + Regex.Escape(bed.ConfigPath) + @":(\d+):(\d+): \S");
        Assert.All(lines, line => Assert.Matches(pattern, line));
        Assert.Contains(lines, l => l.StartsWith(bed.ConfigPath + ":15:14: ", StringComparison.Ordinal) && l.Contains("enabled", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith(bed.ConfigPath + ":17:5: ", StringComparison.Ordinal) && l.Contains("shedule", StringComparison.Ordinal));
        Assert.Contains("invalid", outcome.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, await bed.CountAsync("scheduled_tasks"));
    }

    [Fact]
    public async Task Sync_exits_1_when_the_mass_delete_guard_refuses_and_0_with_allow_mass_delete()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_sync_refused");
        bed.WriteFile("version: 1\ntasks: {}\n");

        var refused = await CliAsync(bed, "sync");

        AssertExit(1, refused);
        Assert.Contains("--allow-mass-delete", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(3, await bed.CountAsync("scheduled_tasks"));

        var allowed = await CliAsync(bed, "sync", "--allow-mass-delete");

        AssertExit(0, allowed);
        Assert.Equal(0, await bed.CountAsync("scheduled_tasks"));
    }

    [Fact]
    public async Task Plan_prints_a_diff_line_per_changed_field_and_its_json_parses_and_nothing_changes()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_plan");
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");
        var file = bed.ReadFileBytes();
        var database = await bed.DatabaseFingerprintAsync();
        var runs = await bed.CountAsync("sync_runs");

        var text = await CliAsync(bed, "plan");
        var json = await CliAsync(bed, "plan", "--json");

        AssertExit(0, text);
        Assert.Contains("~ alpha: update the database (changed in the file)\n    schedule: \"0 3 * * *\" -> \"0 4 * * *\"\n", text.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("beta", text.Stdout, StringComparison.Ordinal);
        AssertExit(0, json);
        using var plan = JsonDocument.Parse(json.Stdout);
        var action = Assert.Single(plan.RootElement.GetProperty("actions").EnumerateArray());
        Assert.Equal(("alpha", "import_update"), (action.GetProperty("id").GetString(), action.GetProperty("action").GetString()));
        var field = Assert.Single(action.GetProperty("fields").EnumerateArray());
        Assert.Equal(("schedule", "\"0 3 * * *\"", "\"0 4 * * *\""),
            (field.GetProperty("field").GetString(), field.GetProperty("from").GetString(), field.GetProperty("to").GetString()));

        Assert.Equal(file, bed.ReadFileBytes());
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(runs, await bed.CountAsync("sync_runs"));
    }

    [Fact]
    public async Task Conflicts_list_show_and_resolve_round_trip()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_conflicts");
        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *', max_retries = 4 WHERE id = 'alpha'");
        Assert.Equal(1, (await bed.SyncAsync()).NewConflicts);

        var list = await CliAsync(bed, "conflicts", "list", "--json");

        AssertExit(2, list);
        using var listed = JsonDocument.Parse(list.Stdout);
        var conflict = Assert.Single(listed.RootElement.EnumerateArray());
        var id = conflict.GetProperty("id").GetInt64().ToString(CultureInfo.InvariantCulture);
        Assert.Equal(("alpha", "open"), (conflict.GetProperty("task_id").GetString(), conflict.GetProperty("status").GetString()));
        Assert.Equal(("0 3 * * *", "0 5 * * *", "0 6 * * *"), (
            conflict.GetProperty("base").GetProperty("schedule").GetString(),
            conflict.GetProperty("yaml").GetProperty("schedule").GetString(),
            conflict.GetProperty("db").GetProperty("schedule").GetString()));

        var show = await CliAsync(bed, "conflicts", "show", id);

        AssertExit(0, show);
        Assert.Contains($"conflict {id} on task 'alpha': open", show.Stdout, StringComparison.Ordinal);
        Assert.Contains("  ! schedule: base \"0 3 * * *\" | file \"0 5 * * *\" | database \"0 6 * * *\"\n", show.Stdout, StringComparison.Ordinal);
        Assert.Contains("    max_retries: base 2 | file 2 | database 4\n", show.Stdout, StringComparison.Ordinal);

        var resolve = await CliAsync(bed, "conflicts", "resolve", id, "--keep", "merge", "--set", "schedule=0 9 * * *");

        AssertExit(0, resolve);
        Assert.Contains($"conflict {id} on task 'alpha' resolved: merge", resolve.Stdout, StringComparison.Ordinal);
        var alpha = (await bed.AssertConvergedAsync())["alpha"];
        Assert.Equal(("0 9 * * *", 4), (alpha.Schedule, alpha.MaxRetries));

        var after = await CliAsync(bed, "conflicts", "list");
        var again = await CliAsync(bed, "conflicts", "resolve", id, "--keep", "db");

        AssertExit(0, after);
        Assert.Equal("no open conflicts\n", after.Stdout);
        AssertExit(1, again);
        Assert.Contains("already resolved", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task History_lists_each_change_of_a_task_with_its_source_oldest_first()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_history");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");
        var sqlActor = await bed.ScalarAsync<string>("SELECT 'sql:' || session_user");
        var run = await bed.ScalarAsync<long>("SELECT max(id) FROM sync_runs");

        var outcome = await CliAsync(bed, "history", "beta");

        AssertExit(0, outcome);
        var lines = outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.EndsWith($" beta create by schedsync:cli via yaml (sync run {run})", lines[0], StringComparison.Ordinal);
        Assert.EndsWith($" beta update by {sqlActor} via sql", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_json_reports_the_file_the_database_and_what_is_pending()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_status");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");

        var outcome = await CliAsync(bed, "status", "--json");

        AssertExit(0, outcome);
        using var status = JsonDocument.Parse(outcome.Stdout);
        var root = status.RootElement;
        Assert.Equal((bed.ConfigPath, true, true), (root.GetProperty("config_path").GetString(), root.GetProperty("file_exists").GetBoolean(), root.GetProperty("file_valid").GetBoolean()));
        Assert.Equal(ConfigFileStore.Checksum(bed.ReadFileBytes()), root.GetProperty("file_checksum").GetString());
        Assert.Equal((3, 0, 0, 1), (root.GetProperty("database_tasks").GetInt32(), root.GetProperty("open_conflicts").GetInt32(),
            root.GetProperty("pending_imports").GetInt32(), root.GetProperty("pending_exports").GetInt32()));
        Assert.Equal(await bed.ChangeCounterAsync(), root.GetProperty("change_counter").GetInt64());
        Assert.Equal("completed", Assert.Single(root.GetProperty("recent_runs").EnumerateArray()).GetProperty("status").GetString());
    }
}
