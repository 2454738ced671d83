using System.Collections.Immutable;
using System.Text.Json;

namespace ScheduleSync.Tasks;

/// <summary>The type of a task field's value, which decides how it is compared, read, written and stored.</summary>
internal enum FieldKind { Text, OptionalText, Boolean, Integer, OptionalInteger, Args, Tags }

/// <summary>
/// One task field: its name (the same in JSON, in YAML and as the database column), its kind, its default, and how
/// to read, compare, copy and write its value. <see cref="TaskFields.All"/> lists them in the canonical order.
/// </summary>
internal abstract class TaskField(string name, FieldKind kind)
{
    public string Name { get; } = name;
    public FieldKind Kind { get; } = kind;

    /// <summary>A source must give it (no default): a file that cannot read it does not report it again as missing.</summary>
    public bool Required { get; init; }

    /// <summary>An API body may give JSON null for it, meaning "the default".</summary>
    public bool NullMeansDefault { get; init; }

    /// <summary>The canonical YAML layout always writes it double-quoted (a cron expression such as "*/5 * * * *").</summary>
    public bool AlwaysQuoted { get; init; }

    /// <summary>True when the task has the value a file gives by leaving the field out (the second argument is the file's default timezone).</summary>
    public required Func<TaskDefinition, string, bool> IsDefault { get; init; }

    /// <summary>The value, boxed: string, bool, int, int?, the args map or the tag array.</summary>
    public abstract object? Value(TaskDefinition task);

    public abstract bool Equal(TaskDefinition a, TaskDefinition b);

    /// <summary><paramref name="target"/> with this field's value taken from <paramref name="source"/>.</summary>
    public abstract TaskDefinition CopyFrom(TaskDefinition target, TaskDefinition source);

    /// <summary>Sets the field on a draft from a value in draft form (string, bool, long, args dictionary, tag list; null = not given).</summary>
    public abstract void Set(TaskDraft draft, object? value);

    /// <summary>Writes the value (not the name) as canonical JSON.</summary>
    public abstract void WriteJson(Utf8JsonWriter json, TaskDefinition task);

    /// <summary>The value in draft form, as <see cref="Set"/> takes it.</summary>
    public object? DraftValue(TaskDefinition task) => Value(task) switch
    {
        int i => (long)i,
        ImmutableSortedDictionary<string, ArgValue> args => new Dictionary<string, ArgValue>(args, StringComparer.Ordinal),
        ImmutableArray<string> tags => tags.ToList(),
        var other => other,
    };

    /// <summary>
    /// Reads a JSON value strictly into draft form; each problem goes to <paramref name="error"/> and gives null.
    /// JSON null is "not given" where <see cref="NullMeansDefault"/> says so.
    /// </summary>
    public object? ReadJson(JsonElement value, Action<string> error)
    {
        if (value.ValueKind == JsonValueKind.Null && NullMeansDefault) return null;
        switch (Kind)
        {
            case FieldKind.Text or FieldKind.OptionalText:
                if (value.ValueKind == JsonValueKind.String) return value.GetString();
                error($"{Name} must be a string, got {JsonKind(value)}");
                return null;
            case FieldKind.Boolean:
                if (value.ValueKind is JsonValueKind.True or JsonValueKind.False) return value.GetBoolean();
                error($"{Name} must be true or false, got {JsonKind(value)}");
                return null;
            case FieldKind.Integer or FieldKind.OptionalInteger:
                if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n)) return n;
                error($"{Name} must be a whole number, got {JsonKind(value)}");
                return null;
            case FieldKind.Args:
                if (value.ValueKind != JsonValueKind.Object)
                {
                    error($"{Name} must be an object of text, number or boolean values, got {JsonKind(value)}");
                    return null;
                }
                var problems = new List<string>();
                var args = TaskArgs.Parse(value, problems);
                foreach (var problem in problems) error(problem);
                return args;
            default:
                if (value.ValueKind != JsonValueKind.Array)
                {
                    error($"{Name} must be a list of strings, got {JsonKind(value)}");
                    return null;
                }
                var tags = new List<string>();
                foreach (var tag in value.EnumerateArray())
                {
                    if (tag.ValueKind == JsonValueKind.String) tags.Add(tag.GetString()!);
                    else error($"each tag must be a string, got {JsonKind(tag)}");
                }
                return tags;
        }
    }

    /// <summary>Text fields take a command-line value as it is; the others take it as JSON (true, 30, ["a","b"], {"k":1}).</summary>
    public bool IsText => Kind is FieldKind.Text or FieldKind.OptionalText;

    public static string JsonKind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}

