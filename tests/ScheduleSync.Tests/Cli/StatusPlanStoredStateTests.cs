using System.Text.Json;
using ScheduleSync.Cli;
using ScheduleSync.Sync;
using ScheduleSync.Database;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// <c>status</c> and <c>plan</c> answer from the stored state when nothing changed since the last run (issue 15): the
/// answer must be the one the full path (parse + read + plan) gives, and any change on either side must take the full
/// path again.
/// </summary>
public sealed class StatusPlanStoredStateTests
{
    [Fact]
    public async Task Stored_state_answers_only_when_nothing_changed_and_then_equals_the_full_path()
    {
        await using var bed = await SyncTestBed.SyncedAsync("storedstate");
        var runner = bed.Runner();

        // Unchanged since the import: the stored state answers, with what the full path says.
        await AssertAnswerAsync(runner, expectStored: true, expectPending: 0);

        // A one-byte edit of the file: the full path, which sees the import.
        bed.EditFile("command: gamma", "command: gammb");
        await AssertAnswerAsync(runner, expectStored: false, expectPending: 1);
        Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
        await AssertAnswerAsync(runner, expectStored: true, expectPending: 0);

        // A database write (as the API makes it): the counter moved.
        var beta = (await bed.DatabaseTasksAsync())["beta"];
        await bed.Tasks.UpdateAsync(beta with { Command = "warm-cache --all" }, null, new ChangeContext("api", "test"));
        await AssertAnswerAsync(runner, expectStored: false, expectPending: 1);
        Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
        await AssertAnswerAsync(runner, expectStored: true, expectPending: 0);

        // A row that breaks a rule, written by plain SQL: a run completes with it reported, the counter is recorded as
        // seen, but its hash is cleared, so status and plan still read it and report it.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = 'not a schedule' WHERE id = 'alpha'");
        Assert.Equal(SyncStatus.Completed, (await bed.SyncAsync()).Status);
        var invalid = await AssertAnswerAsync(runner, expectStored: false, expectPending: 0);
        Assert.Equal("alpha", Assert.Single(invalid.InvalidTasks).Id);
        // Fixed by plain SQL to what both sides hold: a quiet run; the row's hash stays cleared, so the full path answers.
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 3 * * *' WHERE id = 'alpha'");
        await bed.SyncAsync();
        await AssertAnswerAsync(runner, expectStored: null, expectPending: 0);

        // A conflict left open by the last run: the file and the counter are as that run left them, yet the task is
        // frozen, which only the full path shows.
        bed.EditFile("command: warm-cache --all", "command: warm-cache --file");
        var betaNow = (await bed.DatabaseTasksAsync())["beta"];
        await bed.Tasks.UpdateAsync(betaNow with { Command = "warm-cache --database" }, null, new ChangeContext("api", "test"));
        var conflicted = await bed.SyncAsync();
        Assert.Equal(1, conflicted.NewConflicts);
        var frozen = await AssertAnswerAsync(runner, expectStored: false, expectPending: 0);
        Assert.Equal(1, frozen.OpenConflicts);

        // A runner that skips invalid tasks instead of rejecting the file: a completed run does not prove the file valid.
        await using var other = await SyncTestBed.SyncedAsync("storedstateskip");
        var skipping = other.Runner(new SyncOptions { OnInvalid = InvalidTaskPolicy.SkipTask });
        Assert.False(await StoredState.UnchangedAsync(skipping, skipping.Store.Read(), CancellationToken.None));
        Assert.True(await StoredState.UnchangedAsync(other.Runner(), other.Runner().Store.Read(), CancellationToken.None));
    }

    /// <summary>
    /// Status and plan as the commands compute them, against the full path: the same JSON; whether the stored state
    /// answered; the pending changes.
    /// </summary>
    private static async Task<SyncStatusReport> AssertAnswerAsync(SyncRunner runner, bool? expectStored, int expectPending)
    {
        var snapshot = runner.Store.Read();
        var stored = await StoredState.UnchangedAsync(runner, snapshot, CancellationToken.None);
        if (expectStored is { } expected) Assert.Equal(expected, stored);

        var status = await SyncStatusReader.ReadAsync(runner, CancellationToken.None);
        var full = await SyncStatusReader.ReadAsync(runner, CancellationToken.None, storedState: false);
        Assert.Equal(JsonSerializer.Serialize(full, CliJson.Options), JsonSerializer.Serialize(status, CliJson.Options));
        Assert.Equal(expectPending, status.PendingImports + status.PendingExports);

        var (_, fullPlan) = await runner.PlanAsync(snapshot: snapshot);
        var plan = stored ? StoredState.EmptyPlan : fullPlan;
        Assert.Equal(JsonSerializer.Serialize(SyncJson.Plan(fullPlan!), CliJson.Options), JsonSerializer.Serialize(SyncJson.Plan(plan!), CliJson.Options));
        return status;
    }
}
