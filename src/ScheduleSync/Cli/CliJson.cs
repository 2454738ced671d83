using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using ScheduleSync.Database;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

/// <summary>
/// The JSON every command prints with --json: snake_case, indented, no escaping beyond what JSON needs (a person reads
/// it too: `"` inside a string is <c>\"</c>, `+` is `+`), and JSON values as values, never as JSON-encoded strings.
/// </summary>
internal static class CliJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static void Print(object value) => Console.WriteLine(JsonSerializer.Serialize(value, Options));

    /// <summary>Stored JSON text as a JSON value (null stays null; text that is not JSON stays a string).</summary>
    public static JsonElement? Value(string? json)
    {
        if (json is null) return null;
        try
        {
            return JsonDocument.Parse(json).RootElement.Clone();
        }
        catch (JsonException)
        {
            return JsonSerializer.SerializeToElement(json);
        }
    }

    public static object History(AuditEntry e) => new
    {
        id = e.Id,
        task_id = e.TaskId,
        action = e.Action,
        source = e.Source,
        actor = e.Actor,
        before = Value(e.Before),
        after = Value(e.After),
        at = e.At,
        sync_run_id = e.SyncRunId,
    };

    public static object Difference(FieldDifference d) => new
    {
        field = d.Field,
        @base = Value(d.Base),
        yaml = Value(d.Yaml),
        db = Value(d.Database),
        changed_on_both_sides = d.ChangedOnBothSides,
    };
}
