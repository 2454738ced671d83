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
        var draft = new TaskDraft { Id = "" };
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

        string? Text(string field, bool nullable = false)
        {
            if (!fields.TryGetValue(field, out var v)) return null;
            if (v.ValueKind == JsonValueKind.String) return v.GetString();
            if (!(nullable && v.ValueKind == JsonValueKind.Null)) Error(field, $"{field} must be a string, got {Kind(v)}");
            return null;
        }
        long? Integer(string field)
        {
            if (!fields.TryGetValue(field, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n)) return n;
            Error(field, $"{field} must be a whole number, got {Kind(v)}");
            return null;
        }

        var name = Text("name");
        var description = Text("description", nullable: true);
        var schedule = Text("schedule");
        var timezone = Text("timezone", nullable: true);
        var command = Text("command");
        bool? enabled = null;
        if (fields.TryGetValue("enabled", out var e))
        {
            if (e.ValueKind is JsonValueKind.True or JsonValueKind.False) enabled = e.GetBoolean();
            else Error("enabled", $"enabled must be true or false, got {Kind(e)}");
        }
        var timeout = Integer("timeout_seconds");
        var retries = Integer("max_retries");
        Dictionary<string, ArgValue>? args = null;
        if (fields.TryGetValue("args", out var a) && a.ValueKind != JsonValueKind.Null)
        {
            if (a.ValueKind != JsonValueKind.Object) Error("args", $"args must be an object of text, number or boolean values, got {Kind(a)}");
            else
            {
                var problems = new List<string>();
                args = Database.TaskStore.ParseArgs(a.GetRawText(), problems);
                foreach (var p in problems) Error("args", p);
            }
        }
        List<string>? tags = null;
        if (fields.TryGetValue("tags", out var t) && t.ValueKind != JsonValueKind.Null)
        {
            if (t.ValueKind != JsonValueKind.Array) Error("tags", $"tags must be a list of strings, got {Kind(t)}");
            else
            {
                tags = [];
                foreach (var tag in t.EnumerateArray())
                {
                    if (tag.ValueKind == JsonValueKind.String) tags.Add(tag.GetString()!);
                    else Error("tags", $"each tag must be a string, got {Kind(tag)}");
                }
            }
        }
        foreach (var field in fields.Keys)
        {
            if (field is "id" or "version" or "created_at" or "updated_at" or "updated_by" or "content_hash") continue;
            if (!TaskRules.FieldNames.Contains(field))
                Error(field, $"unknown field '{field}'");
        }

        if (id is null) return (null, Finish(errors));
        draft = new TaskDraft
        {
            Id = id, Name = name, Description = description, Schedule = schedule, Timezone = timezone, Command = command,
            Args = args, Enabled = enabled, TimeoutSeconds = timeout, MaxRetries = retries, Tags = tags,
        };
        var task = draft.Build(defaultTimezone, (field, message) => Error(field.Length == 0 ? "id" : field, message));
        return errors.Count == 0 ? (task, []) : (null, Finish(errors));
    }

    private static Dictionary<string, string[]> Finish(Dictionary<string, List<string>> errors) =>
        errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
