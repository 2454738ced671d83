using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Database;

/// <summary>TaskStore's writes: each one audited with its source and actor, in the same transaction as the change.</summary>
public class TaskStoreTests
{
    private static TaskDefinition Task(string id, string schedule = "0 3 * * *") =>
        new() { Id = id, Name = id, Schedule = schedule, Timezone = "Europe/Berlin", Command = "run-" + id, Tags = ["ops"] };

    [Fact]
    public async Task Create_update_and_delete_are_each_audited_with_the_given_source_and_actor()
    {
        await using var bed = await SyncTestBed.CreateAsync("store_audit", yaml: null);
        var store = bed.Tasks;
        var counter = await bed.ChangeCounterAsync();

        var created = await store.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        var updated = await store.UpdateAsync(Task("alpha", "0 4 * * *"), expectedVersion: 1, new ChangeContext("api", "bob"));
        Assert.Equal("bob", (await store.GetAsync("alpha"))!.UpdatedBy);
        var deletedVersion = await store.DeleteAsync("alpha", expectedVersion: 2, new ChangeContext("restore", "carol"));

        Assert.Equal((1L, "alice"), (created.Version, created.UpdatedBy));
        Assert.Equal(Task("alpha").ContentHash, created.ContentHash);
        Assert.Equal((2L, "bob", Task("alpha", "0 4 * * *").ContentHash), (updated.Version, updated.UpdatedBy, updated.ContentHash));
        Assert.Equal(2L, deletedVersion);
        Assert.Null(await store.GetAsync("alpha"));
        Assert.Equal(counter + 3, await bed.ChangeCounterAsync());

        var history = await store.HistoryAsync("alpha");
        Assert.Equal(
            [("create", "api", "alice"), ("update", "api", "bob"), ("delete", "restore", "carol")],
            history.Select(h => (h.Action, h.Source, h.Actor)));
        Assert.Null(history[0].Before);
        Assert.Contains("\"0 3 * * *\"", history[0].After, StringComparison.Ordinal);
        Assert.Contains("\"0 3 * * *\"", history[1].Before, StringComparison.Ordinal);
        Assert.Contains("\"0 4 * * *\"", history[1].After, StringComparison.Ordinal);
        Assert.Contains("\"0 4 * * *\"", history[2].Before, StringComparison.Ordinal);
        Assert.Null(history[2].After);
    }

    [Fact]
    public async Task A_failing_audit_insert_rolls_the_task_change_back()
    {
        await using var bed = await SyncTestBed.CreateAsync("store_audit_fails", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        var before = await bed.DatabaseFingerprintAsync();
        var counter = await bed.ChangeCounterAsync();
        await bed.ExecuteAsync("""
            CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit is down'; END $$;
            CREATE TRIGGER refuse_audit BEFORE INSERT ON task_audit FOR EACH ROW EXECUTE FUNCTION refuse_audit();
            """);

        var create = await Assert.ThrowsAsync<PostgresException>(() => bed.Tasks.CreateAsync(Task("beta"), new ChangeContext("api", "alice")));
        var update = await Assert.ThrowsAsync<PostgresException>(() => bed.Tasks.UpdateAsync(Task("alpha", "0 4 * * *"), null, new ChangeContext("api", "alice")));
        var delete = await Assert.ThrowsAsync<PostgresException>(() => bed.Tasks.DeleteAsync("alpha", null, new ChangeContext("api", "alice")));

        Assert.All([create, update, delete], e => Assert.Contains("audit is down", e.MessageText, StringComparison.Ordinal));
        Assert.Null(await bed.Tasks.GetAsync("beta"));
        Assert.Equal(before, await bed.DatabaseFingerprintAsync());
        Assert.Equal(counter, await bed.ChangeCounterAsync());
    }

    [Fact]
    public async Task Creating_an_existing_id_throws_TaskExistsException_and_keeps_the_stored_task()
    {
        await using var bed = await SyncTestBed.CreateAsync("store_exists", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        var before = await bed.DatabaseFingerprintAsync();

        var error = await Assert.ThrowsAsync<TaskExistsException>(() => bed.Tasks.CreateAsync(Task("alpha", "0 9 * * *"), new ChangeContext("api", "bob")));

        Assert.Equal("alpha", error.Id);
        Assert.Equal(before, await bed.DatabaseFingerprintAsync());
        Assert.Equal(1, await bed.CountAsync("task_audit"));
    }

    [Fact]
    public async Task Updating_or_deleting_an_unknown_id_throws_TaskNotFoundException()
    {
        await using var bed = await SyncTestBed.CreateAsync("store_not_found", yaml: null);

        var update = await Assert.ThrowsAsync<TaskNotFoundException>(() => bed.Tasks.UpdateAsync(Task("ghost"), null, new ChangeContext("api", "alice")));
        var delete = await Assert.ThrowsAsync<TaskNotFoundException>(() => bed.Tasks.DeleteAsync("ghost", null, new ChangeContext("api", "alice")));

        Assert.Equal(("ghost", "ghost"), (update.Id, delete.Id));
        Assert.Equal(0, await bed.CountAsync("scheduled_tasks"));
        Assert.Equal(0, await bed.CountAsync("task_audit"));
        Assert.Equal(0L, await bed.ChangeCounterAsync());
    }

    [Fact]
    public async Task A_stale_expected_version_throws_VersionMismatchException_and_changes_nothing()
    {
        await using var bed = await SyncTestBed.CreateAsync("store_version", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'changed-by-sql' WHERE id = 'alpha'");
        var before = await bed.DatabaseFingerprintAsync();
        var audits = await bed.CountAsync("task_audit");

        var update = await Assert.ThrowsAsync<VersionMismatchException>(() => bed.Tasks.UpdateAsync(Task("alpha", "0 4 * * *"), 1, new ChangeContext("api", "bob")));
        var delete = await Assert.ThrowsAsync<VersionMismatchException>(() => bed.Tasks.DeleteAsync("alpha", 1, new ChangeContext("api", "bob")));

        Assert.Equal((2L, 2L), (update.Actual, delete.Actual));
        Assert.Equal(before, await bed.DatabaseFingerprintAsync());
        Assert.Equal(audits, await bed.CountAsync("task_audit"));
        // With the current version the same update goes through.
        Assert.Equal(3L, (await bed.Tasks.UpdateAsync(Task("alpha", "0 4 * * *"), 2, new ChangeContext("api", "bob"))).Version);
    }
}
