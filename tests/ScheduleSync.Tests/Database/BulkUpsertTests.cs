using System.Collections.Immutable;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Database;

/// <summary>The bulk upsert a sync uses: unnest for small batches, binary COPY through a temp table for large ones.</summary>
public class BulkUpsertTests
{
    private static TaskDefinition Task(int i, string command = "run") => new()
    {
        Id = $"task-{i:D5}",
        Name = $"Task {i}",
        Description = i % 3 == 0 ? null : $"description {i}",
        Schedule = $"{i % 60} 3 * * *",
        Timezone = "Europe/Berlin",
        Command = $"{command} --id {i}",
        Args = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal,
            [new KeyValuePair<string, ArgValue>("keep", ArgValue.Of(7L)), new KeyValuePair<string, ArgValue>("target", ArgValue.Of("s3"))]),
        Enabled = i % 2 == 0,
        TimeoutSeconds = i % 4 == 0 ? null : 60 + i,
        MaxRetries = i % 5,
        Tags = i % 2 == 0 ? ["ops", "batch"] : [],
    };

    [Theory]
    [InlineData(10)]    // unnest
    [InlineData(1500)]  // binary COPY
    public async Task Upsert_stores_every_field_writes_only_changed_rows_and_audits_each(int count)
    {
        await using var bed = await SyncTestBed.CreateAsync("bulk_" + count, yaml: null);
        var tasks = Enumerable.Range(0, count).Select(i => Task(i)).ToList();

        await using var connection = await bed.DataSource.OpenConnectionAsync();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await TaskStore.SetContextAsync(connection, tx, new ChangeContext("yaml", "bulk-test"), default);
            Assert.Equal(count, await TaskStore.UpsertManyAsync(connection, tx, tasks, "bulk-test", default));
            // A second batch in the same transaction: nothing left over from the first upload.
            var changed = tasks.Select((t, i) => i % 100 == 0 ? Task(i, "changed") : t).ToList();
            Assert.Equal((count + 99) / 100, await TaskStore.UpsertManyAsync(connection, tx, changed, "bulk-test", default));
            await tx.CommitAsync();
            tasks = changed;
        }

        var stored = await bed.Tasks.ListAsync();
        Assert.Equal(tasks.Select(t => (t.Id, t.ContentHash)), stored.Select(s => (s.Id, s.Task!.ContentHash)));
        // The stored hash is the one recomputed from the row's fields.
        Assert.All(stored, s => Assert.Equal(TaskJson.FromCanonical(s.Id, TaskJson.ToCanonical(s.Task!)).ContentHash, s.ContentHash));
        Assert.Equal(count + (count + 99) / 100, await bed.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE source = 'yaml' AND actor = 'bulk-test'"));
    }
}
