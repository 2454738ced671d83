using System.Reflection;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Database;

/// <summary>Migrations and the triggers that make plain-SQL changes first-class (SPEC §3).</summary>
public class SchemaTests
{
    private static TaskDefinition Task(string id, string schedule = "0 3 * * *") =>
        new() { Id = id, Name = id, Schedule = schedule, Timezone = "UTC", Command = "run-" + id };

    [Fact]
    public async Task Migrations_applied_twice_apply_nothing_the_second_time()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_twice", yaml: null, migrate: false);

        var first = await Migrations.ApplyAsync(bed.DataSource);
        var second = await Migrations.ApplyAsync(bed.DataSource);

        Assert.Equal(Migrations.Count, first);
        Assert.Equal(0, second);
        Assert.Equal(Migrations.Count, await bed.CountAsync("schema_migrations"));
        Assert.Equal(1, await bed.CountAsync("sync_state"));
    }

    [Fact]
    public async Task Processes_migrating_a_fresh_database_at_the_same_moment_all_succeed_and_apply_each_version_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_race", migrate: false);
        // Hold the migration lock so every process is provably inside ApplyAsync, waiting, before any of them can go on.
        var key = (long)typeof(Migrations).GetField("MigrationLockKey", BindingFlags.NonPublic | BindingFlags.Static)!.GetRawConstantValue()!;
        await using var holder = await bed.DataSource.OpenConnectionAsync();
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_lock($1)", holder))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = key });
            await command.ExecuteNonQueryAsync();
        }

        string[] args = ["status", "--config", bed.ConfigPath, "--database", bed.ConnectionString];
        var processes = Enumerable.Range(0, 3).Select(_ => SchedSyncProcess.Start(args, bed.Folder)).ToList();
        var waiting = 0L;
        for (var deadline = DateTime.UtcNow.AddSeconds(30); waiting < processes.Count && !processes.Any(p => p.HasExited) && DateTime.UtcNow < deadline;)
        {
            await System.Threading.Tasks.Task.Delay(50);
            waiting = await bed.CountAsync("pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
        }
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", holder))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = key });
            await command.ExecuteNonQueryAsync();
        }

        var outcomes = await System.Threading.Tasks.Task.WhenAll(processes.Select(p => SchedSyncProcess.WaitAsync(p)));
        foreach (var process in processes) process.Dispose();

        Assert.True(waiting == processes.Count, $"{waiting} of {processes.Count} processes waited for the migration lock:\n{string.Join("\n", outcomes)}");
        Assert.All(outcomes, o => Assert.True(o.ExitCode == 0 && o.Stderr.Length == 0, o.ToString()));
        Assert.Equal(Migrations.Count, await bed.CountAsync("schema_migrations"));
        Assert.Equal(Migrations.Count, await bed.CountAsync("(SELECT DISTINCT version FROM schema_migrations) v"));
        Assert.Equal(Migrations.Latest, await bed.ScalarAsync<int>("SELECT max(version) FROM schema_migrations"));
    }

    [Fact]
    public async Task Plain_sql_update_bumps_version_and_change_counter_clears_content_hash_notifies_and_is_audited_as_sql()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_sql_update", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        Assert.NotNull(await bed.ScalarAsync<string>("SELECT content_hash FROM scheduled_tasks WHERE id = 'alpha'"));
        var updatedAt = await bed.ScalarAsync<DateTime>("SELECT updated_at FROM scheduled_tasks WHERE id = 'alpha'");
        var counter = await bed.ChangeCounterAsync();
        var sqlActor = await bed.ScalarAsync<string>("SELECT 'sql:' || session_user");

        await using var listener = await bed.DataSource.OpenConnectionAsync();
        var notifications = new List<string>();
        listener.Notification += (_, e) => { if (e.Channel == "schedsync_changes") notifications.Add(e.Payload); };
        await using (var listen = new NpgsqlCommand("LISTEN schedsync_changes", listener))
            await listen.ExecuteNonQueryAsync();

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 4 * * *' WHERE id = 'alpha'");

        Assert.Equal(2L, await bed.ScalarAsync<long>("SELECT version FROM scheduled_tasks WHERE id = 'alpha'"));
        Assert.IsType<DBNull>(await bed.ScalarAsync<object>("SELECT content_hash FROM scheduled_tasks WHERE id = 'alpha'"));
        Assert.True(await bed.ScalarAsync<DateTime>("SELECT updated_at FROM scheduled_tasks WHERE id = 'alpha'") > updatedAt);
        Assert.Equal(sqlActor, await bed.ScalarAsync<string>("SELECT updated_by FROM scheduled_tasks WHERE id = 'alpha'"));
        Assert.Equal(counter + 1, await bed.ChangeCounterAsync());
        Assert.True(await listener.WaitAsync(TimeSpan.FromSeconds(5)), "no NOTIFY on schedsync_changes");
        Assert.Equal([(counter + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)], notifications);

        var last = (await bed.Tasks.HistoryAsync("alpha"))[^1];
        Assert.Equal(("update", "sql", sqlActor), (last.Action, last.Source, last.Actor));
        Assert.Null(last.SyncRunId);
        Assert.Contains("\"0 3 * * *\"", last.Before, StringComparison.Ordinal);
        Assert.Contains("\"0 4 * * *\"", last.After, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_sql_update_that_changes_nothing_bumps_nothing_and_is_not_audited()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_noop_update", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        var before = await bed.ScalarAsync<string>("SELECT to_jsonb(t)::text FROM scheduled_tasks t WHERE id = 'alpha'");
        var counter = await bed.ChangeCounterAsync();
        var audits = await bed.CountAsync("task_audit");

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 3 * * *', name = name, tags = '{}', updated_by = 'someone' WHERE id = 'alpha'");

        // Version, updated_at, updated_by and content_hash all as they were: the row did not change.
        Assert.Equal(before, await bed.ScalarAsync<string>("SELECT to_jsonb(t)::text FROM scheduled_tasks t WHERE id = 'alpha'"));
        Assert.Equal(counter, await bed.ChangeCounterAsync());
        Assert.Equal(audits, await bed.CountAsync("task_audit"));
    }

    [Fact]
    public async Task One_statement_changing_two_rows_and_leaving_one_bumps_the_counter_once_and_audits_the_two()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_multi_update", yaml: null);
        foreach (var id in new[] { "alpha", "beta", "gamma" })
            await bed.Tasks.CreateAsync(Task(id, id == "gamma" ? "0 5 * * *" : "0 3 * * *"), new ChangeContext("api", "alice"));
        var counter = await bed.ChangeCounterAsync();

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET schedule = '0 5 * * *'");

        Assert.Equal(counter + 1, await bed.ChangeCounterAsync());
        Assert.Equal(2, await bed.CountAsync("task_audit WHERE action = 'update' AND source = 'sql'"));
        Assert.Equal(0, await bed.CountAsync("task_audit WHERE action = 'update' AND task_id = 'gamma'"));
        Assert.Equal(1L, await bed.ScalarAsync<long>("SELECT version FROM scheduled_tasks WHERE id = 'gamma'"));
    }

    [Fact]
    public async Task Plain_sql_insert_and_delete_are_audited_as_sql_and_bump_the_change_counter()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_sql_insert_delete", yaml: null);
        var counter = await bed.ChangeCounterAsync();

        await bed.ExecuteAsync("INSERT INTO scheduled_tasks (id, name, schedule, timezone, command) VALUES ('delta', 'delta', '0 1 * * *', 'UTC', 'run-delta')");
        Assert.Equal(counter + 1, await bed.ChangeCounterAsync());
        await bed.ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = 'delta'");
        Assert.Equal(counter + 2, await bed.ChangeCounterAsync());

        var history = await bed.Tasks.HistoryAsync("delta");
        Assert.Equal([("create", "sql"), ("delete", "sql")], history.Select(h => (h.Action, h.Source)));
        Assert.Null(history[0].Before);
        Assert.Contains("run-delta", history[1].Before, StringComparison.Ordinal);
        Assert.Null(history[1].After);
    }

    [Fact]
    public async Task Plain_sql_update_that_renames_a_task_id_bumps_the_change_counter_and_is_audited()
    {
        await using var bed = await SyncTestBed.CreateAsync("schema_sql_rename", yaml: null);
        await bed.Tasks.CreateAsync(Task("alpha"), new ChangeContext("api", "alice"));
        var counter = await bed.ChangeCounterAsync();

        await bed.ExecuteAsync("UPDATE scheduled_tasks SET id = 'alpha-renamed' WHERE id = 'alpha'");

        // The row changed (a task vanished and another appeared): a sync must hear of it, and the audit must show it.
        Assert.Equal(1, await bed.CountAsync("scheduled_tasks WHERE id = 'alpha-renamed'"));
        Assert.Equal(counter + 1, await bed.ChangeCounterAsync());
        Assert.True(await bed.CountAsync("task_audit WHERE task_id IN ('alpha', 'alpha-renamed') AND source = 'sql'") >= 1,
            "the rename left no audit row");
    }
}
