using System.Collections.Immutable;
using CsCheck;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// The three-way decision of SPEC §4: one test per row of the decision table and per special case, then properties
/// over random file/database/base triples.
/// </summary>
public class SyncPlannerTests
{
    private static readonly SyncOptions Defaults = new();

    private static TaskDefinition Task(string id, string command = "run", string schedule = "0 3 * * *") => new()
    {
        Id = id,
        Name = id,
        Schedule = schedule,
        Timezone = "UTC",
        Command = command,
    };

    private static SyncInputs Inputs(
        IEnumerable<TaskDefinition>? yaml = null,
        IEnumerable<TaskDefinition>? database = null,
        IEnumerable<TaskDefinition>? @base = null,
        IEnumerable<string>? yamlInvalid = null,
        IEnumerable<string>? databaseInvalid = null,
        IEnumerable<string>? openConflicts = null) =>
        new(ById(yaml), ById(database), ById(@base),
            (yamlInvalid ?? []).ToHashSet(StringComparer.Ordinal),
            (databaseInvalid ?? []).ToHashSet(StringComparer.Ordinal),
            (openConflicts ?? []).ToHashSet(StringComparer.Ordinal));

    private static Dictionary<string, TaskDefinition> ById(IEnumerable<TaskDefinition>? tasks) =>
        (tasks ?? []).ToDictionary(t => t.Id, StringComparer.Ordinal);

    private static SyncAction Decide(SyncInputs inputs, string id, SyncOptions? options = null)
    {
        var plan = SyncPlanner.Plan(inputs, options ?? Defaults);
        return Assert.Single(plan.Actions, a => a.Id == id);
    }

