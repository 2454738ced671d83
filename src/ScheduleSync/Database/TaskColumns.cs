using System.Collections.Immutable;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using ScheduleSync.Tasks;

namespace ScheduleSync.Database;

/// <summary>
/// How the task fields of the field table are stored in <c>scheduled_tasks</c>: one column per field, named as the
/// field, its SQL type from the field's kind. The SQL text of <see cref="TaskStore"/> is built from these lists once.
/// </summary>
internal static class TaskColumns
{
    private static IEnumerable<TaskField> Fields => TaskFields.All;

    private static string SqlType(TaskField field) => field.Kind switch
    {
        FieldKind.Text or FieldKind.OptionalText => "text",
        FieldKind.Boolean => "boolean",
        FieldKind.Integer or FieldKind.OptionalInteger => "integer",
        FieldKind.Args => "jsonb",
        _ => "text[]",
    };

    /// <summary>"name, description, …": the field columns in the table's order.</summary>
    public static readonly string Names = string.Join(", ", Fields.Select(f => f.Name));

    /// <summary>The field columns as read (args as its JSON text).</summary>
    public static readonly string Select = string.Join(", ", Fields.Select(f => f.Kind == FieldKind.Args ? f.Name + "::text" : f.Name));

    /// <summary>"name text, …" for a table of the same shape.</summary>
    public static readonly string Definitions = string.Join(", ", Fields.Select(f => $"{f.Name} {SqlType(f)}"));

    /// <summary>"$2, $3, …": the parameters after the id ($1), args cast to jsonb.</summary>
    public static readonly string Parameters = string.Join(", ", Fields.Select((f, i) => $"${i + 2}" + (f.Kind == FieldKind.Args ? "::jsonb" : "")));

    /// <summary>"name = $2, …": the same parameters as assignments.</summary>
    public static readonly string Assignments = string.Join(", ", Fields.Select((f, i) => $"{f.Name} = ${i + 2}" + (f.Kind == FieldKind.Args ? "::jsonb" : "")));

    /// <summary>"name = EXCLUDED.name, …" for ON CONFLICT … DO UPDATE.</summary>
    public static readonly string Excluded = string.Join(", ", Fields.Select(f => $"{f.Name} = EXCLUDED.{f.Name}"));

    /// <summary>"$2::text[], …": one array parameter per field for <c>unnest</c> (args and tags as JSON text: arrays cannot nest).</summary>
    public static readonly string UnnestParameters = string.Join(", ", Fields.Select((f, i) => $"${i + 2}::{UnnestType(f)}"));

    private static string UnnestType(TaskField field) => field.Kind is FieldKind.Args or FieldKind.Tags ? "text[]" : SqlType(field) + "[]";

    /// <summary>The unnested columns of <paramref name="alias"/> converted to the table's types.</summary>
    public static string FromUnnest(string alias) => string.Join(", ", Fields.Select(f => f.Kind switch
    {
        FieldKind.Args => $"{alias}.{f.Name}::jsonb",
        FieldKind.Tags => $"ARRAY(SELECT jsonb_array_elements_text({alias}.{f.Name}::jsonb))",
        _ => $"{alias}.{f.Name}",
    }));

    /// <summary>The field's value as a parameter.</summary>
    public static NpgsqlParameter Parameter(TaskField field, TaskDefinition task) => field.Kind switch
    {
        FieldKind.OptionalText => new NpgsqlParameter { Value = field.Value(task) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
        FieldKind.OptionalInteger => new NpgsqlParameter { Value = field.Value(task) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer },
        FieldKind.Args => new NpgsqlParameter { Value = task.ArgsJson() },
        FieldKind.Tags => new NpgsqlParameter { Value = ((TaskField<ImmutableArray<string>>)field).Get(task).ToArray() },
        _ => new NpgsqlParameter { Value = field.Value(task) },
    };

    /// <summary>The field's values of many tasks as one array, for <see cref="UnnestParameters"/>.</summary>
    public static object UnnestArray(TaskField field, IReadOnlyList<TaskDefinition> tasks) => field switch
    {
        // string and string? are one type at run time: this covers Text and OptionalText.
        TaskField<string> text => tasks.Select(text.Get).ToArray(),
        TaskField<bool> flag => tasks.Select(flag.Get).ToArray(),
        TaskField<int> number => tasks.Select(number.Get).ToArray(),
        TaskField<int?> number => tasks.Select(number.Get).ToArray(),
        _ when field.Kind == FieldKind.Args => tasks.Select(t => t.ArgsJson()).ToArray(),
        TaskField<ImmutableArray<string>> tags => tasks.Select(t => JsonSerializer.Serialize(tags.Get(t))).ToArray(),
        _ => throw new InvalidOperationException($"field {field.Name} has no column mapping"),
    };

    /// <summary>Writes the field's value of one task to a binary COPY into a table with <see cref="Definitions"/>.</summary>
    public static void Write(NpgsqlBinaryImporter copy, TaskField field, TaskDefinition task)
    {
        switch (field)
        {
            case TaskField<string> text when text.Get(task) is { } value: copy.Write(value, NpgsqlDbType.Text); break;
            case TaskField<bool> flag: copy.Write(flag.Get(task), NpgsqlDbType.Boolean); break;
            case TaskField<int> number: copy.Write(number.Get(task), NpgsqlDbType.Integer); break;
            case TaskField<int?> number when number.Get(task) is { } value: copy.Write(value, NpgsqlDbType.Integer); break;
            case TaskField<string> or TaskField<int?>: copy.WriteNull(); break;
            case { Kind: FieldKind.Args }: copy.Write(task.ArgsJson(), NpgsqlDbType.Jsonb); break;
            case TaskField<ImmutableArray<string>> tags: copy.Write(tags.Get(task).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text); break;
            default: throw new InvalidOperationException($"field {field.Name} has no column mapping");
        }
    }

    /// <summary>The column's value in draft form (as <see cref="TaskField.Set"/> takes it); a problem with args goes to <paramref name="problems"/>.</summary>
    public static object? Read(NpgsqlDataReader reader, int ordinal, TaskField field, List<string> problems)
    {
        if (reader.IsDBNull(ordinal)) return null;
        return field.Kind switch
        {
            FieldKind.Text or FieldKind.OptionalText => reader.GetString(ordinal),
            FieldKind.Boolean => reader.GetBoolean(ordinal),
            FieldKind.Integer or FieldKind.OptionalInteger => (long)reader.GetInt32(ordinal),
            FieldKind.Args => TaskArgs.Parse(reader.GetString(ordinal), problems),
            _ => reader.GetFieldValue<string[]>(ordinal).ToList(),
        };
    }
}