/// <summary>A field whose value has the type <typeparamref name="T"/> in <see cref="TaskDefinition"/>.</summary>
internal sealed class TaskField<T>(string name, FieldKind kind, Func<TaskDefinition, T> get, Func<TaskDefinition, T, TaskDefinition> with,
    Action<TaskDraft, object?> set, Func<T, T, bool>? equal = null) : TaskField(name, kind)
{
    public T Get(TaskDefinition task) => get(task);

    public override object? Value(TaskDefinition task) => get(task);

    public override bool Equal(TaskDefinition a, TaskDefinition b) =>
        equal is null ? EqualityComparer<T>.Default.Equals(get(a), get(b)) : equal(get(a), get(b));

    public override TaskDefinition CopyFrom(TaskDefinition target, TaskDefinition source) => with(target, get(source));

    public override void Set(TaskDraft draft, object? value) => set(draft, value);

    // The pattern matches on T are resolved by the JIT per value type: the canonical JSON of a task is written without boxing.
    public override void WriteJson(Utf8JsonWriter json, TaskDefinition task)
    {
        var value = get(task);
        switch (value)
        {
            case null: json.WriteNullValue(); break;
            case string text: json.WriteStringValue(text); break;
            case bool flag: json.WriteBooleanValue(flag); break;
            case int number: json.WriteNumberValue(number); break;
            case ImmutableSortedDictionary<string, ArgValue> args:
                json.WriteStartObject();
                foreach (var (key, arg) in args)
                    TaskDefinition.WriteArg(json, key, arg);
                json.WriteEndObject();
                break;
            case ImmutableArray<string> tags:
                json.WriteStartArray();
                foreach (var tag in tags)
                    json.WriteStringValue(tag);
                json.WriteEndArray();
                break;
            default: throw new InvalidOperationException($"field {Name} has an unexpected type {typeof(T)}");
        }
    }
}

/// <summary>
/// The field table: the ten task fields in their canonical order (the order of the canonical JSON, of the canonical
/// YAML layout and of the database columns). Merge, diff, JSON in and out, the YAML loader and writers, the
/// <c>--set</c> parser and the store go through it, so a new field is added here (and to the model and the schema).
/// </summary>
internal static class TaskFields
{
    public static readonly TaskField<string> Name = new("name", FieldKind.Text, t => t.Name, (t, v) => t with { Name = v }, (d, v) => d.Name = (string?)v)
    { IsDefault = (t, _) => t.Name == t.Id };

    public static readonly TaskField<string?> Description = new("description", FieldKind.OptionalText, t => t.Description, (t, v) => t with { Description = v }, (d, v) => d.Description = (string?)v)
    { IsDefault = (t, _) => t.Description is null, NullMeansDefault = true };

    public static readonly TaskField<string> Schedule = new("schedule", FieldKind.Text, t => t.Schedule, (t, v) => t with { Schedule = v }, (d, v) => d.Schedule = (string?)v)
    { IsDefault = (_, _) => false, Required = true, AlwaysQuoted = true };

    public static readonly TaskField<string> Timezone = new("timezone", FieldKind.Text, t => t.Timezone, (t, v) => t with { Timezone = v }, (d, v) => d.Timezone = (string?)v)
    { IsDefault = (t, zone) => t.Timezone == zone, NullMeansDefault = true };

    public static readonly TaskField<string> Command = new("command", FieldKind.Text, t => t.Command, (t, v) => t with { Command = v }, (d, v) => d.Command = (string?)v)
    { IsDefault = (_, _) => false, Required = true };

    public static readonly TaskField<ImmutableSortedDictionary<string, ArgValue>> Args = new("args", FieldKind.Args, t => t.Args, (t, v) => t with { Args = v },
        (d, v) => d.Args = (Dictionary<string, ArgValue>?)v, (a, b) => a.Count == b.Count && a.SequenceEqual(b))
    { IsDefault = (t, _) => t.Args.Count == 0, NullMeansDefault = true };

    public static readonly TaskField<bool> Enabled = new("enabled", FieldKind.Boolean, t => t.Enabled, (t, v) => t with { Enabled = v }, (d, v) => d.Enabled = (bool?)v)
    { IsDefault = (t, _) => t.Enabled };

    public static readonly TaskField<int?> TimeoutSeconds = new("timeout_seconds", FieldKind.OptionalInteger, t => t.TimeoutSeconds, (t, v) => t with { TimeoutSeconds = v }, (d, v) => d.TimeoutSeconds = (long?)v)
    { IsDefault = (t, _) => t.TimeoutSeconds is null, NullMeansDefault = true };

    public static readonly TaskField<int> MaxRetries = new("max_retries", FieldKind.Integer, t => t.MaxRetries, (t, v) => t with { MaxRetries = v }, (d, v) => d.MaxRetries = (long?)v)
    { IsDefault = (t, _) => t.MaxRetries == 0, NullMeansDefault = true };

    public static readonly TaskField<ImmutableArray<string>> Tags = new("tags", FieldKind.Tags, t => t.Tags, (t, v) => t with { Tags = v },
        (d, v) => d.Tags = (List<string>?)v, (a, b) => a.SequenceEqual(b))
    { IsDefault = (t, _) => t.Tags.Length == 0, NullMeansDefault = true };

