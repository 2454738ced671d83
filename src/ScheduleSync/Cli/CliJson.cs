using System.Text.Json;
using ScheduleSync.Database;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;

namespace ScheduleSync.Cli;

/// <summary>
/// The JSON every command prints with --json: snake_case, indented, no escaping beyond what JSON needs (a person reads
/// it too: `"` inside a string is <c>\"</c>, `+` is `+`), and JSON values as values, never as JSON-encoded strings.
/// </summary>
internal static class CliJson
{
    public static JsonSerializerOptions Options => SnakeCaseJson.Readable;

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
