using System.Text.Json;

namespace ScheduleSync.Tasks;

/// <summary>
/// Reads a task from an API request body strictly, with the same rules and messages as the YAML loader: unknown
/// fields, wrong types and every rule violation are collected per field (<c>errors["schedule"]</c>, …).
/// </summary>
internal static class TaskInput
{
    public static (TaskDefinition? Task, Dictionary<string, string[]> Errors) Parse(JsonElement body, string? routeId, string defaultTimezone)
    {
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Error(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
            list.Add(message);
        }

        if (body.ValueKind != JsonValueKind.Object)
        {
            Error("", "the body must be a JSON object with the task's fields");
            return (null, Finish(errors));
        }

        string? id = routeId;
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in body.EnumerateObject())
        {
            if (!fields.TryAdd(property.Name, property.Value))
                Error(property.Name, $"'{property.Name}' is given twice");
        }

        if (fields.TryGetValue("id", out var idValue))
        {
            if (idValue.ValueKind != JsonValueKind.String) Error("id", "id must be a string");
            else if (routeId is not null && idValue.GetString() != routeId) Error("id", $"id '{idValue.GetString()}' does not match the id in the URL ('{routeId}')");
            else id = idValue.GetString();
        }
        if (id is null) Error("id", "id is required");

        var draft = new TaskDraft { Id = id ?? "" };
        foreach (var field in TaskFields.All)
            if (fields.TryGetValue(field.Name, out var value))
                field.Set(draft, field.ReadJson(value, message => Error(field.Name, message)));
        foreach (var field in fields.Keys)
        {
            if (field is "id" or "version" or "created_at" or "updated_at" or "updated_by" or "content_hash") continue;
            if (TaskFields.Find(field) is null)
                Error(field, $"unknown field '{field}'");
        }

        if (id is null) return (null, Finish(errors));
        var task = draft.Build(defaultTimezone, (field, message) => Error(field.Length == 0 ? "id" : field, message));
        return errors.Count == 0 ? (task, []) : (null, Finish(errors));
    }

    private static Dictionary<string, string[]> Finish(Dictionary<string, List<string>> errors) =>
        errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
}
