using System.Text.Json;
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

    /// <summary>
    /// The ids worth planning, from hashes alone: a task whose file, database and base hashes are all equal (and that is
    /// valid on both sides with no open conflict) is <see cref="SyncActionKind.InSync"/> whatever its content, so the
    /// runner loads in full and plans only the others and one change costs little. A null database hash (a row changed
    /// with plain SQL, its hash not yet recomputed) is always a candidate.
    /// </summary>
    public static HashSet<string> Candidates(IReadOnlyDictionary<string, string> yaml, IReadOnlyDictionary<string, string?> database,
        IReadOnlyDictionary<string, string> @base, IEnumerable<string> yamlInvalid, IEnumerable<string> openConflicts)
    {
        var candidates = new HashSet<string>(openConflicts, StringComparer.Ordinal);
        candidates.UnionWith(yamlInvalid);
        foreach (var (id, hash) in database)
            if (hash is null || yaml.GetValueOrDefault(id) != hash || @base.GetValueOrDefault(id) != hash)
                candidates.Add(id);
        foreach (var (id, hash) in yaml)
            if (!database.ContainsKey(id) || @base.GetValueOrDefault(id) != hash)
                candidates.Add(id);
        foreach (var id in @base.Keys)
            if (!database.ContainsKey(id) || !yaml.ContainsKey(id))
                candidates.Add(id);
        return candidates;
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

    /// <summary>
    /// keep_yaml / keep_db mean "that side as it is": field values would make the result neither side while the record
    /// says one of them. A person who wants to set fields chooses merge.
    /// </summary>
    internal static void CheckResolutionFields(ResolutionChoice choice, IReadOnlyDictionary<string, JsonElement>? fields)
    {
        if (choice != ResolutionChoice.Merge && fields is { Count: > 0 })
        {
            throw new ResolutionException(
                $"field values are taken only with merge, not with {ConflictService.ChoiceName(choice)}; choose merge to set fields",
                new Dictionary<string, string[]> { ["fields"] = [$"fields are only allowed with choice \"merge\", not \"{ConflictService.ChoiceName(choice)}\""] });
        }
    }

    /// <summary>
    /// The decision of a conflict resolution (SPEC §4): the task both sides get — null when it is deleted — from the
    /// chosen side, or the field-level merge with the values the person gave for each field changed on both sides.
    /// Throws <see cref="ResolutionException"/> when the request cannot be applied as asked.
    /// </summary>
    internal static TaskDefinition? Resolve(string id, ResolutionChoice choice, TaskDefinition? yaml, TaskDefinition? database, TaskDefinition? @base, IReadOnlyDictionary<string, JsonElement>? fields)
    {
        CheckResolutionFields(choice, fields);
        fields ??= new Dictionary<string, JsonElement>();
        TaskDefinition? start;
        IReadOnlyList<string> needed = [];
        switch (choice)
        {
            case ResolutionChoice.KeepYaml: start = yaml; break;
            case ResolutionChoice.KeepDb: start = database; break;
            default:
                if (yaml is null || database is null)
                {
                    start = yaml ?? database;
                    if (start is null) return null;
                    break;
                }
                if (@base is null)
                {
                    start = yaml;
                    needed = FieldMerge.Differing(yaml, database);
                }
                else
                {
                    var merged = FieldMerge.Merge(@base, yaml, database);
                    start = merged.Result;
                    needed = merged.Conflicts;
                }
                break;
        }
        var missing = needed.Where(f => !fields.ContainsKey(f)).ToList();
        if (missing.Count > 0)
            throw new ResolutionException(
                $"merge needs a value for each field changed on both sides: {string.Join(", ", missing)}",
                missing.ToDictionary(f => "fields." + f, f => new[] { $"{f} changed on both sides; give its value" }));
        if (fields.Count == 0) return start;
        if (start is null)
            throw new ResolutionException($"task '{id}' is deleted on the chosen side; field values cannot be applied to it");
        try
        {
            return TaskFields.Apply(start, fields);
        }
        catch (FieldValueException e)
        {
            throw new ResolutionException(e.Message, e.Errors);
        }
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
