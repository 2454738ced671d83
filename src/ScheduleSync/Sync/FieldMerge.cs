using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>Field-level three-way merge of one task: a field changed on one side only takes that side's value.</summary>
public static class FieldMerge
{
    public sealed record Field(string Name, Func<TaskDefinition, TaskDefinition, bool> Equal, Func<TaskDefinition, TaskDefinition, TaskDefinition> CopyFrom);

    public static readonly IReadOnlyList<Field> Fields =
    [
        new("name", (a, b) => a.Name == b.Name, (t, s) => t with { Name = s.Name }),
        new("description", (a, b) => a.Description == b.Description, (t, s) => t with { Description = s.Description }),
        new("schedule", (a, b) => a.Schedule == b.Schedule, (t, s) => t with { Schedule = s.Schedule }),
        new("timezone", (a, b) => a.Timezone == b.Timezone, (t, s) => t with { Timezone = s.Timezone }),
        new("command", (a, b) => a.Command == b.Command, (t, s) => t with { Command = s.Command }),
        new("args", (a, b) => a.ArgsJson() == b.ArgsJson(), (t, s) => t with { Args = s.Args }),
        new("enabled", (a, b) => a.Enabled == b.Enabled, (t, s) => t with { Enabled = s.Enabled }),
        new("timeout_seconds", (a, b) => a.TimeoutSeconds == b.TimeoutSeconds, (t, s) => t with { TimeoutSeconds = s.TimeoutSeconds }),
        new("max_retries", (a, b) => a.MaxRetries == b.MaxRetries, (t, s) => t with { MaxRetries = s.MaxRetries }),
        new("tags", (a, b) => a.Tags.SequenceEqual(b.Tags), (t, s) => t with { Tags = s.Tags }),
    ];

    public static Field? Find(string name) => Fields.FirstOrDefault(f => f.Name == name);

    public sealed record Outcome(TaskDefinition Result, IReadOnlyList<string> Conflicts);

    /// <summary>Starts from <paramref name="yaml"/> and takes each field the database changed; a field both changed differently is a conflict (left at the file's value).</summary>
    public static Outcome Merge(TaskDefinition @base, TaskDefinition yaml, TaskDefinition database)
    {
        var result = yaml;
        var conflicts = new List<string>();
        foreach (var field in Fields)
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
}
