using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>Field-level three-way merge of one task: a field changed on one side only takes that side's value.</summary>
internal static class FieldMerge
{
    public sealed record Outcome(TaskDefinition Result, IReadOnlyList<string> Conflicts);

    /// <summary>Starts from <paramref name="yaml"/> and takes each field the database changed; a field both changed differently is a conflict (left at the file's value).</summary>
    public static Outcome Merge(TaskDefinition @base, TaskDefinition yaml, TaskDefinition database)
    {
        var result = yaml;
        var conflicts = new List<string>();
        foreach (var field in TaskFields.All)
        {
            var yamlChanged = !field.Equal(yaml, @base);
            var databaseChanged = !field.Equal(database, @base);
            if (databaseChanged && !yamlChanged)
                result = field.CopyFrom(result, database);
            else if (databaseChanged && yamlChanged && !field.Equal(yaml, database))
                conflicts.Add(field.Name);
        }
        return new Outcome(result, conflicts);
    }

    /// <summary>The fields on which two versions differ, in the canonical order.</summary>
    public static IReadOnlyList<string> Differing(TaskDefinition a, TaskDefinition b) =>
        [.. TaskFields.All.Where(f => !f.Equal(a, b)).Select(f => f.Name)];
}
