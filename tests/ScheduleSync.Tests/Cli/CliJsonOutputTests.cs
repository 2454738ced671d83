using System.Text.Json;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// --json on every command that prints (issue 14 item 3): each output parses as JSON, stored JSON comes out as JSON
/// values (not JSON-encoded strings), nothing is escaped that JSON does not require; and the text output is plain too.
/// </summary>
public class CliJsonOutputTests
{
    private static async Task<ProcessOutcome> CliAsync(SyncTestBed bed, params string[] args) =>
        await SchedSyncProcess.RunAsync([.. args, "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

    private static JsonElement Json(ProcessOutcome outcome, params int[] exitCodes)
    {
        Assert.True(exitCodes.Contains(outcome.ExitCode) && !outcome.TimedOut, $"expected exit {string.Join(" or ", exitCodes)}, got {outcome}");
        Assert.DoesNotContain("\\u0022", outcome.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u002B", outcome.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u0027", outcome.Stdout, StringComparison.Ordinal);
        try
        {
            return JsonDocument.Parse(outcome.Stdout).RootElement.Clone();
        }
        catch (JsonException e)
        {
            Assert.Fail($"not JSON ({e.Message}): {outcome}");
            throw;
        }
    }

    [Fact]
    public async Task Every_printing_command_prints_plain_json_with_json()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_json_all");
        bed.EditFile("command: gamma", "command: \"echo \\\"a+b\\\" 'c'\"");
        Json(await CliAsync(bed, "sync", "--json"), 0);
        // A second run that writes: a database change exported to the file (the file's backup is kept).
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 5 WHERE id = 'alpha'");
        Json(await CliAsync(bed, "sync", "--json"), 0);
        // A conflict: both sides change the same field.
        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *' WHERE id = 'alpha'");
        Json(await CliAsync(bed, "plan", "--json"), 2);
        Json(await CliAsync(bed, "sync", "--json"), 2);

        var validate = Json(await CliAsync(bed, "validate", "--json"), 0);
        Assert.True(validate.GetProperty("valid").GetBoolean());
        Assert.Equal(3, validate.GetProperty("tasks").GetInt32());

        var status = Json(await CliAsync(bed, "status", "--json"), 2);
        var runs = status.GetProperty("recent_runs").EnumerateArray().Where(r => r.GetProperty("status").GetString() == "completed").ToList();
        Assert.NotEmpty(runs);
        Assert.All(runs, run => Assert.True(run.GetProperty("finished_at").GetDateTime() > run.GetProperty("started_at").GetDateTime(),
            $"a run's finished_at must be after its started_at: {run}"));

        var history = Json(await CliAsync(bed, "history", "alpha", "--json"), 0);
        var update = history.EnumerateArray().First(e => e.GetProperty("action").GetString() == "update");
        Assert.Equal(JsonValueKind.Object, update.GetProperty("before").ValueKind);
        Assert.Equal(JsonValueKind.Object, update.GetProperty("after").ValueKind);
        Assert.Equal(5, update.GetProperty("after").GetProperty("max_retries").GetInt32());
        var insert = Json(await CliAsync(bed, "history", "gamma", "--json"), 0).EnumerateArray().First();
        Assert.Equal("echo \"a+b\" 'c'", insert.GetProperty("after").GetProperty("command").GetString());

        var conflicts = Json(await CliAsync(bed, "conflicts", "list", "--json"), 2);
        var conflict = Assert.Single(conflicts.EnumerateArray());
        var diff = Assert.Single(conflict.GetProperty("diff").EnumerateArray());
        Assert.Equal("schedule", diff.GetProperty("field").GetString());
        Assert.Equal("0 3 * * *", diff.GetProperty("base").GetString());
        Assert.Equal("0 5 * * *", diff.GetProperty("yaml").GetString());
        Assert.Equal("0 6 * * *", diff.GetProperty("db").GetString());
        var id = conflict.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("schedule", Json(await CliAsync(bed, "conflicts", "show", id, "--json"), 0).GetProperty("diff")[0].GetProperty("field").GetString());
        var resolved = Json(await CliAsync(bed, "conflicts", "resolve", id, "--keep", "db", "--json"), 0);
        Assert.Equal("resolved", resolved.GetProperty("status").GetString());
        Assert.Empty(Json(await CliAsync(bed, "conflicts", "list", "--json"), 0).EnumerateArray());

        var export = Json(await CliAsync(bed, "export", "--json"), 0);
        Assert.Equal("echo \"a+b\" 'c'", export.GetProperty("tasks").GetProperty("gamma").GetProperty("command").GetString());
        Assert.Equal(3, export.GetProperty("tasks").EnumerateObject().Count());

        var backups = Json(await CliAsync(bed, "restore", "--list", "--json"), 0);
        Assert.NotEmpty(backups.EnumerateArray());
        Assert.All(backups.EnumerateArray(), b => Assert.True(File.Exists(b.GetProperty("path").GetString())));

        var db = Json(await CliAsync(bed, "db", "--json"), 0);
        Assert.False(db.GetProperty("embedded").GetBoolean());

        var init = Json(await CliAsync(bed, "init", "--json"), 0);
        Assert.False(init.GetProperty("created").GetBoolean());
        Assert.Contains("*.lock", init.GetProperty("gitignore_lines").EnumerateArray().Select(l => l.GetString()));
    }

    [Fact]
    public async Task Conflicts_list_with_none_says_so_in_text_and_prints_an_empty_array_in_json()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_json_no_conflicts");

        var text = await CliAsync(bed, "conflicts", "list");
        var json = await CliAsync(bed, "conflicts", "list", "--json");

        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Equal("no open conflicts", text.Stdout.Trim());
        Assert.Equal(JsonValueKind.Array, Json(json, 0).ValueKind);
        Assert.Empty(Json(json, 0).EnumerateArray());
    }

