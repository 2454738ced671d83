using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using ScheduleSync.Database;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Sync;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Tasks;

/// <summary>
/// Walks the field table: each field, set to a value other than its default, must come back unchanged through every
/// path a task takes (JSON in and out, the --set values, the YAML file, the database). A field that one path forgets
/// fails here.
/// </summary>
public class TaskFieldTableTests
{
    private static readonly TaskDefinition Plain = new() { Id = "plain", Name = "plain", Schedule = "0 3 * * *", Timezone = "UTC", Command = "run" };

    // Every field differs from Plain's value (and from its default); a new field needs a value here, or the first test fails.
    private static readonly TaskDefinition Donor = new()
    {
        Id = "plain",
        Name = "Nightly backup ✓ \"quoted\"",
        Description = "line one\nline two: with a colon",
        Schedule = "*/5 * * * *",
        Timezone = "Europe/Berlin",
        Command = "/usr/bin/backup --all # not a comment",
        Args = new Dictionary<string, ArgValue> { ["text"] = ArgValue.Of("yes"), ["count"] = ArgValue.Of(3L), ["ratio"] = ArgValue.Of(1.5), ["dry"] = ArgValue.Of(true) }
            .ToImmutableSortedDictionary(StringComparer.Ordinal),
        Enabled = false,
        TimeoutSeconds = 30,
        MaxRetries = 5,
        Tags = ["ops", "nightly"],
    };

    public static TheoryData<string> FieldNames() => [.. TaskFields.Names];

    /// <summary>Plain with one field taken from Donor (and its own id, so all variants can live side by side).</summary>
    private static TaskDefinition Variant(string field) =>
        TaskFields.Find(field)!.CopyFrom(Plain, Donor) with { Id = "v-" + field.Replace('_', '-') };

    private static string Canonical(TaskDefinition task) => TaskJson.ToCanonical(task);

