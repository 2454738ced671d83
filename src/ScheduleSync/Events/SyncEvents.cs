using System.Globalization;
using System.Text;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using ScheduleSync.Tasks;

namespace ScheduleSync.Events;

/// <summary>
/// The event log of SPEC §6: the table <c>sync_events</c>, written in the transaction of the change it reports
/// (<c>task_changed</c> by the trigger on <c>scheduled_tasks</c>, the others here), numbered in commit order without
/// holes, and announced with <c>NOTIFY schedsync_events</c>. Every process (server, CLI) writes it; servers stream it.
/// </summary>
internal static class SyncEvents
{
    public const string Channel = "schedsync_events";

    /// <summary>Appends events in the caller's transaction (in order); returns the last seq, or null when there were none.</summary>
    public static async Task<long?> AppendAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, IReadOnlyList<(string Type, object Payload)> events, CancellationToken ct)
    {
        if (events.Count == 0) return null;
        await using var command = new NpgsqlCommand("SELECT sync_events_append($1, $2::jsonb[])", connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = events.Select(e => e.Type).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = events.Select(e => Payload(e.Payload)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        var last = await command.ExecuteScalarAsync(ct);
        return last is long seq ? seq : null;
    }

    /// <summary>Appends one event in a transaction of its own (an event that reports no database change: a failed run).</summary>
    public static async Task<long?> AppendAsync(NpgsqlDataSource dataSource, string type, object payload, CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await AppendAsync(connection, null, [(type, payload)], ct);
    }

    /// <summary>
    /// A completed sync run's events, in its transaction: <paramref name="changes"/> (its <c>schedule_config_updated</c>
    /// events, see <c>SyncRunEvents</c>) and a <c>sync_conflict_detected</c> per conflict the run stored.
    /// </summary>
    public static async Task AppendRunAsync(NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<(string Type, object Payload)> changes, long runId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            SELECT sync_events_append(
                $1::text[] || coalesce(array_agg('sync_conflict_detected'::text ORDER BY id), '{}'),
                $2::jsonb[] || coalesce(array_agg(jsonb_build_object('conflict_id', id, 'task_id', task_id) ORDER BY id), '{}'))
            FROM sync_conflicts WHERE sync_run_id = $3
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter { Value = changes.Select(e => e.Type).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = changes.Select(e => Payload(e.Payload)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = runId });
        await command.ExecuteNonQueryAsync(ct);
    }

    private static string Payload(object payload) => JsonSerializer.Serialize(payload, SnakeCaseJson.Web);

    /// <summary>The newest seq handed out (committed), 0 for an empty log.</summary>
    public static async Task<long> LastSeqAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT event_seq FROM sync_state WHERE id = 1", connection);
        return await command.ExecuteScalarAsync(ct) is long seq ? seq : 0;
    }

    /// <summary>The oldest event still kept (null when the log is empty).</summary>
    public static async Task<long?> FirstSeqAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT min(seq) FROM sync_events", connection);
        return await command.ExecuteScalarAsync(ct) is long seq ? seq : null;
    }

    /// <summary>Events with <paramref name="after"/> &lt; seq &lt;= <paramref name="upTo"/>, in order, at most <paramref name="limit"/>.</summary>
    public static async Task<List<ServerEvent>> ReadAsync(NpgsqlConnection connection, long after, long upTo, int limit, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT seq, type, at, payload::text FROM sync_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = after });
        command.Parameters.Add(new NpgsqlParameter { Value = upTo });
        command.Parameters.Add(new NpgsqlParameter { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var events = new List<ServerEvent>();
        while (await reader.ReadAsync(ct))
        {
            var seq = reader.GetInt64(0);
            var type = reader.GetString(1);
            events.Add(new ServerEvent(seq, type, Message(seq, type, reader.GetFieldValue<DateTimeOffset>(2), reader.GetString(3))));
        }
        return events;
    }

    /// <summary>Deletes the events beyond the newest <paramref name="keep"/> and those older than <paramref name="maxAge"/>; returns how many.</summary>
    public static async Task<int> PruneAsync(NpgsqlDataSource dataSource, int keep, TimeSpan maxAge, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await PruneAsync(connection, keep, maxAge, ct);
    }

    public static async Task<int> PruneAsync(NpgsqlConnection connection, int keep, TimeSpan maxAge, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            DELETE FROM sync_events
            WHERE seq <= (SELECT event_seq FROM sync_state WHERE id = 1) - $1 OR at < now() - $2
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = (long)keep });
        command.Parameters.Add(new NpgsqlParameter { Value = maxAge });
        return await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The message sent to clients: <c>{"seq":n,"type":"…","at":"…",…payload}</c>, compact.</summary>
    public static string Message(long seq, string type, DateTimeOffset at, string payloadJson)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("seq", seq);
            writer.WriteString("type", type);
            writer.WriteString("at", at.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            using var payload = JsonDocument.Parse(payloadJson);
            foreach (var property in payload.RootElement.EnumerateObject())
                if (property.Name is not ("seq" or "type" or "at"))
                    property.WriteTo(writer);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
