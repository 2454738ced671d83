using System.Text.Json;
using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>
/// The JSON shapes of a sync's summary, a plan and a conflict: one builder for the CLI's --json output and the API,
/// so both print the same fields.
/// </summary>
internal static class SyncJson
{
    public static object Summary(SyncResult result) => new
    {
        status = result.Status,
        run_id = result.RunId,
        inserts = result.Inserts,
        updates = result.Updates,
        deletes = result.Deletes,
        exports = result.Exports,
        new_conflicts = result.NewConflicts,
        open_conflicts = result.OpenConflicts,
        changed_task_ids = result.ChangedTaskIds,
        invalid_task_ids = result.InvalidRows,
        checksum_before = result.ChecksumBefore,
        checksum_after = result.ChecksumAfter,
        duration_ms = Math.Round(result.Duration.TotalMilliseconds, 2),
        error = result.Error,
        problems = result.Problems.Select(p => new { p.Line, p.Column, p.Message, task_id = p.TaskId }),
    };

    /// <summary>Every action but the tasks already in sync, frozen ones included (they say why nothing happens to them).</summary>
    public static object Plan(SyncPlan plan) => new
    {
        refusal = plan.Refusal,
        actions = plan.Actions.Where(a => a.Kind != SyncActionKind.InSync).Select(a => new
        {
            id = a.Id,
            action = a.Kind,
            reason = a.Reason,
            fields = FieldChanges(a).Select(f => new { field = f.Field, from = f.From, to = f.To }),
            conflicting_fields = a.ConflictingFields,
        }),
    };

    /// <summary>What changes where: for a database write the database's old value to the new; for a file write, the file's.</summary>
    public static IEnumerable<(string Field, string? From, string? To)> FieldChanges(SyncAction action)
    {
        var before = action.Kind switch
        {
            SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.ImportDelete => action.Database,
            SyncActionKind.ExportAdd or SyncActionKind.ExportUpdate or SyncActionKind.ExportRemove => action.Yaml,
            SyncActionKind.Merge => action.Base,
            _ => null,
        };
        var after = action.Kind is SyncActionKind.Conflict ? action.Yaml : action.Result;
        if (action.Kind is SyncActionKind.Conflict) before = action.Database;
        if (before is null && after is null) yield break;
        foreach (var field in TaskFields.Names)
        {
            var from = TaskFields.Value(before, field);
            var to = TaskFields.Value(after, field);
            if (from == to || (from is null && to is "null" or "{}" or "[]")) continue;
            yield return (field, from, to);
        }
    }

    public static object Conflict(ConflictRecord c) => new
    {
        id = c.Id,
        task_id = c.TaskId,
        status = c.Status,
        detected_at = c.DetectedAt,
        @base = Task(c.Base),
        yaml = Task(c.Yaml),
        db = Task(c.Database),
        deleted_on = DeletedOn(c),
        diff = c.Differences().Select(Difference),
        choice = c.Choice,
        result = Task(c.Result),
        resolved_by = c.ResolvedBy,
        resolved_at = c.ResolvedAt,
    };

    public static object Difference(FieldDifference d) => new
    {
        field = d.Field,
        @base = Value(d.Base),
        yaml = Value(d.Yaml),
        db = Value(d.Database),
        changed_on_both_sides = d.ChangedOnBothSides,
    };

    /// <summary>Which side deleted the task in a delete-vs-modify conflict: "yaml", "db", or null.</summary>
    public static string? DeletedOn(ConflictRecord c) =>
        c.Base is null ? null : c.Yaml is null && c.Database is not null ? "yaml" : c.Database is null && c.Yaml is not null ? "db" : null;

    /// <summary>A task as its canonical JSON object.</summary>
    public static JsonElement? Task(TaskDefinition? task) =>
        task is null ? null : JsonDocument.Parse(task.CanonicalJson()).RootElement.Clone();

    /// <summary>Stored JSON text as a JSON value (null stays null; text that is not JSON stays a string).</summary>
    public static JsonElement? Value(string? json)
    {
        if (json is null) return null;
        try
        {
            return JsonDocument.Parse(json).RootElement.Clone();
        }
        catch (JsonException)
        {
            return JsonSerializer.SerializeToElement(json);
        }
    }
}
