using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>
/// The three-way decision of SPEC §4 as a pure function: file (Y), database (D) and base (B) in, a plan out.
/// Tasks are compared by content hash, so formatting, key order and explicit defaults never cause a change.
/// </summary>
public static class SyncPlanner
{
    public static SyncPlan Plan(SyncInputs inputs, SyncOptions options)
    {
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        ids.UnionWith(inputs.Yaml.Keys);
        ids.UnionWith(inputs.Database.Keys);
        ids.UnionWith(inputs.Base.Keys);
        ids.UnionWith(inputs.YamlInvalid);
        ids.UnionWith(inputs.DatabaseInvalid);
        ids.UnionWith(inputs.OpenConflicts);

        var actions = new List<SyncAction>(ids.Count);
        foreach (var id in ids)
            actions.Add(Decide(id, inputs, options));
        return new SyncPlan(actions, options.AllowMassDelete ? null : MassDeleteRefusal(actions, inputs, options));
    }

    private static SyncAction Decide(string id, SyncInputs inputs, SyncOptions options)
    {
        var y = inputs.Yaml.GetValueOrDefault(id);
        var d = inputs.Database.GetValueOrDefault(id);
        var b = inputs.Base.GetValueOrDefault(id);
        // The file holds what an earlier run exported but did not commit (a crash in between): that version is the
        // system's own, so it stands for the base, and a database change made since is exported, not a conflict.
        if (y is not null && !Same(y, b) && !Same(y, d) && inputs.RecordedExports.Contains((id, y.ContentHash)))
            b = y;
        SyncAction Act(SyncActionKind kind, TaskDefinition? result, IReadOnlyList<string>? fields = null, string? reason = null) =>
            new(id, kind, y, d, b, result, fields ?? [], reason);

        if (inputs.OpenConflicts.Contains(id))
        {
            var invalid = inputs.YamlInvalid.Contains(id) || inputs.DatabaseInvalid.Contains(id);
            if (!invalid && Same(y, d))
                return Act(SyncActionKind.CloseConflict, y, reason: "both sides are equal again");
            return Act(SyncActionKind.Frozen, null, reason: "an open conflict waits for resolution");
        }
        if (inputs.YamlInvalid.Contains(id))
            return Act(SyncActionKind.SkipInvalid, null, reason: "invalid in the file; both sides keep their last good state");
        if (inputs.DatabaseInvalid.Contains(id))
        {
            var problems = inputs.DatabaseProblems.GetValueOrDefault(id) is { Count: > 0 } list ? ": " + string.Join("; ", list) : "";
            return Act(SyncActionKind.SkipInvalid, null, reason: $"invalid in the database (changed with SQL){problems}; not exported until fixed, the file keeps its last good state")
                with { InvalidInDatabase = true };
        }

        if (Same(y, d))
        {
            if (y is null) return Act(SyncActionKind.DropBase, null);
            return Same(b, y) ? Act(SyncActionKind.InSync, y) : Act(SyncActionKind.SetBase, y);
        }
        if (Same(y, b))
        {
            // Only the database changed.
            if (d is null) return Act(SyncActionKind.ExportRemove, null);
            return Act(y is null ? SyncActionKind.ExportAdd : SyncActionKind.ExportUpdate, d);
        }
        if (Same(d, b))
        {
            // Only the file changed.
            if (y is null) return Act(SyncActionKind.ImportDelete, null);
            return Act(d is null ? SyncActionKind.ImportInsert : SyncActionKind.ImportUpdate, y);
        }

        // Both sides changed, differently.
        if (y is null || d is null)
            return Act(SyncActionKind.Conflict, null, reason: y is null ? "deleted in the file, changed in the database" : "deleted in the database, changed in the file");
        if (b is null)
            return Act(SyncActionKind.Conflict, null, Diff(y, d), "created on both sides with different content");
        var merge = FieldMerge.Merge(b, y, d);
        if (merge.Conflicts.Count == 0 && options.AutoMerge)
            return Act(SyncActionKind.Merge, merge.Result, reason: "both sides changed different fields");
        return Act(SyncActionKind.Conflict, null, merge.Conflicts.Count > 0 ? merge.Conflicts : Diff(y, d),
            merge.Conflicts.Count > 0 ? "both sides changed the same field" : "both sides changed the task and auto-merge is off");
    }

    private static bool Same(TaskDefinition? a, TaskDefinition? b) =>
        a is null ? b is null : b is not null && a.ContentHash == b.ContentHash;

    private static IReadOnlyList<string> Diff(TaskDefinition a, TaskDefinition b) =>
        FieldMerge.Differing(a, b);

    private static string? MassDeleteRefusal(List<SyncAction> actions, SyncInputs inputs, SyncOptions options)
    {
        var fromDatabase = actions.Count(a => a.Kind == SyncActionKind.ImportDelete);
        var fromFile = actions.Count(a => a.Kind == SyncActionKind.ExportRemove);
        return StillRefused()
            ?? Check("database", fromDatabase, inputs.DatabaseTotal ?? inputs.Database.Count + inputs.DatabaseInvalid.Count, "file")
            ?? Check("file", fromFile, inputs.YamlTotal ?? inputs.Yaml.Count + inputs.YamlInvalid.Count, "database");

        // A refused deletion stays refused until the file changes or someone allows it: an unrelated change (an API
        // write, another task) must not shift the share under the limit and let it through.
        string? StillRefused()
        {
            var again = actions.Where(a => a.Deletes && inputs.RefusedDeletions.Contains(a.Id)).Select(a => a.Id).ToList();
            if (again.Count == 0) return null;
            return $"refusing to delete {again.Count} task(s) whose deletion was refused before ({string.Join(", ", again.Take(5))}{(again.Count > 5 ? ", …" : "")}): "
                + $"a refused mass deletion stays refused until the file changes; if it is really meant, {options.AllowHint}.";
        }

        string? Check(string side, int deletes, int total, string cause)
        {
            if (deletes == 0) return null;
            var all = deletes >= total;
            var tooMany = total > options.MassDeleteMinimum && deletes > total * options.MassDeleteShare;
            if (!all && !tooMany) return null;
            return $"refusing to delete {deletes} of {total} task(s) from the {side} because they are gone from the {cause} "
                + $"(the limit is {options.MassDeleteShare:P0} when there are more than {options.MassDeleteMinimum}, and never all of them). "
                + $"If the {cause} is really meant to lose them, {options.AllowHint}.";
        }
    }
}
