using Npgsql;
using ScheduleSync.Files;
using ScheduleSync.Database;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Replicas;

/// <summary>Migration 5 (replicas): what one instance synced before is adopted by the first replica that syncs (SPEC §8).</summary>
public class ReplicaUpgradeTests
{
    /// <summary>
    /// The state a version-4 schedsync leaves after syncing <see cref="SyncTestBed.InitialYaml"/>: rows, base, the sync
    /// state recording the file — and one open conflict (alpha: the file says 0 5, the database 0 6), as its SQL wrote them.
    /// </summary>
    private static async Task SyncAsVersionFourAsync(SyncTestBed bed)
    {
        await Migrations.ApplyAsync(bed.DataSource, upTo: 4);
        var file = ScheduleLoader.LoadFile(bed.ConfigPath).ValidTasks.ToList();
        var alphaInDatabase = file.Single(t => t.Id == "alpha") with { Schedule = "0 6 * * *" };
        bed.EditFile("\"0 3 * * *\"", "\"0 5 * * *\"");
        var alphaInFile = ScheduleLoader.LoadFile(bed.ConfigPath).ValidTasks.Single(t => t.Id == "alpha");
        var bases = file;
        var rows = file.Select(t => t.Id == "alpha" ? alphaInDatabase : t).ToList();

        await using var connection = await bed.DataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await TaskStore.SetContextAsync(connection, tx, new ChangeContext("yaml", "schedsync:cli"), default);
        await TaskStore.UpsertManyAsync(connection, tx, rows, "schedsync:cli", default);
        NpgsqlBatchCommand Sql(string sql, params object[] values)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (var value in values) command.Parameters.Add(new NpgsqlParameter { Value = value });
            return command;
        }
        await using (var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                Sql("INSERT INTO sync_base (task_id, content, content_hash) SELECT b.id, b.content::jsonb, b.hash FROM unnest($1::text[], $2::text[], $3::text[]) AS b(id, content, hash)",
                    bases.Select(t => t.Id).ToArray(), bases.Select(TaskJson.ToCanonical).ToArray(), bases.Select(t => t.ContentHash).ToArray()),
                Sql("INSERT INTO sync_runs (trigger, status, finished_at) VALUES ('cli', 'completed', now())"),
                Sql("INSERT INTO sync_conflicts (task_id, base, yaml, db, sync_run_id) VALUES ('alpha', $1::jsonb, $2::jsonb, $3::jsonb, 1)",
                    TaskJson.ToCanonical(bases.Single(t => t.Id == "alpha")), TaskJson.ToCanonical(alphaInFile), TaskJson.ToCanonical(alphaInDatabase)),
                Sql("UPDATE sync_state SET synced_change_counter = change_counter, synced_file_checksum = $1, synced_at = now()",
                    ConfigFileStore.Checksum(bed.ReadFileBytes())),
            },
        })
        {
            await batch.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
    }

    private static async Task<string> EverythingAsync(SyncTestBed bed) => string.Join(" | ",
        await bed.ScalarAsync<long>("SELECT count(*) FROM task_audit"),
        await bed.ScalarAsync<long>("SELECT count(*) FROM sync_runs"),
        await bed.ScalarAsync<long>("SELECT event_seq FROM sync_state"),
        await bed.ScalarAsync<long>("SELECT change_counter FROM sync_state"),
        await bed.ScalarAsync<string>("SELECT string_agg(id || ' v' || version, ',' ORDER BY id) FROM scheduled_tasks"));

    [Fact]
    public async Task A_database_synced_before_replicas_is_adopted_by_the_first_replica_to_sync_with_nothing_imported_exported_or_audited()
    {
        await using var bed = await SyncTestBed.CreateAsync("replica_upgrade", migrate: false);
        await SyncAsVersionFourAsync(bed);
        var before = await EverythingAsync(bed);
        var fileBefore = bed.ReadFileBytes();

        Assert.Equal(Migrations.Count - 4, await Migrations.ApplyAsync(bed.DataSource)); // 5 (replicas) and what came after
        var replica = ReplicaName.From("host-1", bed.ConfigPath);
        var result = await new SyncRunner(bed.DataSource, ConfigFileStore.Open(bed.ConfigPath), new SyncOptions(), replica: replica).RunAsync("startup");

        Assert.Equal((SyncStatus.NoOp, 1), (result.Status, result.OpenConflicts));
        Assert.Equal(before, await EverythingAsync(bed));
        Assert.Equal(fileBefore, bed.ReadFileBytes());
        Assert.Equal("host-1", await bed.ScalarAsync<string>("SELECT string_agg(name, ',') FROM sync_replicas"));
        Assert.Equal(3L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_base WHERE replica = 'host-1'"));
        Assert.Equal("host-1", await bed.ScalarAsync<string>("SELECT replica FROM sync_conflicts WHERE task_id = 'alpha' AND status = 'open'"));
        Assert.Equal("host-1", await bed.ScalarAsync<string>("SELECT string_agg(DISTINCT replica, ',') FROM sync_runs"));

        // A second replica after it starts on its own: its copy equal to the database becomes its base, nothing imported.
        var second = Path.Combine(bed.Folder, "second.yml");
        File.WriteAllText(second, SyncTestBed.InitialYaml.Replace("\"0 3 * * *\"", "\"0 6 * * *\"", StringComparison.Ordinal));
        var joined = await new SyncRunner(bed.DataSource, ConfigFileStore.Open(second), new SyncOptions(), replica: ReplicaName.From("host-2", second)).RunAsync("startup");
        Assert.Equal((SyncStatus.Completed, 0, 0, 0, 0, 0), (joined.Status, joined.Inserts, joined.Updates, joined.Deletes, joined.Exports, joined.NewConflicts));
        Assert.Equal(3L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_base WHERE replica = 'host-2'"));
        Assert.Equal(1L, await bed.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts WHERE status = 'open'"));
    }
}