    [Fact]
    public void The_table_lists_each_field_once_and_the_donor_differs_in_every_one()
    {
        Assert.Equal(TaskFields.Names.Count, TaskFields.Names.Distinct(StringComparer.Ordinal).Count());
        foreach (var field in TaskFields.All)
        {
            Assert.False(field.Equal(Plain, Donor), $"the donor must give {field.Name} a value other than the plain task's");
            Assert.False(field.IsDefault(Variant(field.Name), "UTC"), $"{field.Name} of the variant must not be its default");
            Assert.Contains($"\"{field.Name}\":", Canonical(Plain), StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(FieldNames))]
    public void A_field_round_trips_through_canonical_json_the_api_reader_and_set_values(string name)
    {
        var task = Variant(name);
        var field = TaskFields.Find(name)!;

        var fromCanonical = TaskJson.FromCanonical(task.Id, Canonical(task));
        Assert.Equal(Canonical(task), Canonical(fromCanonical));

        using var body = JsonDocument.Parse(Canonical(task));
        var (fromApi, errors) = TaskInput.Parse(body.RootElement, task.Id, "UTC");
        Assert.Empty(errors);
        Assert.Equal(Canonical(task), Canonical(fromApi!));

        // --set name=value: text as it is, the rest as JSON; applied to the plain task it gives the variant.
        var json = TaskFields.Value(task, name)!;
        var given = field.IsText ? JsonSerializer.Deserialize<string>(json)! : json;
        var applied = TaskFields.Apply(Plain with { Id = task.Id }, TaskFields.ParseAssignments([$"{name}={given}"]));
        Assert.Equal(Canonical(task), Canonical(applied));
    }

    [Theory]
    [MemberData(nameof(FieldNames))]
    public void A_field_round_trips_through_the_yaml_file_written_new_and_written_back_field_by_field(string name)
    {
        var task = Variant(name);
        var text = ScheduleWriter.WriteNew([task]);
        var loaded = ScheduleLoader.Load(Encoding.UTF8.GetBytes(text), "fields.yml");
        Assert.True(loaded.IsValid, string.Join("\n", loaded.FormatProblems()));
        Assert.Equal(Canonical(task), Canonical(Assert.Single(loaded.ValidTasks)));
        Assert.Contains($"\n    {name}: ", text, StringComparison.Ordinal);

        // Field-level write-back: the plain task's entry edited into the variant, and back again.
        var plain = Plain with { Id = task.Id };
        var plainText = ScheduleWriter.WriteNew([plain]);
        var document = ScheduleLoader.Load(Encoding.UTF8.GetBytes(plainText), "fields.yml");
        var (edits, reason) = FieldWriter.Edit(document.Text, Assert.Single(document.Entries), task, "UTC", "\n");
        Assert.Null(reason);
        var edited = Apply(document.Text, edits!);
        Assert.Equal(text, edited);
        var back = ScheduleLoader.Load(Encoding.UTF8.GetBytes(edited), "fields.yml");
        // Back again: a changed scalar keeps the quoting it has, so only the content is compared.
        var (undo, _) = FieldWriter.Edit(back.Text, Assert.Single(back.Entries), plain, "UTC", "\n");
        var undone = ScheduleLoader.Load(Encoding.UTF8.GetBytes(Apply(back.Text, undo!)), "fields.yml");
        Assert.Equal(Canonical(plain), Canonical(Assert.Single(undone.ValidTasks)));
    }

    private static string Apply(string source, List<(int Start, int End, string Text)> edits)
    {
        var text = new StringBuilder(source);
        foreach (var (start, end, replacement) in edits.OrderByDescending(e => e.Start).ThenByDescending(e => e.End))
            text.Remove(start, end - start).Insert(start, replacement);
        return text.ToString();
    }

    [Fact]
    public async Task Every_field_round_trips_through_the_store_by_create_update_unnest_and_copy()
    {
        await using var bed = await SyncTestBed.CreateAsync("field_table", yaml: null);
        var store = bed.Tasks;
        var variants = TaskFields.Names.Select(Variant).ToList();

        // Create and update go through the row parameters; reading back goes through the column readers.
        foreach (var task in variants)
        {
            var created = await store.CreateAsync(Plain with { Id = task.Id }, new ChangeContext("api", "tester"));
            Assert.Equal(Canonical(Plain with { Id = task.Id }), Canonical(created.Task!));
            var updated = await store.UpdateAsync(task, null, new ChangeContext("api", "tester"));
            Assert.Equal(Canonical(task), Canonical(updated.Task!));
            Assert.Equal(Canonical(task), Canonical((await store.GetAsync(task.Id))!.Task!));
        }

        // The unnest path (a few rows) and the binary COPY path (a thousand) of the bulk upsert.
        await UpsertAsync(bed, [.. variants.Select(t => Plain with { Id = t.Id })]);
        await AssertStoredAsync(store, variants.Select(t => Plain with { Id = t.Id }));
        await UpsertAsync(bed, [.. variants, .. Enumerable.Range(0, 1_000).Select(i => Donor with { Id = $"bulk-{i:D4}" })]);
        await AssertStoredAsync(store, variants);
        Assert.Equal(Canonical(Donor), Canonical((await store.GetAsync("bulk-0999"))!.Task!));
    }

    private static async Task UpsertAsync(SyncTestBed bed, IReadOnlyList<TaskDefinition> tasks)
    {
        await using var connection = await bed.DataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await TaskStore.SetContextAsync(connection, tx, new ChangeContext("sync", "tester"), default);
        await TaskStore.UpsertManyAsync(connection, tx, tasks, "tester", default);
        await tx.CommitAsync();
    }

    private static async Task AssertStoredAsync(TaskStore store, IEnumerable<TaskDefinition> expected)
    {
        var stored = (await store.ListAsync()).ToDictionary(s => s.Id, StringComparer.Ordinal);
        foreach (var task in expected)
        {
            // The canonical JSON is written from the values read (the stored hash would hide a column that was lost).
            Assert.Equal(Canonical(task), Canonical(stored[task.Id].Task!));
        }
    }
}
