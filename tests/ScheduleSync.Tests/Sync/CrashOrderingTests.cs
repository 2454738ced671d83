using System.Text.Json;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// SPEC §4 crash ordering, by killing a real <c>schedsync sync</c> (SIGKILL, via SCHEDSYNC_FAULT) at each step of a
/// run that has work in both directions, then letting a normal sync finish the job. A run writes the file before its
/// database writes (which take the change counter's row lock), and commits last.
/// </summary>
public class CrashOrderingTests
{
    [Theory]
    [InlineData("after-plan", false)]
    [InlineData("after-file", true)]
    [InlineData("after-db", true)]
    [InlineData("before-commit", true)]
    public async Task Sync_killed_at_a_step_loses_neither_side_change_and_the_next_sync_converges(string step, bool fileWritten)
    {
        await using var bed = await SyncTestBed.SyncedAsync("crash_" + step);
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");                                                          // A: file side
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");      // B: database side
        var editedFile = bed.ReadFileBytes();
        var database = await bed.DatabaseFingerprintAsync();
        var runs = await bed.CountAsync("sync_runs");
        string[] sync = ["sync", "--json", "--config", bed.ConfigPath, "--database", bed.ConnectionString];

        var crashed = await SchedSyncProcess.RunAsync(sync, bed.Folder, new Dictionary<string, string?> { ["SCHEDSYNC_FAULT"] = step });

        Assert.True(crashed.ExitCode == ProcessOutcome.KilledExitCode && crashed.Stdout.Length == 0, crashed.ToString());
        // Nothing of the run committed; the file holds the export only when the crash came after writing it.
        Assert.Equal(database, await bed.DatabaseFingerprintAsync());
        Assert.Equal(runs, await bed.CountAsync("sync_runs"));
        if (fileWritten)
        {
            var file = bed.FileTasks();
            Assert.Equal(("0 4 * * *", "warm-cache --all"), (file["alpha"].Schedule, file["beta"].Command));
        }
        else
        {
            Assert.Equal(editedFile, bed.ReadFileBytes());
        }

        var recovered = await SchedSyncProcess.RunAsync(sync, bed.Folder);

        Assert.True(recovered.ExitCode == 0, recovered.ToString());
        using var summary = JsonDocument.Parse(recovered.Stdout);
        Assert.Equal("completed", summary.RootElement.GetProperty("status").GetString());
        Assert.Equal(1, summary.RootElement.GetProperty("updates").GetInt32());
        Assert.Equal(fileWritten ? 0 : 1, summary.RootElement.GetProperty("exports").GetInt32());
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("0 4 * * *", "warm-cache --all", "gamma"), (tasks["alpha"].Schedule, tasks["beta"].Command, tasks["gamma"].Command));
        Assert.Contains("  # alpha: the nightly backup\n", bed.ReadFile(), StringComparison.Ordinal);
        Assert.Equal(0, await bed.CountAsync("sync_runs WHERE status = 'running'"));
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'alpha' AND action = 'update' AND source = 'yaml'"));
    }

    [Fact]
    public async Task A_run_standing_after_its_file_write_does_not_hold_the_lock_other_writers_of_tasks_need()
    {
        await using var bed = await SyncTestBed.SyncedAsync("crash_lock");
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\"");                                                          // an import
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'warm-cache --all' WHERE id = 'beta'");      // an export
        string[] sync = ["sync", "--json", "--config", bed.ConfigPath, "--database", bed.ConnectionString];

        using var paused = SchedSyncProcess.Start(sync, bed.Folder, new Dictionary<string, string?> { ["SCHEDSYNC_FAULT"] = "pause:after-file" });
        try
        {
            // The run stands after its file write (the export is in the file) with its transaction open.
            for (var i = 0; i < 600 && !bed.ReadFile().Contains("warm-cache --all", StringComparison.Ordinal); i++)
                await Task.Delay(100);
            Assert.Contains("warm-cache --all", bed.ReadFile(), StringComparison.Ordinal);
            Assert.False(paused.HasExited);

            // Another writer's change of another task commits meanwhile: the run does not hold the change counter's
            // row across its file write (it used to, from its import's trigger until its commit).
            await using (var connection = await bed.DataSource.OpenConnectionAsync())
            {
                await using var command = new Npgsql.NpgsqlCommand("""
                    SET lock_timeout = '20s';
                    UPDATE scheduled_tasks SET command = 'gamma --v2' WHERE id = 'gamma';
                    """, connection);
                await command.ExecuteNonQueryAsync();
            }
            Assert.Equal("gamma --v2", await bed.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'gamma'"));
        }
        finally
        {
            paused.Kill(entireProcessTree: true);
            await paused.WaitForExitAsync();
        }

        var recovered = await SchedSyncProcess.RunAsync(sync, bed.Folder);
        Assert.True(recovered.ExitCode == 0, recovered.ToString());
        var tasks = await bed.AssertConvergedAsync();
        Assert.Equal(("0 4 * * *", "warm-cache --all", "gamma --v2"), (tasks["alpha"].Schedule, tasks["beta"].Command, tasks["gamma"].Command));
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'alpha' AND action = 'update' AND source = 'yaml'"));
    }
}
