using System.Text.Json;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;

namespace ScheduleSync.Tests.Sync;

/// <summary>The decision of a conflict resolution (<see cref="SyncPlanner.Resolve"/>), next to the planner's: pure, row by row.</summary>
public class ConflictResolutionDecisionTests
{
    private static readonly TaskDefinition Base = new() { Id = "a", Name = "a", Schedule = "0 3 * * *", Timezone = "UTC", Command = "run" };
    private static readonly TaskDefinition Yaml = Base with { Schedule = "0 4 * * *" };
    private static readonly TaskDefinition Database = Base with { Command = "run --fast" };
    private static readonly TaskDefinition DatabaseSameField = Base with { Schedule = "0 5 * * *" };

    private static Dictionary<string, JsonElement> Fields(string json) =>
        JsonDocument.Parse(json).RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());

    private static string? Hash(TaskDefinition? task) => task?.ContentHash;

    // ---- keep one side ----

    [Fact]
    public void Keep_yaml_gives_the_file_version_and_keep_db_the_database_version()
    {
        Assert.Equal(Hash(Yaml), Hash(SyncPlanner.Resolve("a", ResolutionChoice.KeepYaml, Yaml, Database, Base, null)));
        Assert.Equal(Hash(Database), Hash(SyncPlanner.Resolve("a", ResolutionChoice.KeepDb, Yaml, Database, Base, null)));
    }

    [Fact]
    public void Keeping_the_side_that_deleted_the_task_deletes_it()
    {
        Assert.Null(SyncPlanner.Resolve("a", ResolutionChoice.KeepYaml, null, Database, Base, null));
        Assert.Null(SyncPlanner.Resolve("a", ResolutionChoice.KeepDb, Yaml, null, Base, null));
    }

    [Theory]
    [InlineData(ResolutionChoice.KeepYaml)]
    [InlineData(ResolutionChoice.KeepDb)]
    public void Field_values_are_refused_with_a_keep_choice(ResolutionChoice choice)
    {
        var e = Assert.Throws<ResolutionException>(() => SyncPlanner.Resolve("a", choice, Yaml, Database, Base, Fields("""{"command": "x"}""")));
        Assert.Contains("only with merge", e.Message);
        Assert.True(e.Errors.ContainsKey("fields"));
    }

    // ---- merge ----

    [Fact]
    public void Merge_of_different_fields_takes_each_side_change()
    {
        var result = SyncPlanner.Resolve("a", ResolutionChoice.Merge, Yaml, Database, Base, null);
        Assert.Equal(("0 4 * * *", "run --fast"), (result!.Schedule, result.Command));
    }

    [Fact]
    public void Merge_needs_a_value_for_each_field_changed_on_both_sides_and_uses_it()
    {
        var e = Assert.Throws<ResolutionException>(() => SyncPlanner.Resolve("a", ResolutionChoice.Merge, Yaml, DatabaseSameField, Base, null));
        Assert.Equal(["fields.schedule"], e.Errors.Keys);
        var result = SyncPlanner.Resolve("a", ResolutionChoice.Merge, Yaml, DatabaseSameField, Base, Fields("""{"schedule": "0 6 * * *"}"""));
        Assert.Equal("0 6 * * *", result!.Schedule);
    }

    [Fact]
    public void Merge_without_a_base_needs_a_value_for_every_field_that_differs()
    {
        var e = Assert.Throws<ResolutionException>(() => SyncPlanner.Resolve("a", ResolutionChoice.Merge, Yaml, Database, null, null));
        Assert.Equal(["fields.command", "fields.schedule"], e.Errors.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Merge_with_one_side_deleted_keeps_the_other_and_with_both_deleted_deletes()
    {
        Assert.Equal(Hash(Database), Hash(SyncPlanner.Resolve("a", ResolutionChoice.Merge, null, Database, Base, null)));
        Assert.Equal(Hash(Yaml), Hash(SyncPlanner.Resolve("a", ResolutionChoice.Merge, Yaml, null, Base, null)));
        Assert.Null(SyncPlanner.Resolve("a", ResolutionChoice.Merge, null, null, Base, null));
    }
}