    [Fact]
    public async Task A_delete_versus_modify_conflict_says_which_side_deleted()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_json_delete_conflict");
        bed.EditFile("""
              gamma:
                schedule: "@daily"
                command: gamma

            """, "");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'gamma2' WHERE id = 'gamma'");
        Assert.Equal(2, (await CliAsync(bed, "sync")).ExitCode);
        var conflict = Assert.Single(Json(await CliAsync(bed, "conflicts", "list", "--json"), 2).EnumerateArray());
        var id = conflict.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);

        var show = await CliAsync(bed, "conflicts", "show", id);

        Assert.Equal("yaml", conflict.GetProperty("deleted_on").GetString());
        Assert.Contains("deleted in the file, changed in the database", show.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_and_plan_count_the_same_pending_changes()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_json_pending");
        // Different fields on the two sides: a merge, which writes to both.
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 9 WHERE id = 'alpha'");

        var plan = await CliAsync(bed, "plan");
        var status = Json(await CliAsync(bed, "status", "--json"), 0);

        Assert.True(plan.ExitCode == 0, plan.ToString());
        var toDatabase = status.GetProperty("pending_imports").GetInt32();
        var toFile = status.GetProperty("pending_exports").GetInt32();
        Assert.Equal((1, 1), (toDatabase, toFile));
        Assert.Contains($"{toDatabase} to the database, {toFile} to the file, 1 merge(s)", plan.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plan_json_lists_a_task_frozen_by_an_open_conflict_as_the_api_does()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_json_plan_frozen");
        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 6 * * *' WHERE id = 'alpha'");
        Assert.Equal(2, (await CliAsync(bed, "sync")).ExitCode);

        // The conflict is stored: alpha is frozen until it is resolved. The CLI's plan used to leave it out.
        var plan = Json(await CliAsync(bed, "plan", "--json"), 2);

        var alpha = Assert.Single(plan.GetProperty("actions").EnumerateArray(), a => a.GetProperty("id").GetString() == "alpha");
        Assert.Equal("frozen", alpha.GetProperty("action").GetString());
    }
}
