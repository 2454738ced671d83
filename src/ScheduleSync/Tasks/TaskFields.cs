using System.Text.Json;

namespace ScheduleSync.Tasks;

/// <summary>Field-by-field access to a task by its YAML/JSON field name: for diffs and for field values given in a resolution.</summary>
internal static class TaskFields
{
    public static IReadOnlyList<string> Names => TaskRules.FieldNames;

    /// <summary>The field's value as compact JSON text (null when the task is absent).</summary>
    public static string? Value(TaskDefinition? task, string field)
    {
        if (task is null) return null;
        using var document = JsonDocument.Parse(task.CanonicalJson());
        return document.RootElement.GetProperty(field).GetRawText();
    }

    /// <summary>A copy of the task with the given fields replaced; every rule is checked again.</summary>
    public static TaskDefinition Apply(TaskDefinition task, IReadOnlyDictionary<string, JsonElement> fields)
    {
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Error(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
            list.Add(message);
        }

        var draft = new TaskDraft
        {
            Id = task.Id, Name = task.Name, Description = task.Description, Schedule = task.Schedule, Timezone = task.Timezone,
            Command = task.Command, Args = new Dictionary<string, ArgValue>(task.Args), Enabled = task.Enabled,
            TimeoutSeconds = task.TimeoutSeconds, MaxRetries = task.MaxRetries, Tags = [.. task.Tags],
        };
        foreach (var (field, value) in fields)
        {
            try
            {
                switch (field)
                {
                    case "name": draft.Name = value.GetString(); break;
                    case "description": draft.Description = value.ValueKind == JsonValueKind.Null ? null : value.GetString(); break;
                    case "schedule": draft.Schedule = value.GetString(); break;
                    case "timezone": draft.Timezone = value.GetString(); break;
                    case "command": draft.Command = value.GetString(); break;
                    case "enabled": draft.Enabled = value.GetBoolean(); break;
                    case "timeout_seconds": draft.TimeoutSeconds = value.ValueKind == JsonValueKind.Null ? null : value.GetInt64(); break;
                    case "max_retries": draft.MaxRetries = value.GetInt64(); break;
                    case "tags": draft.Tags = [.. value.EnumerateArray().Select(t => t.GetString()!)]; break;
                    case "args":
                        var problems = new List<string>();
                        draft.Args = Database.TaskStore.ParseArgs(value.GetRawText(), problems);
                        foreach (var problem in problems) Error("args", problem);
                        break;
                    default: Error(field, $"unknown field '{field}'"); break;
                }
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                Error(field, $"{field} has the wrong type: {value.ValueKind}");
            }
        }
        var result = draft.Build(task.Timezone, Error);
        return result is not null && errors.Count == 0
            ? result
            : throw new Sync.ResolutionException("invalid field values: " + string.Join("; ", errors.SelectMany(e => e.Value)),
                errors.ToDictionary(e => "fields." + e.Key, e => e.Value.ToArray()));
    }
}
