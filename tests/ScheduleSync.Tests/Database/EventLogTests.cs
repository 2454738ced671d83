using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Database;

/// <summary>
/// The event log table itself (SPEC §6): numbered in commit order with no holes whatever the writers do at once, a
/// rolled-back change leaves nothing, and each kind of row change (rename, TRUNCATE) is announced.
/// </summary>
public class EventLogTests
{
    private static TaskDefinition Task(string id) =>
        new() { Id = id, Name = id, Schedule = "0 3 * * *", Timezone = "UTC", Command = "run-" + id };

    private static async Task<List<(long Seq, string Type, string? Id, string? Action, long? Version, string? Source)>> EventsAsync(SyncTestBed bed)
    {
        await using var command = bed.DataSource.CreateCommand(
            "SELECT seq, type, payload->>'id', payload->>'action', (payload->>'version')::bigint, payload->>'source' FROM sync_events ORDER BY seq");
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<(long, string, string?, string?, long?, string?)>();
        while (await reader.ReadAsync())
            list.Add((reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.IsDBNull(5) ? null : reader.GetString(5)));
        return list;
    }

    [Fact]
    public async Task Concurrent_writers_get_contiguous_seqs_and_a_rollback_leaves_no_hole()
    {
        await using var bed = await SyncTestBed.CreateAsync("evlog_concurrent", yaml: null);
        for (var i = 0; i < 4; i++) await bed.Tasks.CreateAsync(Task($"t{i}"), new ChangeContext("api", "test"));

        // Four connections (four server processes) update their own task 25 times each, at once; a fifth rolls back.
        var writers = Enumerable.Range(0, 4).Select(w => System.Threading.Tasks.Task.Run(async () =>
        {
            await using var connection = await bed.DataSource.OpenConnectionAsync();
            for (var i = 1; i <= 25; i++)
            {
                await using var command = new NpgsqlCommand($"UPDATE scheduled_tasks SET max_retries = {i} WHERE id = 't{w}'", connection);
                await command.ExecuteNonQueryAsync();
            }
        })).ToList();
        await using (var connection = await bed.DataSource.OpenConnectionAsync())
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var command = new NpgsqlCommand("UPDATE scheduled_tasks SET command = 'rolled back'", connection, tx))
                Assert.Equal(4, await command.ExecuteNonQueryAsync());
            await tx.RollbackAsync();
        }
        await System.Threading.Tasks.Task.WhenAll(writers);

        var events = await EventsAsync(bed);
        Assert.Equal(Enumerable.Range(1, 4 + 100).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal(events.Count, await bed.ScalarAsync<long>("SELECT event_seq FROM sync_state"));
        for (var w = 0; w < 4; w++)
        {
            var id = $"t{w}";
            Assert.Equal(Enumerable.Range(1, 26).Select(v => (long?)v), events.Where(e => e.Id == id).Select(e => e.Version));
        }
        Assert.All(events.Skip(4), e => Assert.Equal(("task_changed", "updated", "sql"), (e.Type, e.Action, e.Source)));
    }

    [Fact]
    public async Task A_rename_is_a_delete_and_a_create_and_truncate_announces_every_deletion()
    {
        await using var bed = await SyncTestBed.CreateAsync("evlog_rename", yaml: null);
        await bed.Tasks.CreateAsync(Task("old-name"), new ChangeContext("api", "test"));
        await bed.Tasks.CreateAsync(Task("other"), new ChangeContext("api", "test"));

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET id = 'new-name' WHERE id = 'old-name'");
        await bed.ExecuteAsync("TRUNCATE scheduled_tasks");

        var events = (await EventsAsync(bed)).Select(e => $"{e.Seq} {e.Id} {e.Action} {e.Version} {e.Source}").ToList();
        Assert.Equal(
        [
            "1 old-name created 1 api", "2 other created 1 api",
            "3 old-name deleted 1 sql", "4 new-name created 2 sql",
            "5 new-name deleted 2 sql", "6 other deleted 1 sql",
        ], events);
    }
}
