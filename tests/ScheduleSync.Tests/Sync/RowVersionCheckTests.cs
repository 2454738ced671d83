using Npgsql;
using ScheduleSync.Sync;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// No table lock while a run reads, writes the file and commits (SPEC §8): a row the run imports into must still be the
/// version it planned from, or the run plans again — it never overwrites a change it did not see.
/// </summary>
public class RowVersionCheckTests
{
    [Fact]
    public async Task Import_planned_against_a_row_that_changes_before_it_is_written_is_planned_again_and_merges_instead_of_overwriting()
    {
        await using var bed = await SyncTestBed.SyncedAsync("row_version_check");
        bed.EditFile("\"0 3 * * *\"", "\"0 4 * * *\""); // the file changes alpha's schedule

        // Another writer holds alpha's row: the run plans from the row as it was, then waits to lock it.
        await using var other = await bed.DataSource.OpenConnectionAsync();
        await using var tx = await other.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand("SELECT 1 FROM scheduled_tasks WHERE id = 'alpha' FOR UPDATE", other, tx))
            await hold.ExecuteNonQueryAsync();
        var run = bed.SyncAsync();
        await WaitUntilABackendWaitsForALockAsync(bed);

        // The writer changes another field and commits: the row moved on since the run read it.
        await using (var update = new NpgsqlCommand("UPDATE scheduled_tasks SET command = '/usr/local/bin/backup.sh --sql' WHERE id = 'alpha'", other, tx))
            await update.ExecuteNonQueryAsync();
        await tx.CommitAsync();
        var result = await run;

        Assert.Equal((SyncStatus.Completed, 1, 0), (result.Status, result.Updates, result.NewConflicts));
        var database = (await bed.DatabaseTasksAsync())["alpha"];
        var file = bed.FileTasks()["alpha"];
        Assert.Equal(("0 4 * * *", "/usr/local/bin/backup.sh --sql"), (database.Schedule, database.Command));
        Assert.Equal(("0 4 * * *", "/usr/local/bin/backup.sh --sql"), (file.Schedule, file.Command));
        await bed.AssertConvergedAsync();
    }

    private static async Task WaitUntilABackendWaitsForALockAsync(SyncTestBed bed)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await bed.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'") == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the sync never waited for the row");
            await Task.Delay(20);
        }
    }
}
