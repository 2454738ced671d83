using System.Text.Json;

namespace ScheduleSync.Tasks;

/// <summary>
/// Reads a task back from its canonical JSON (<see cref="TaskDefinition.CanonicalJson"/>), the form stored as the
/// sync base and in conflicts. The same rules as every other source apply.
/// </summary>
internal static class TaskJson
{
    public static TaskDefinition FromCanonical(string id, string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        string? Text(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        long? Number(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

        var problems = new List<string>();
        var draft = new TaskDraft
        {
            Id = id,
            Name = Text("name"),
            Description = Text("description"),
            Schedule = Text("schedule"),
            Timezone = Text("timezone"),
            Command = Text("command"),
            Args = root.TryGetProperty("args", out var args) ? Database.TaskStore.ParseArgs(args.GetRawText(), problems) : null,
            Enabled = root.TryGetProperty("enabled", out var enabled) ? enabled.GetBoolean() : null,
            TimeoutSeconds = Number("timeout_seconds"),
            MaxRetries = Number("max_retries"),
            Tags = root.TryGetProperty("tags", out var tags) ? [.. tags.EnumerateArray().Select(t => t.GetString()!)] : null,
        };
        var task = draft.Build("UTC", (field, message) => problems.Add($"{field}: {message}"));
        return task is not null && problems.Count == 0
            ? task
            : throw new FormatException($"stored task '{id}' is not valid: {string.Join("; ", problems)}");
    }

    public static string ToCanonical(TaskDefinition task) => System.Text.Encoding.UTF8.GetString(task.CanonicalJson());
}