    private static void AssertSame(TaskDefinition? expected, TaskDefinition? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.ContentHash, actual.ContentHash);
    }

    /// <summary>Five other tasks that are in sync, so that a single deletion never trips the mass-deletion guard.</summary>
    private static TaskDefinition[] Bystanders => [.. Enumerable.Range(1, 5).Select(i => Task($"other-{i}"))];

    // ---- Y = D ----

    [Fact]
    public void Task_equal_on_both_sides_and_in_the_base_is_in_sync()
    {
        var a = Task("a");
        var action = Decide(Inputs([a], [a], [a]), "a");
        Assert.Equal(SyncActionKind.InSync, action.Kind);
        AssertSame(a, action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Task_equal_on_both_sides_but_different_from_the_base_sets_the_base()
    {
        var a = Task("a");
        var action = Decide(Inputs([a], [a], [a with { Command = "old" }]), "a");
        Assert.Equal(SyncActionKind.SetBase, action.Kind);
        AssertSame(a, action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Task_gone_from_both_sides_drops_its_base()
    {
        var action = Decide(Inputs(@base: [Task("a")]), "a");
        Assert.Equal(SyncActionKind.DropBase, action.Kind);
        Assert.Null(action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    // ---- Y = B, D ≠ B: the database changed ----

    [Fact]
    public void Database_change_is_exported_to_the_file_when_the_file_is_unchanged()
    {
        var b = Task("a");
        var d = b with { Command = "new" };
        var action = Decide(Inputs([b], [d], [b]), "a");
        Assert.Equal(SyncActionKind.ExportUpdate, action.Kind);
        AssertSame(d, action.Result);
        Assert.True(action.ChangesFile);
        Assert.False(action.ChangesDatabase);
    }

    [Fact]
    public void Task_deleted_in_the_database_is_removed_from_the_file()
    {
        var b = Task("a");
        var plan = SyncPlanner.Plan(Inputs([b, .. Bystanders], Bystanders, [b, .. Bystanders]), Defaults);
        var action = Assert.Single(plan.Actions, a => a.Id == "a");
        Assert.Equal(SyncActionKind.ExportRemove, action.Kind);
        Assert.Null(action.Result);
        Assert.True(action.ChangesFile);
        Assert.False(action.ChangesDatabase);
        Assert.False(plan.IsRefused);
    }

    [Fact]
    public void Task_new_in_the_database_is_added_to_the_file()
    {
        var d = Task("a");
        var action = Decide(Inputs(database: [d]), "a");
        Assert.Equal(SyncActionKind.ExportAdd, action.Kind);
        AssertSame(d, action.Result);
        Assert.True(action.ChangesFile);
        Assert.False(action.ChangesDatabase);
    }

    // ---- D = B, Y ≠ B: the file changed ----

    [Fact]
    public void File_change_is_imported_into_the_database_when_the_database_is_unchanged()
    {
        var b = Task("a");
        var y = b with { Schedule = "@daily" };
        var action = Decide(Inputs([y], [b], [b]), "a");
        Assert.Equal(SyncActionKind.ImportUpdate, action.Kind);
        AssertSame(y, action.Result);
        Assert.True(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Task_new_in_the_file_is_inserted_into_the_database()
    {
        var y = Task("a");
        var action = Decide(Inputs(yaml: [y]), "a");
        Assert.Equal(SyncActionKind.ImportInsert, action.Kind);
        AssertSame(y, action.Result);
        Assert.True(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Task_removed_from_the_file_is_deleted_from_the_database()
    {
        var b = Task("a");
        var plan = SyncPlanner.Plan(Inputs(Bystanders, [b, .. Bystanders], [b, .. Bystanders]), Defaults);
        var action = Assert.Single(plan.Actions, a => a.Id == "a");
        Assert.Equal(SyncActionKind.ImportDelete, action.Kind);
        Assert.Null(action.Result);
        Assert.True(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
        Assert.False(plan.IsRefused);
    }

    // ---- Y ≠ B, D ≠ B, Y ≠ D: both changed ----

    [Fact]
    public void Changes_to_different_fields_on_both_sides_are_merged_when_auto_merge_is_on()
    {
        var b = Task("a") with { Name = "Report", Tags = ["ops"] };
        var y = b with { Command = "run --fast", Tags = ["ops", "nightly"] };
        var d = b with { Schedule = "@hourly", Enabled = false, TimeoutSeconds = 60 };

        var action = Decide(Inputs([y], [d], [b]), "a");

        Assert.Equal(SyncActionKind.Merge, action.Kind);
        Assert.Empty(action.ConflictingFields);
        Assert.True(action.ChangesDatabase);
        Assert.True(action.ChangesFile);
        var merged = action.Result!;
        Assert.Equal("a", merged.Id);
        Assert.Equal("Report", merged.Name);
        Assert.Equal("run --fast", merged.Command);
        Assert.Equal(new[] { "ops", "nightly" }, merged.Tags);
        Assert.Equal("@hourly", merged.Schedule);
        Assert.False(merged.Enabled);
        Assert.Equal(60, merged.TimeoutSeconds);
        AssertSame(b with { Command = "run --fast", Tags = ["ops", "nightly"], Schedule = "@hourly", Enabled = false, TimeoutSeconds = 60 }, merged);
    }

    [Fact]
    public void Merge_takes_args_and_description_as_whole_fields_from_the_side_that_changed_them()
    {
        var b = Task("a") with { Args = Args(("keep", ArgValue.Of(7))), Description = "old" };
        var y = b with { Args = Args(("keep", ArgValue.Of(8)), ("target", ArgValue.Of("s3"))) };
        var d = b with { Description = null, MaxRetries = 3 };

        var merged = Decide(Inputs([y], [d], [b]), "a").Result!;

        Assert.Equal("""{"keep":8,"target":"s3"}""", merged.ArgsJson());
        Assert.Null(merged.Description);
        Assert.Equal(3, merged.MaxRetries);
    }

    [Fact]
    public void Changes_to_different_fields_on_both_sides_are_a_conflict_when_auto_merge_is_off()
    {
        var b = Task("a");
        var y = b with { Command = "run --fast" };
        var d = b with { Schedule = "@hourly" };

        var action = Decide(Inputs([y], [d], [b]), "a", new SyncOptions { AutoMerge = false });

        Assert.Equal(SyncActionKind.Conflict, action.Kind);
        Assert.Null(action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
        Assert.Equal(new[] { "schedule", "command" }, action.ConflictingFields);
    }

    [Fact]
    public void Same_field_changed_differently_on_both_sides_is_a_conflict_naming_that_field()
    {
        var b = Task("a");
        var y = b with { Command = "from-file", Name = "File name" };
        var d = b with { Command = "from-db", Schedule = "@hourly" };

        var action = Decide(Inputs([y], [d], [b]), "a");

        Assert.Equal(SyncActionKind.Conflict, action.Kind);
        Assert.Equal(new[] { "command" }, action.ConflictingFields);
        Assert.Null(action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
        Assert.Contains("same field", action.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Same_field_changed_to_the_same_value_on_both_sides_only_sets_the_base()
    {
        var b = Task("a");
        var y = b with { Command = "same" };
        var d = b with { Command = "same" };

        var action = Decide(Inputs([y], [d], [b]), "a");

        Assert.Equal(SyncActionKind.SetBase, action.Kind);
        AssertSame(y, action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Same_change_on_both_sides_plus_another_change_in_the_database_merges_to_the_database_version()
    {
        var b = Task("a");
        var y = b with { Command = "same" };
        var d = b with { Command = "same", MaxRetries = 2 };

        var action = Decide(Inputs([y], [d], [b]), "a");

        Assert.Equal(SyncActionKind.Merge, action.Kind);
        AssertSame(d, action.Result);
    }

    // ---- created on both sides, deleted on one and changed on the other ----

    [Fact]
    public void Task_created_on_both_sides_with_equal_content_sets_the_base()
    {
        var action = Decide(Inputs([Task("a")], [Task("a")]), "a");
        Assert.Equal(SyncActionKind.SetBase, action.Kind);
        AssertSame(Task("a"), action.Result);
    }

    [Fact]
    public void Task_created_on_both_sides_with_different_content_is_a_conflict()
    {
        var y = Task("a", command: "from-file");
        var d = Task("a", command: "from-db") with { Enabled = false };

        var action = Decide(Inputs([y], [d]), "a");

        Assert.Equal(SyncActionKind.Conflict, action.Kind);
        Assert.Equal(new[] { "command", "enabled" }, action.ConflictingFields);
        Assert.Null(action.Result);
        Assert.Null(action.Base);
        AssertSame(y, action.Yaml);
        AssertSame(d, action.Database);
    }

    [Fact]
    public void Task_deleted_in_the_file_and_changed_in_the_database_is_a_conflict()
    {
        var b = Task("a");
        var d = b with { Command = "changed" };

        var action = Decide(Inputs(Bystanders, [d, .. Bystanders], [b, .. Bystanders]), "a");

        Assert.Equal(SyncActionKind.Conflict, action.Kind);
        Assert.Null(action.Result);
        Assert.Null(action.Yaml);
        AssertSame(d, action.Database);
        AssertSame(b, action.Base);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Task_deleted_in_the_database_and_changed_in_the_file_is_a_conflict()
    {
        var b = Task("a");
        var y = b with { Command = "changed" };

        var action = Decide(Inputs([y, .. Bystanders], Bystanders, [b, .. Bystanders]), "a");

        Assert.Equal(SyncActionKind.Conflict, action.Kind);
        Assert.Null(action.Result);
        AssertSame(y, action.Yaml);
        Assert.Null(action.Database);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    // ---- first sync, no base ----

    [Fact]
    public void First_sync_into_an_empty_database_imports_every_task_of_the_file()
    {
        var tasks = Enumerable.Range(0, 6).Select(i => Task($"t{i}")).ToArray();
        var plan = SyncPlanner.Plan(Inputs(yaml: tasks), Defaults);
        Assert.False(plan.IsRefused);
        Assert.Equal(6, plan.Actions.Count);
        Assert.All(plan.Actions, a => Assert.Equal(SyncActionKind.ImportInsert, a.Kind));
    }

    [Fact]
    public void First_sync_with_a_missing_file_exports_every_task_of_the_database()
    {
        var tasks = Enumerable.Range(0, 6).Select(i => Task($"t{i}")).ToArray();
        var plan = SyncPlanner.Plan(Inputs(database: tasks), Defaults);
        Assert.False(plan.IsRefused);
        Assert.Equal(6, plan.Actions.Count);
        Assert.All(plan.Actions, a => Assert.Equal(SyncActionKind.ExportAdd, a.Kind));
    }

    [Fact]
    public void First_sync_with_both_sides_filled_takes_equal_tasks_as_base_and_reports_differing_ones_as_conflicts()
    {
        var plan = SyncPlanner.Plan(Inputs(
            yaml: [Task("equal"), Task("differs", command: "file"), Task("file-only")],
            database: [Task("equal"), Task("differs", command: "db"), Task("db-only")]), Defaults);

        Assert.False(plan.IsRefused);
        Assert.Equal(
            new[] { ("db-only", SyncActionKind.ExportAdd), ("differs", SyncActionKind.Conflict), ("equal", SyncActionKind.SetBase), ("file-only", SyncActionKind.ImportInsert) },
            plan.Actions.Select(a => (a.Id, a.Kind)));
    }

    // ---- open conflicts ----

    [Fact]
    public void Open_conflict_freezes_its_task_while_other_tasks_keep_syncing()
    {
        var b = Task("frozen");
        var other = Task("other");
        var plan = SyncPlanner.Plan(Inputs(
            yaml: [b with { Command = "file" }, other with { Command = "file" }],
            database: [b with { Command = "db" }, other],
            @base: [b, other],
            openConflicts: ["frozen"]), Defaults);

        var frozen = Assert.Single(plan.Actions, a => a.Id == "frozen");
        Assert.Equal(SyncActionKind.Frozen, frozen.Kind);
        Assert.Null(frozen.Result);
        Assert.False(frozen.ChangesDatabase);
        Assert.False(frozen.ChangesFile);
        Assert.Equal(SyncActionKind.ImportUpdate, Assert.Single(plan.Actions, a => a.Id == "other").Kind);
        Assert.DoesNotContain(plan.Changes, a => a.Id == "frozen");
    }

    [Fact]
    public void Open_conflict_freezes_its_task_even_when_only_one_side_changed_since_the_base()
    {
        var b = Task("a");
        var action = Decide(Inputs([b with { Command = "newer" }], [b], [b], openConflicts: ["a"]), "a");
        Assert.Equal(SyncActionKind.Frozen, action.Kind);
    }

    [Fact]
    public void Open_conflict_freezes_a_task_deleted_on_one_side()
    {
        var b = Task("a");
        var action = Decide(Inputs(Bystanders, [b, .. Bystanders], [b, .. Bystanders], openConflicts: ["a"]), "a");
        Assert.Equal(SyncActionKind.Frozen, action.Kind);
        Assert.False(action.ChangesDatabase);
    }

    [Fact]
    public void Open_conflict_whose_sides_became_equal_closes_itself()
    {
        var b = Task("a");
        var settled = b with { Command = "settled" };
        var action = Decide(Inputs([settled], [settled], [b], openConflicts: ["a"]), "a");
        Assert.Equal(SyncActionKind.CloseConflict, action.Kind);
        AssertSame(settled, action.Result);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
    }

    [Fact]
    public void Open_conflict_on_a_task_that_is_invalid_in_the_file_stays_frozen()
    {
        var b = Task("a");
        var action = Decide(Inputs(database: [b], @base: [b], yamlInvalid: ["a"], openConflicts: ["a"]), "a");
        Assert.Equal(SyncActionKind.Frozen, action.Kind);
    }

    // ---- invalid tasks (on_invalid: skip_task) ----

    [Fact]
    public void Task_invalid_in_the_file_is_skipped_and_not_deleted_from_the_database()
    {
        var b = Task("a");
        var plan = SyncPlanner.Plan(Inputs(database: [b], @base: [b], yamlInvalid: ["a"]), Defaults);
        var action = Assert.Single(plan.Actions);
        Assert.Equal(SyncActionKind.SkipInvalid, action.Kind);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
        Assert.False(plan.IsRefused);
    }

    [Fact]
    public void Task_new_and_invalid_in_the_file_is_skipped()
    {
        var action = Decide(Inputs(yamlInvalid: ["a"]), "a");
        Assert.Equal(SyncActionKind.SkipInvalid, action.Kind);
    }

    [Fact]
    public void Task_invalid_in_the_database_is_skipped_and_not_removed_from_the_file()
    {
        var b = Task("a");
        var plan = SyncPlanner.Plan(Inputs(yaml: [b], @base: [b], databaseInvalid: ["a"]), Defaults);
        var action = Assert.Single(plan.Actions);
        Assert.Equal(SyncActionKind.SkipInvalid, action.Kind);
        Assert.False(action.ChangesDatabase);
        Assert.False(action.ChangesFile);
        Assert.False(plan.IsRefused);
    }

    // ---- mass-deletion guard ----

    private static SyncPlan RemoveFromFile(int total, int removed, SyncOptions? options = null)
    {
        var tasks = Enumerable.Range(0, total).Select(i => Task($"t{i}")).ToArray();
        return SyncPlanner.Plan(Inputs(yaml: tasks[removed..], database: tasks, @base: tasks), options ?? Defaults);
    }

    private static SyncPlan RemoveFromDatabase(int total, int removed, SyncOptions? options = null)
    {
        var tasks = Enumerable.Range(0, total).Select(i => Task($"t{i}")).ToArray();
        return SyncPlanner.Plan(Inputs(yaml: tasks, database: tasks[removed..], @base: tasks), options ?? Defaults);
    }

    [Fact]
    public void Emptied_file_does_not_wipe_the_database()
    {
        var plan = RemoveFromFile(total: 3, removed: 3);
        Assert.True(plan.IsRefused);
        Assert.Contains("--allow-mass-delete", plan.Refusal, StringComparison.Ordinal);
        Assert.Contains("3 of 3", plan.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_after_a_sync_does_not_wipe_the_database()
    {
        var tasks = Enumerable.Range(0, 10).Select(i => Task($"t{i}")).ToArray();
        var plan = SyncPlanner.Plan(Inputs(database: tasks, @base: tasks), Defaults);
        Assert.True(plan.IsRefused);
        Assert.Contains("--allow-mass-delete", plan.Refusal, StringComparison.Ordinal);
    }

    [Theory]
    // more than half of more than 4 tasks: refused
    [InlineData(5, 3, true)]
    [InlineData(10, 6, true)]
    // half or less of more than 4 tasks: allowed
    [InlineData(5, 2, false)]
    [InlineData(6, 3, false)]
    [InlineData(10, 5, false)]
    // 4 tasks or fewer: only deleting all of them is refused
    [InlineData(4, 3, false)]
    [InlineData(4, 1, false)]
    [InlineData(4, 4, true)]
    [InlineData(2, 1, false)]
    [InlineData(1, 1, true)]
    public void Mass_deletion_guard_protects_the_database_from_the_file(int total, int removed, bool refused)
    {
        var plan = RemoveFromFile(total, removed);
        Assert.Equal(removed, plan.Count(SyncActionKind.ImportDelete));
        Assert.Equal(refused, plan.IsRefused);
        if (refused) Assert.Contains("--allow-mass-delete", plan.Refusal, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(5, 3, true)]
    [InlineData(5, 2, false)]
    [InlineData(6, 3, false)]
    [InlineData(4, 3, false)]
    [InlineData(4, 4, true)]
    [InlineData(1, 1, true)]
    public void Mass_deletion_guard_protects_the_file_from_the_database(int total, int removed, bool refused)
    {
        var plan = RemoveFromDatabase(total, removed);
        Assert.Equal(removed, plan.Count(SyncActionKind.ExportRemove));
        Assert.Equal(refused, plan.IsRefused);
        if (refused) Assert.Contains("--allow-mass-delete", plan.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Emptied_database_does_not_wipe_the_file()
    {
        var plan = RemoveFromDatabase(total: 7, removed: 7);
        Assert.True(plan.IsRefused);
        Assert.Contains("--allow-mass-delete", plan.Refusal, StringComparison.Ordinal);
        Assert.Contains("from the file", plan.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Allow_mass_delete_lifts_the_guard_on_both_sides()
    {
        var allow = new SyncOptions { AllowMassDelete = true };
        var fromFile = RemoveFromFile(5, 5, allow);
        var fromDatabase = RemoveFromDatabase(5, 5, allow);
        Assert.False(fromFile.IsRefused);
        Assert.Equal(5, fromFile.Count(SyncActionKind.ImportDelete));
        Assert.False(fromDatabase.IsRefused);
        Assert.Equal(5, fromDatabase.Count(SyncActionKind.ExportRemove));
    }

    [Fact]
    public void Mass_deletion_share_is_configurable()
    {
        var strict = new SyncOptions { MassDeleteShare = 0.2 };
        Assert.True(RemoveFromFile(10, 3, strict).IsRefused);
        Assert.False(RemoveFromFile(10, 2, strict).IsRefused);
    }

    [Fact]
    public void Tasks_skipped_as_invalid_are_not_counted_as_deletions()
    {
        var tasks = Enumerable.Range(0, 5).Select(i => Task($"t{i}")).ToArray();
        // Three tasks are invalid in the file, one is really removed: 1 of 5 is deleted.
        var plan = SyncPlanner.Plan(Inputs(yaml: [tasks[4]], database: tasks, @base: tasks, yamlInvalid: ["t0", "t1", "t2"]), Defaults);
        Assert.False(plan.IsRefused);
        Assert.Equal(3, plan.Count(SyncActionKind.SkipInvalid));
        Assert.Equal(1, plan.Count(SyncActionKind.ImportDelete));
    }

    // ---- equality is by normalised content ----

    [Fact]
    public void Explicit_defaults_and_omitted_defaults_are_the_same_task()
    {
        var omitted = TaskGenerators.Build(new TaskDraft { Id = "a", Schedule = "0 3 * * *", Command = "run" });
        var explicitDefaults = TaskGenerators.Build(new TaskDraft
        {
            Id = "a", Name = "a", Schedule = "0  3 * *   *", Timezone = "UTC", Command = "run", Args = [], Enabled = true, MaxRetries = 0, Tags = [],
        });

        var action = Decide(Inputs([omitted], [explicitDefaults], [omitted]), "a");

        Assert.Equal(SyncActionKind.InSync, action.Kind);
    }

    [Fact]
    public void Args_key_order_does_not_make_tasks_differ()
    {
        var forward = TaskGenerators.Build(new TaskDraft
        {
            Id = "a", Schedule = "@daily", Command = "run",
            Args = new Dictionary<string, ArgValue> { ["target"] = ArgValue.Of("s3"), ["keep"] = ArgValue.Of(7), ["b"] = ArgValue.Of(true) },
        });
        var backward = TaskGenerators.Build(new TaskDraft
        {
            Id = "a", Schedule = "@daily", Command = "run",
            Args = new Dictionary<string, ArgValue> { ["b"] = ArgValue.Of(true), ["keep"] = ArgValue.Of(7), ["target"] = ArgValue.Of("s3") },
        });

        Assert.Equal(SyncActionKind.InSync, Decide(Inputs([forward], [backward], [forward]), "a").Kind);
    }

    [Fact]
    public void Default_time_zone_of_the_file_makes_an_omitted_time_zone_equal_to_the_explicit_one()
    {
        var fromFile = TaskGenerators.Build(new TaskDraft { Id = "a", Schedule = "@daily", Command = "run" }, defaultTimezone: "Europe/Berlin");
        var fromDatabase = TaskGenerators.Build(new TaskDraft { Id = "a", Schedule = "@daily", Command = "run", Timezone = "Europe/Berlin" });
        Assert.Equal(SyncActionKind.SetBase, Decide(Inputs([fromFile], [fromDatabase]), "a").Kind);
    }

    [Fact]
    public void Tag_order_is_content()
    {
        var b = Task("a") with { Tags = ["ops", "backup"] };
        var y = b with { Tags = ["backup", "ops"] };
        Assert.Equal(SyncActionKind.ImportUpdate, Decide(Inputs([y], [b], [b]), "a").Kind);
    }

    // ---- properties ----

    private sealed record Side(TaskDefinition? Yaml, TaskDefinition? Database, TaskDefinition? Base, bool YamlInvalid, bool DatabaseInvalid, bool Open);

    private static readonly string[] IdPool = ["a", "b", "c", "d", "e", "f", "g", "h"];

    /// <summary>
    /// The three versions of one task, drawn so that every row of the table is likely: each side is absent, the base,
    /// or a version changed from a common root in one or two fields (values from small pools, so changes collide).
    /// </summary>
    private static Gen<Side> Versions(string id) =>
        TaskGenerators.TaskWithId(id).SelectMany(root => TaskGenerators.Changed(root, 2).SelectMany(changedY =>
            Gen.Select(TaskGenerators.Changed(root, 2), TaskGenerators.Changed(changedY, 1), Gen.Bool, Gen.Int[0, 3], Gen.Int[0, 5], Gen.Int[0, 29],
                (changedD, changedYAgain, hasBase, yChoice, dChoice, flags) =>
                {
                    var b = hasBase ? root : null;
                    var y = yChoice switch { 0 => null, 1 => b ?? root, _ => changedY };
                    var d = dChoice switch { 0 => null, 1 => b, 2 => y, 3 => changedYAgain, _ => changedD };
                    // Flags: 0 invalid in the file, 1 invalid in the database, 2-3 an open conflict.
                    return new Side(flags == 0 ? null : y, flags == 1 ? null : d, b, flags == 0, flags == 1, flags is 2 or 3);
                })));

    private static readonly Gen<SyncInputs> InputsGen =
        Gen.Shuffle(IdPool).Select(Gen.Int[0, IdPool.Length]).SelectMany((ids, count) =>
            TaskGenerators.All([.. ids.Take(count).Select(id => Versions(id).Select(side => (id, side)))]).Select(sides => new SyncInputs(
                sides.Where(s => s.side.Yaml is not null).ToDictionary(s => s.id, s => s.side.Yaml!, StringComparer.Ordinal),
                sides.Where(s => s.side.Database is not null).ToDictionary(s => s.id, s => s.side.Database!, StringComparer.Ordinal),
                sides.Where(s => s.side.Base is not null).ToDictionary(s => s.id, s => s.side.Base!, StringComparer.Ordinal),
                sides.Where(s => s.side.YamlInvalid).Select(s => s.id).ToHashSet(StringComparer.Ordinal),
                sides.Where(s => s.side.DatabaseInvalid).Select(s => s.id).ToHashSet(StringComparer.Ordinal),
                sides.Where(s => s.side.Open).Select(s => s.id).ToHashSet(StringComparer.Ordinal))));

    private static readonly SyncOptions AllowAll = new() { AllowMassDelete = true };

    private static string? Hash(TaskDefinition? task) => task?.ContentHash;

    private static string Describe(SyncInputs inputs) =>
        string.Join("\n", new[] { inputs.Yaml.Keys, inputs.Database.Keys, inputs.Base.Keys, inputs.YamlInvalid, inputs.DatabaseInvalid, inputs.OpenConflicts }
            .SelectMany(k => k).Distinct().Order(StringComparer.Ordinal).Select(id =>
                $"{id}: Y={Short(inputs.Yaml.GetValueOrDefault(id))} D={Short(inputs.Database.GetValueOrDefault(id))} B={Short(inputs.Base.GetValueOrDefault(id))}"
                + $" yInvalid={inputs.YamlInvalid.Contains(id)} dInvalid={inputs.DatabaseInvalid.Contains(id)} open={inputs.OpenConflicts.Contains(id)}"));

    private static string Short(TaskDefinition? task) => task is null ? "-" : task.ContentHash[..8];

    [Fact]
    public void Applying_a_plan_makes_both_sides_equal_for_every_task_it_does_not_hold_back()
    {
        InputsGen.Sample(inputs =>
        {
            var plan = SyncPlanner.Plan(inputs, AllowAll);
            Assert.False(plan.IsRefused);
            var yaml = inputs.Yaml.ToDictionary(StringComparer.Ordinal);
            var database = inputs.Database.ToDictionary(StringComparer.Ordinal);
            var @base = inputs.Base.ToDictionary(StringComparer.Ordinal);

            foreach (var action in plan.Actions)
            {
                // Put the result on each side the action says it changes; leave the other side alone.
                if (action.ChangesFile) Put(yaml, action.Id, action.Result);
                if (action.ChangesDatabase) Put(database, action.Id, action.Result);
                var heldBack = action.Kind is SyncActionKind.Conflict or SyncActionKind.Frozen or SyncActionKind.SkipInvalid;
                if (heldBack)
                {
                    Assert.Null(action.Result);
                    Assert.False(action.ChangesFile || action.ChangesDatabase);
                    continue;
                }
                Assert.Equal(Hash(yaml.GetValueOrDefault(action.Id)), Hash(database.GetValueOrDefault(action.Id)));
                Assert.Equal(Hash(yaml.GetValueOrDefault(action.Id)), Hash(action.Result));
                Put(@base, action.Id, action.Result);
            }

            // A second run over the result finds nothing more to do: every task is in sync or still held back.
            var open = inputs.OpenConflicts.Concat(plan.Actions.Where(a => a.Kind == SyncActionKind.Conflict).Select(a => a.Id))
                .Except(plan.Actions.Where(a => a.Kind == SyncActionKind.CloseConflict).Select(a => a.Id)).ToHashSet(StringComparer.Ordinal);
            var again = SyncPlanner.Plan(new SyncInputs(yaml, database, @base, inputs.YamlInvalid, inputs.DatabaseInvalid, open), AllowAll);
            Assert.All(again.Actions, a => Assert.Contains(a.Kind, new[] { SyncActionKind.InSync, SyncActionKind.Frozen, SyncActionKind.SkipInvalid }));
        }, iter: 2_000, print: Describe);
    }

    private static void Put(Dictionary<string, TaskDefinition> side, string id, TaskDefinition? task)
    {
        if (task is null) side.Remove(id);
        else side[id] = task;
    }

    // ---- issue 10: what a run remembers, and restore ----

    [Fact]
    public void Refused_deletion_stays_refused_whatever_the_share_until_allowed_and_allowing_changes_nothing_else()
    {
        Gen.Select(InputsGen, Gen.Int).Sample((inputs, seed) =>
        {
            var free = SyncPlanner.Plan(inputs, AllowAll);
            var deletions = free.Actions.Where(a => a.Deletes).Select(a => a.Id).ToList();
            if (deletions.Count == 0) return;
            var random = new Random(seed);
            var refused = deletions.Where((_, i) => i == 0 || random.Next(2) == 0).ToHashSet(StringComparer.Ordinal);
            var remembered = inputs with { RefusedDeletions = refused };

            Assert.True(SyncPlanner.Plan(remembered, new SyncOptions()).IsRefused, "a deletion refused before went through");
            var allowed = SyncPlanner.Plan(remembered, AllowAll);
            Assert.Null(allowed.Refusal);
            Assert.Equal(free.Actions.Select(a => (a.Id, a.Kind, Hash(a.Result))), allowed.Actions.Select(a => (a.Id, a.Kind, Hash(a.Result))));
        }, iter: 1_000, print: t => Describe(t.Item1));
    }

    [Fact]
    public void Restore_never_changes_the_database_and_revert_never_changes_the_file()
    {
        InputsGen.Sample(inputs =>
        {
            foreach (var action in SyncPlanner.Plan(inputs.PreferDatabase(), AllowAll).Actions)
            {
                Assert.False(action.ChangesDatabase || action.Kind == SyncActionKind.Conflict, $"restore: {action.Id}: {action.Kind}");
                if (action.ChangesFile) Assert.Equal(Hash(action.Database), Hash(action.Result));
            }
            foreach (var action in SyncPlanner.Plan(inputs.PreferFile(), AllowAll).Actions)
            {
                Assert.False(action.ChangesFile || action.Kind == SyncActionKind.Conflict, $"revert: {action.Id}: {action.Kind}");
                if (action.ChangesDatabase) Assert.Equal(Hash(action.Yaml), Hash(action.Result));
            }
        }, iter: 2_000, print: Describe);
    }

    [Fact]
    public void File_holding_a_recorded_export_is_never_a_conflict_and_gets_the_newest_database_version()
    {
        InputsGen.Sample(inputs =>
        {
            // Every file version counts as what an interrupted run exported.
            var recorded = inputs with { RecordedExports = inputs.Yaml.Select(kv => (kv.Key, kv.Value.ContentHash)).ToHashSet() };
            foreach (var action in SyncPlanner.Plan(recorded, AllowAll).Actions)
            {
                if (action.Yaml is null || inputs.OpenConflicts.Contains(action.Id) || inputs.DatabaseInvalid.Contains(action.Id)) continue;
                Assert.False(action.ChangesDatabase || action.Kind == SyncActionKind.Conflict, $"{action.Id}: {action.Kind}");
                Assert.Equal(Hash(action.Database), Hash(action.Result));
            }
        }, iter: 2_000, print: Describe);
    }

    [Fact]
    public void Planner_never_writes_to_a_side_that_is_unchanged_since_the_base_when_the_other_side_is_too()
    {
        InputsGen.Sample(inputs =>
        {
            foreach (var action in SyncPlanner.Plan(inputs, AllowAll).Actions)
            {
                var y = Hash(action.Yaml);
                var d = Hash(action.Database);
                var b = Hash(action.Base);
                if (y == d && d == b)
                {
                    Assert.False(action.ChangesDatabase, $"{action.Id}: {action.Kind} changes the database although Y = D = B");
                    Assert.False(action.ChangesFile, $"{action.Id}: {action.Kind} changes the file although Y = D = B");
                }
                // A side that did not change since the base never pushes into the other side.
                if (y == b && !inputs.YamlInvalid.Contains(action.Id))
                    Assert.False(action.ChangesDatabase, $"{action.Id}: {action.Kind} changes the database although the file did not change");
                if (d == b && !inputs.DatabaseInvalid.Contains(action.Id))
                    Assert.False(action.ChangesFile, $"{action.Id}: {action.Kind} changes the file although the database did not change");
            }
        }, iter: 2_000, print: Describe);
    }

    [Fact]
    public void Plan_is_deterministic_sorted_by_id_and_has_one_action_per_task()
    {
        Gen.Select(InputsGen, Gen.Int).Sample((inputs, seed) =>
        {
            var options = new SyncOptions();
            var first = SyncPlanner.Plan(inputs, options);
            var shuffled = SyncPlanner.Plan(Shuffle(inputs, new Random(seed)), options);

            static string Key(SyncAction a) => $"{a.Id}|{a.Kind}|{a.Result?.ContentHash}|{string.Join(",", a.ConflictingFields)}|{a.Reason}";
            Assert.Equal(first.Actions.Select(Key), shuffled.Actions.Select(Key));
            Assert.Equal(first.Refusal, shuffled.Refusal);

            var ids = first.Actions.Select(a => a.Id).ToList();
            Assert.Equal(ids.Order(StringComparer.Ordinal), ids);
            Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());
            var expected = inputs.Yaml.Keys.Concat(inputs.Database.Keys).Concat(inputs.Base.Keys)
                .Concat(inputs.YamlInvalid).Concat(inputs.DatabaseInvalid).Concat(inputs.OpenConflicts).ToHashSet(StringComparer.Ordinal);
            Assert.True(expected.SetEquals(ids));
        }, iter: 1_000);
    }

    [Fact]
    public void Hash_prefilter_leaves_out_only_tasks_the_plan_finds_in_sync_and_planning_the_candidates_alone_decides_the_same()
    {
        InputsGen.Sample(inputs =>
        {
            // The runner knows the database side by hash; an invalid row has no usable hash (plain SQL cleared it).
            var database = inputs.Database.ToDictionary(kv => kv.Key, kv => (string?)kv.Value.ContentHash, StringComparer.Ordinal);
            foreach (var id in inputs.DatabaseInvalid) database[id] = null;
            var candidates = SyncPlanner.Candidates(inputs.Yaml.ToDictionary(kv => kv.Key, kv => kv.Value.ContentHash, StringComparer.Ordinal),
                database, inputs.Base.ToDictionary(kv => kv.Key, kv => kv.Value.ContentHash, StringComparer.Ordinal), inputs.YamlInvalid, inputs.OpenConflicts);

            var full = SyncPlanner.Plan(inputs, Defaults);
            Assert.All(full.Actions.Where(a => !candidates.Contains(a.Id)), a => Assert.Equal(SyncActionKind.InSync, a.Kind));

            Dictionary<string, TaskDefinition> Only(IReadOnlyDictionary<string, TaskDefinition> side) =>
                side.Where(kv => candidates.Contains(kv.Key)).ToDictionary(StringComparer.Ordinal);
            var narrowed = new SyncInputs(Only(inputs.Yaml), Only(inputs.Database), Only(inputs.Base), inputs.YamlInvalid, inputs.DatabaseInvalid, inputs.OpenConflicts)
            {
                YamlTotal = inputs.Yaml.Count + inputs.YamlInvalid.Count,
                DatabaseTotal = inputs.Database.Count + inputs.DatabaseInvalid.Count,
            };
            var planned = SyncPlanner.Plan(narrowed, Defaults);
            static string Key(SyncAction a) => $"{a.Id}|{a.Kind}|{a.Result?.ContentHash}|{string.Join(",", a.ConflictingFields)}";
            Assert.Equal(full.Actions.Where(a => candidates.Contains(a.Id)).Select(Key), planned.Actions.Select(Key));
            Assert.Equal(full.Refusal, planned.Refusal);
        }, iter: 2_000, print: Describe);
    }

    private static SyncInputs Shuffle(SyncInputs inputs, Random random)
    {
        Dictionary<string, TaskDefinition> Mix(IReadOnlyDictionary<string, TaskDefinition> side) =>
            side.OrderBy(_ => random.Next()).ToDictionary(StringComparer.Ordinal);
        HashSet<string> MixSet(IReadOnlySet<string> set) => set.OrderBy(_ => random.Next()).ToHashSet(StringComparer.Ordinal);
        return new SyncInputs(Mix(inputs.Yaml), Mix(inputs.Database), Mix(inputs.Base),
            MixSet(inputs.YamlInvalid), MixSet(inputs.DatabaseInvalid), MixSet(inputs.OpenConflicts));
    }

    [Fact]
    public void Mass_deletion_refusal_is_given_exactly_when_too_many_tasks_of_one_side_would_go()
    {
        InputsGen.Sample(inputs =>
        {
            var options = new SyncOptions();
            var plan = SyncPlanner.Plan(inputs, options);
            var unguarded = SyncPlanner.Plan(inputs, AllowAll);
            static bool TooMany(int deletes, int total) => deletes > 0 && (deletes >= total || (total > 4 && deletes > total * 0.5));
            var expected = TooMany(unguarded.Count(SyncActionKind.ImportDelete), inputs.Database.Count + inputs.DatabaseInvalid.Count)
                || TooMany(unguarded.Count(SyncActionKind.ExportRemove), inputs.Yaml.Count + inputs.YamlInvalid.Count);
            Assert.Equal(expected, plan.IsRefused);
            // The refusal stops the run; the per-task decisions stay what they would be, so `plan` can show them.
            Assert.Equal(unguarded.Actions.Select(a => (a.Id, a.Kind)), plan.Actions.Select(a => (a.Id, a.Kind)));
        }, iter: 1_000, print: Describe);
    }

    private static ImmutableSortedDictionary<string, ArgValue> Args(params (string Key, ArgValue Value)[] args) =>
        args.ToImmutableSortedDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal);
}
