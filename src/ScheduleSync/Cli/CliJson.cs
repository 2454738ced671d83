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

    public static object History(AuditEntry e) => new
    {
        id = e.Id,
        task_id = e.TaskId,
        action = e.Action,
        source = e.Source,
        actor = e.Actor,
        before = SyncJson.Value(e.Before),
        after = SyncJson.Value(e.After),
        at = e.At,
        sync_run_id = e.SyncRunId,
    };
}
