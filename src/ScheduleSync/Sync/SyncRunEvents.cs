using Npgsql;
using ScheduleSync.Events;

namespace ScheduleSync.Sync;

/// <summary>What a completed sync run reports to the event log (SPEC §6); the log itself is <see cref="SyncEvents"/>.</summary>
internal static class SyncRunEvents
{
    /// <summary>
    /// A completed sync run's events, in its transaction: <c>schedule_config_updated</c> per source of its changes
    /// (the file for imports; for exports the API when an API write asked for the run, else the database) and a
    /// <c>sync_conflict_detected</c> per conflict it stored. (Its row changes are announced by the trigger.)
    /// </summary>
    public static async Task AppendAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string trigger, SyncPlan plan, long runId, int newConflicts, CancellationToken ct)
    {
        var changes = plan.Actions.Where(a => a.ChangesDatabase || a.ChangesFile)
            .GroupBy(a => SourceOf(a, trigger))
            .Select(g => ("schedule_config_updated", (object)new { source = g.Key, task_ids = g.Select(a => a.Id).ToList(), sync_run_id = runId }))
            .ToList();
        if (changes.Count == 0 && newConflicts == 0) return;
        await SyncEvents.AppendRunAsync(connection, tx, changes, runId, ct);
    }

    /// <summary>Where a change came from: the file for imports; for exports the API when an API write asked for the run, else the database.</summary>
    private static string SourceOf(SyncAction action, string trigger) => action.Kind switch
    {
        SyncActionKind.Merge => "merge",
        _ when action.ChangesDatabase => "yaml",
        _ => trigger == "api" ? "api" : "database",
    };
}
