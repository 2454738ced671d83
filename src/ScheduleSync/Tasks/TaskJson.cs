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
        var problems = new List<string>();
        var draft = new TaskDraft { Id = id };
        foreach (var field in TaskFields.All)
            if (root.TryGetProperty(field.Name, out var value))
                field.Set(draft, field.ReadJson(value, problems.Add));
        var task = draft.Build("UTC", (field, message) => problems.Add($"{field}: {message}"));
        return task is not null && problems.Count == 0
            ? task
            : throw new FormatException($"stored task '{id}' is not valid: {string.Join("; ", problems)}");
    }

    public static string ToCanonical(TaskDefinition task) => System.Text.Encoding.UTF8.GetString(task.CanonicalJson());
}