    /// <summary>Every field in the canonical order.</summary>
    public static readonly IReadOnlyList<TaskField> All = [Name, Description, Schedule, Timezone, Command, Args, Enabled, TimeoutSeconds, MaxRetries, Tags];

    public static readonly IReadOnlyList<string> Names = [.. All.Select(f => f.Name)];

    private static readonly Dictionary<string, TaskField> ByName = All.ToDictionary(f => f.Name, StringComparer.Ordinal);

    public static TaskField? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>The position of the field in the canonical order, -1 for an unknown name.</summary>
    public static int IndexOf(string name) => ByName.TryGetValue(name, out var field) ? IndexOfField(field) : -1;

    private static int IndexOfField(TaskField field)
    {
        for (var i = 0; i < All.Count; i++)
            if (ReferenceEquals(All[i], field)) return i;
        return -1;
    }

    /// <summary>The field's value as compact canonical JSON text (null when the task is absent).</summary>
    public static string? Value(TaskDefinition? task, string field)
    {
        if (task is null) return null;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(64);
        using (var json = new Utf8JsonWriter(buffer, TaskDefinition.JsonOptions))
            (Find(field) ?? throw new ArgumentOutOfRangeException(nameof(field), field, "not a task field")).WriteJson(json, task);
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>A draft holding every field of the task, to change some and build again.</summary>
    public static TaskDraft ToDraft(TaskDefinition task)
    {
        var draft = new TaskDraft { Id = task.Id };
        foreach (var field in All)
            field.Set(draft, field.DraftValue(task));
        return draft;
    }

    /// <summary>A copy of the task with the given fields replaced (JSON values); every rule is checked again.</summary>
    public static TaskDefinition Apply(TaskDefinition task, IReadOnlyDictionary<string, JsonElement> fields)
    {
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Error(string field, string message)
        {
            if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
            list.Add(message);
        }

        var draft = ToDraft(task);
        foreach (var (name, value) in fields)
        {
            if (Find(name) is not { } field)
            {
                Error(name, $"unknown field '{name}'");
                continue;
            }
            // Null puts a field with a default back to it (NullMeansDefault); for the others it is an error.
            var given = field.ReadJson(value, message => Error(name, message));
            if (given is not null || value.ValueKind == JsonValueKind.Null) field.Set(draft, given);
        }
        var result = draft.Build(task.Timezone, Error);
        return result is not null && errors.Count == 0
            ? result
            : throw new FieldValueException("invalid field values: " + string.Join("; ", errors.SelectMany(e => e.Value)),
                errors.ToDictionary(e => "fields." + e.Key, e => e.Value.ToArray()));
    }

    /// <summary>field=value pairs from a command line: text fields take the value as it is, the others take JSON.</summary>
    public static Dictionary<string, JsonElement> ParseAssignments(IEnumerable<string> pairs)
    {
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var at = pair.IndexOf('=', StringComparison.Ordinal);
            if (at <= 0) throw new FieldValueException($"--set '{pair}' must be field=value");
            var name = pair[..at];
            var value = pair[(at + 1)..];
            var text = Find(name)?.IsText ?? false;
            try
            {
                fields[name] = JsonDocument.Parse(text ? JsonSerializer.Serialize(value) : value).RootElement.Clone();
            }
            catch (JsonException)
            {
                throw new FieldValueException($"--set {name}: '{value}' is not valid JSON (for text fields give the text; for others e.g. true, 30, [\"a\",\"b\"], {{\"k\":1}})");
            }
        }
        return fields;
    }
}

/// <summary>The values given for a task's fields cannot be used; <see cref="Errors"/> names each field ("fields.schedule") with its problems.</summary>
internal class FieldValueException(string message, IReadOnlyDictionary<string, string[]>? errors = null) : Exception(message)
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors ?? new Dictionary<string, string[]>();
}

/// <summary>Reads a task's <c>args</c> object: text, number or boolean values; anything else is a problem.</summary>
internal static class TaskArgs
{
    public static Dictionary<string, ArgValue> Parse(string json, List<string> problems)
    {
        using var document = JsonDocument.Parse(json);
        return Parse(document.RootElement, problems);
    }

    public static Dictionary<string, ArgValue> Parse(JsonElement element, List<string> problems)
    {
        var args = new Dictionary<string, ArgValue>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            var value = property.Value;
            switch (value.ValueKind)
            {
                case JsonValueKind.String: args[property.Name] = ArgValue.Of(value.GetString()!); break;
                case JsonValueKind.True: args[property.Name] = ArgValue.Of(true); break;
                case JsonValueKind.False: args[property.Name] = ArgValue.Of(false); break;
                case JsonValueKind.Number when value.TryGetInt64(out var l): args[property.Name] = ArgValue.Of(l); break;
                case JsonValueKind.Number when value.TryGetDouble(out var d) && double.IsFinite(d): args[property.Name] = ArgValue.Of(d); break;
                default: problems.Add($"args.{property.Name} must be a text, number or boolean, not {value.ValueKind}"); break;
            }
        }
        return args;
    }
}
