using CsCheck;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// SPEC §2 point 5: minimal write-back keeps every byte outside the changed tasks; a file written from scratch has one
/// canonical, deterministic layout; every value reads back as exactly the text that was written.
/// </summary>
public class ScheduleWriterTests
{
    private const string Path = "schedule_config.yml";

    private static ScheduleDocument Parse(string text)
    {
        var document = ScheduleLoader.Parse(text, Path);
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()) + "\n--- text:\n" + text);
        return document;
    }

    private static string Apply(string text, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes) =>
        ScheduleWriter.Apply(Parse(text), upserts, deletes);

    /// <summary>The tasks a text holds, id to content hash; the text must be valid.</summary>
    private static Dictionary<string, string> Model(string text) =>
        Parse(text).ValidTasks.ToDictionary(t => t.Id, t => t.ContentHash, StringComparer.Ordinal);

    private static Dictionary<string, string> Model(IEnumerable<TaskDefinition> tasks) =>
        tasks.ToDictionary(t => t.Id, t => t.ContentHash, StringComparer.Ordinal);

    private static TaskDefinition Task(string id, string command, string schedule = "@daily", string? timezone = null, string defaultTimezone = "UTC",
        string? name = null, string? description = null, Dictionary<string, ArgValue>? args = null, bool? enabled = null, List<string>? tags = null) =>
        TaskGenerators.Build(new TaskDraft
        {
            Id = id, Name = name, Description = description, Schedule = schedule, Timezone = timezone, Command = command, Args = args,
            Enabled = enabled, Tags = tags,
        }, defaultTimezone);

    private const string Sample = """
        # schedule_config.yml — written by hand
        version: 1
        defaults:
          timezone: Europe/Berlin      # applies to tasks that name none

        tasks:
          # Backups run at night.
          nightly-backup:              # the key is the task id
            name: Nightly backup
            schedule: "0 3 * * *"
            command: /usr/local/bin/backup.sh
            args: { target: s3, keep: 7 }
            timeout_seconds: 3600
            max_retries: 2
            tags: [ops, backup]

          # Warm the cache often.
          # (every five minutes)
          cache-warmup:
            schedule: '*/5 * * * *'
            timezone: UTC
            command: warm-cache
            enabled: false

          report:
            schedule: "@daily"
            command: make-report   # trailing comment
        # trailing file comment

        """;

    // ---- replace, delete, append in a block section ----

    [Fact]
    public void Replacing_a_task_changes_only_the_changed_fields_line()
    {
        var changed = Task("cache-warmup", "warm-cache --all", schedule: "*/5 * * * *", timezone: "UTC", enabled: false);

        var text = Apply(Sample, [changed], []);

        Assert.Equal(Sample.Replace("""
              cache-warmup:
                schedule: '*/5 * * * *'
                timezone: UTC
                command: warm-cache
                enabled: false
            """, """
              cache-warmup:
                schedule: '*/5 * * * *'
                timezone: UTC
                command: warm-cache --all
                enabled: false
            """, StringComparison.Ordinal), text);
        var expected = Model(Sample);
        expected["cache-warmup"] = changed.ContentHash;
        Assert.Equal(expected, Model(text));
    }

    [Fact]
    public void Replacing_a_task_writes_its_time_zone_only_when_it_differs_from_the_file_default()
    {
        var berlin = Task("report", "make-report", timezone: "Europe/Berlin");

        var text = Apply(Sample, [berlin], []);

        Assert.Contains("  report:\n    schedule: \"@daily\"\n    command: make-report   # trailing comment\n", text, StringComparison.Ordinal);
        Assert.Equal(berlin.ContentHash, Model(text)["report"]);
    }

    [Fact]
    public void Replacing_a_task_keeps_its_own_comment_lines_and_deleting_it_removes_them()
    {
        var replaced = Apply(Sample, [Task("cache-warmup", "other", timezone: "UTC")], []);
        Assert.Contains("  # Warm the cache often.\n  # (every five minutes)\n  cache-warmup:\n", replaced, StringComparison.Ordinal);

        var deleted = Apply(Sample, [], ["cache-warmup"]);
        Assert.Equal(Sample.Replace("""
              # Warm the cache often.
              # (every five minutes)
              cache-warmup:
                schedule: '*/5 * * * *'
                timezone: UTC
                command: warm-cache
                enabled: false

            """, "", StringComparison.Ordinal), deleted);
        var expected = Model(Sample);
        expected.Remove("cache-warmup");
        Assert.Equal(expected, Model(deleted));
    }

    [Fact]
    public void Deleting_the_first_task_keeps_the_section_key_and_the_comments_above_the_section()
    {
        var text = Apply(Sample, [], ["nightly-backup"]);
        Assert.StartsWith("# schedule_config.yml — written by hand\nversion: 1\n", text, StringComparison.Ordinal);
        Assert.Contains("\ntasks:\n\n  # Warm the cache often.\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Backups run at night", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Deleting_a_task_keeps_a_comment_separated_from_it_by_a_blank_line()
    {
        const string text = """
            tasks:
              a:
                schedule: "@daily"
                command: run-a
              # about the section below, not about b

              # b's own comment
              b:
                schedule: "@daily"
                command: run-b

            """;

        var result = Apply(text, [], ["b"]);

        Assert.Equal("""
            tasks:
              a:
                schedule: "@daily"
                command: run-a
              # about the section below, not about b


            """, result);
    }

    [Fact]
    public void New_task_is_appended_after_a_last_task_that_ends_with_a_trailing_comment()
    {
        var added = Task("new-task", "run-new", timezone: "UTC");

        var text = Apply(Sample, [added], []);

        Assert.Equal(Sample.Replace(
            "    command: make-report   # trailing comment\n",
            // Tasks in this file are separated by blank lines, so the new one is too.
            "    command: make-report   # trailing comment\n\n  new-task:\n    schedule: \"@daily\"\n    timezone: UTC\n    command: run-new\n",
            StringComparison.Ordinal), text);
        var expected = Model(Sample);
        expected["new-task"] = added.ContentHash;
        Assert.Equal(expected, Model(text));
    }

    [Fact]
    public void Deleting_the_last_task_and_adding_a_new_one_in_one_write_puts_the_new_one_where_the_last_stood()
    {
        var added = Task("new-task", "run-new", defaultTimezone: "Europe/Berlin");

        var text = Apply(Sample, [added], ["report"]);

        Assert.Equal(Sample.Replace(
            "  report:\n    schedule: \"@daily\"\n    command: make-report   # trailing comment\n",
            "  new-task:\n    schedule: \"@daily\"\n    command: run-new\n",
            StringComparison.Ordinal), text);
        var expected = Model(Sample);
        expected.Remove("report");
        expected["new-task"] = added.ContentHash;
        Assert.Equal(expected, Model(text));
    }

    [Fact]
    public void Replace_delete_and_add_in_one_write_touch_only_their_own_tasks()
    {
        var changed = Task("nightly-backup", "/usr/local/bin/backup.sh --full", schedule: "0 3 * * *", defaultTimezone: "Europe/Berlin");
        var added = Task("added", "run-added", defaultTimezone: "Europe/Berlin");

        var text = Apply(Sample, [changed, added], ["cache-warmup"]);

        Assert.Equal("""
            # schedule_config.yml — written by hand
            version: 1
            defaults:
              timezone: Europe/Berlin      # applies to tasks that name none

            tasks:
              # Backups run at night.
              nightly-backup:              # the key is the task id
                schedule: "0 3 * * *"
                command: /usr/local/bin/backup.sh --full


              report:
                schedule: "@daily"
                command: make-report   # trailing comment

              added:
                schedule: "@daily"
                command: run-added
            # trailing file comment

            """, text);
    }

    [Fact]
    public void Deleting_an_absent_task_and_writing_nothing_leave_the_text_as_it_is()
    {
        Assert.Equal(Sample, Apply(Sample, [], ["no-such-task"]));
        Assert.Equal(Sample, Apply(Sample, [], []));
    }

    [Theory]
    [InlineData("")]
    [InlineData("# just a comment\n")]
    [InlineData("version: 1\n")]
    [InlineData("version: 1\ntasks:\n")]
    [InlineData("version: 1\ntasks: {}\n")]
    public void Deleting_an_absent_task_from_a_file_without_tasks_leaves_the_text_as_it_is(string text) =>
        Assert.Equal(text, Apply(text, [], ["no-such-task"]));

    [Fact]
    public void Writing_an_unchanged_task_back_keeps_the_file_valid_and_equal()
    {
        var document = Parse(Sample);
        var text = ScheduleWriter.Apply(document, [.. document.ValidTasks], []);
        Assert.Equal(Model(Sample), Model(text));
    }

    [Fact]
    public void Task_keys_indented_by_four_keep_their_field_indentation_and_new_tasks_are_appended_at_that_indent()
    {
        const string text = "tasks:\n    a:\n        schedule: \"@daily\"\n        command: run-a\n";

        var result = Apply(text, [Task("a", "run-a2"), Task("b", "run-b")], []);

        Assert.Equal("tasks:\n    a:\n        schedule: \"@daily\"\n        command: run-a2\n    b:\n      schedule: \"@daily\"\n      command: run-b\n", result);
    }

    // ---- block scalars ----

    private const string BlockScalars = """
        tasks:
          a:
            schedule: "@daily"
            command: run-a
            description: >
              folded
              text

          # comment for b
          b:
            schedule: "@daily"
            command: run-b
            description: |
              # not a comment: a line of the literal text
              literal
          c:
            schedule: "@daily"
            command: run-c
            description: |-
              stripped

        # end of tasks

        """;

    [Fact]
    public void Replacing_a_task_that_ends_in_a_literal_block_scalar_keeps_the_next_task_intact()
    {
        var text = Apply(BlockScalars, [Task("b", "run-b2")], []);

        Assert.Equal(BlockScalars.Replace("""
              b:
                schedule: "@daily"
                command: run-b
                description: |
                  # not a comment: a line of the literal text
                  literal

            """, """
              b:
                schedule: "@daily"
                command: run-b2

            """, StringComparison.Ordinal), text);
    }

    [Fact]
    public void Replacing_a_task_that_ends_in_a_folded_block_scalar_keeps_the_block_scalar_and_the_blank_line_after_it()
    {
        var text = Apply(BlockScalars, [Task("a", "run-a2", description: "folded text\n")], []);

        Assert.Equal(BlockScalars.Replace("    command: run-a\n", "    command: run-a2\n", StringComparison.Ordinal), text);
    }

    [Fact]
    public void Replacing_the_last_task_that_ends_in_a_block_scalar_keeps_the_blank_line_and_comment_after_it()
    {
        var text = Apply(BlockScalars, [Task("c", "run-c2")], []);

        Assert.Equal(BlockScalars.Replace("""
                command: run-c
                description: |-
                  stripped

            """, """
                command: run-c2

            """, StringComparison.Ordinal), text);
    }

    [Fact]
    public void Deleting_a_task_after_a_literal_block_keeps_the_literal_lines_that_start_with_a_hash()
    {
        var text = Apply(BlockScalars, [], ["c"]);

        Assert.Contains("    description: |\n      # not a comment: a line of the literal text\n      literal\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("run-c", text, StringComparison.Ordinal);
        Assert.EndsWith("# end of tasks\n", text, StringComparison.Ordinal);
        var expected = Model(BlockScalars);
        expected.Remove("c");
        Assert.Equal(expected, Model(text));
    }

    [Fact]
    public void Deleting_a_task_that_ends_in_a_block_scalar_removes_the_task_and_its_own_comment_only()
    {
        var withoutB = Apply(BlockScalars, [], ["b"]);
        Assert.DoesNotContain("comment for b", withoutB, StringComparison.Ordinal);
        Assert.DoesNotContain("literal", withoutB, StringComparison.Ordinal);
        Assert.Contains("      text\n", withoutB, StringComparison.Ordinal);
        Assert.Contains("  c:\n", withoutB, StringComparison.Ordinal);

        var withoutA = Apply(BlockScalars, [], ["a"]);
        Assert.StartsWith("tasks:\n", withoutA, StringComparison.Ordinal);
        Assert.Contains("  # comment for b\n  b:\n", withoutA, StringComparison.Ordinal);
        Assert.DoesNotContain("folded", withoutA, StringComparison.Ordinal);

        var expected = Model(BlockScalars);
        expected.Remove("a");
        Assert.Equal(expected, Model(withoutA));
    }

    [Fact]
    public void Deleting_a_task_that_ends_in_a_block_scalar_keeps_the_blank_line_after_it()
    {
        var text = Apply(BlockScalars, [], ["a"]);

        Assert.Equal(BlockScalars.Replace("""
              a:
                schedule: "@daily"
                command: run-a
                description: >
                  folded
                  text

            """, "", StringComparison.Ordinal), text);
    }

    [Fact]
    public void New_task_is_appended_after_a_last_task_that_ends_in_a_block_scalar()
    {
        var text = Apply(BlockScalars, [Task("d", "run-d")], []);

        var expected = Model(BlockScalars);
        expected["d"] = Task("d", "run-d").ContentHash;
        Assert.Equal(expected, Model(text));
        Assert.Contains("      stripped\n", text, StringComparison.Ordinal);
        Assert.EndsWith("# end of tasks\n", text, StringComparison.Ordinal);
    }

    // ---- flow style, empty and missing sections ----

    [Fact]
    public void Replacing_a_task_whose_last_field_is_a_flow_args_mapping_keeps_the_file_valid()
    {
        // The canonical layout ends a task with args whenever it has no enabled, timeout, retries or tags.
        var original = Task("a", "run-a", args: new() { ["target"] = ArgValue.Of("s3"), ["keep"] = ArgValue.Of(7) });
        var written = ScheduleWriter.WriteNew([original, Task("b", "run-b")]);
        Assert.Contains("    args: { keep: 7, target: s3 }\n  b:", written, StringComparison.Ordinal);
        var changed = Task("a", "run-a2", args: new() { ["target"] = ArgValue.Of("gcs") });

        var text = Apply(written, [changed], []);

        Assert.Equal(written.Replace("    command: run-a\n    args: { keep: 7, target: s3 }\n", "    command: run-a2\n    args: { target: gcs }\n", StringComparison.Ordinal), text);
    }

    [Fact]
    public void Replacing_a_task_written_as_a_flow_mapping_inside_a_block_section_keeps_the_file_valid()
    {
        const string text = "tasks:\n  a: { schedule: \"@daily\", command: run-a }   # one-liner\n  b:\n    schedule: \"@daily\"\n    command: run-b\n";

        var result = Apply(text, [Task("a", "run-a2")], []);

        Assert.Equal("tasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a2   # one-liner\n  b:\n    schedule: \"@daily\"\n    command: run-b\n", result);
    }

    [Fact]
    public void Tasks_are_added_to_an_empty_flow_tasks_section()
    {
        const string text = "# comment\nversion: 1\ntasks: {}\n# after\n";

        var result = Apply(text, [Task("a", "run-a")], []);

        Assert.Equal("# comment\nversion: 1\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a\n# after\n", result);
    }

    [Fact]
    public void Tasks_are_added_to_the_file_that_write_new_made_for_no_tasks()
    {
        // First sync from an empty database creates this file; the next task created through the API must reach it.
        var empty = ScheduleWriter.WriteNew([]);
        Assert.Empty(Model(empty));

        var text = Apply(empty, [Task("a", "run-a")], []);

        Assert.Equal(ScheduleWriter.WriteNew([Task("a", "run-a")]), text);
    }

    [Fact]
    public void Tasks_are_added_to_a_flow_tasks_section_with_tasks()
    {
        const string text = "version: 1\ntasks: { a: { schedule: \"@daily\", command: run-a } }\n# after\n";

        var result = Apply(text, [Task("b", "run-b")], []);

        Assert.Equal(Model([Task("a", "run-a"), Task("b", "run-b")]), Model(result));
        Assert.StartsWith("version: 1\n", result, StringComparison.Ordinal);
        Assert.EndsWith("\n# after\n", result, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("version: 1\ntasks:\n")]
    [InlineData("version: 1\ntasks:")]
    [InlineData("version: 1\ntasks: ~\n")]
    [InlineData("version: 1\ntasks: null\n")]
    public void Tasks_are_added_to_a_tasks_key_without_a_value(string text)
    {
        var result = Apply(text, [Task("a", "run-a")], []);
        Assert.Equal("version: 1\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a" + (text.EndsWith('\n') ? "\n" : ""), result);
    }

    [Fact]
    public void Tasks_are_added_to_a_tasks_key_without_a_value_that_is_followed_by_other_keys()
    {
        const string text = "version: 1\ntasks:\n# comment\ndefaults:\n  timezone: Europe/Berlin\n";

        var result = Apply(text, [Task("a", "run-a", defaultTimezone: "Europe/Berlin")], []);

        Assert.Equal("version: 1\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a\n# comment\ndefaults:\n  timezone: Europe/Berlin\n", result);
    }

    [Fact]
    public void Tasks_are_added_to_a_file_without_a_tasks_key()
    {
        const string text = "# only settings so far\nversion: 1\ndefaults:\n  timezone: Asia/Tokyo\n";

        var result = Apply(text, [Task("a", "run-a", timezone: "UTC")], []);

        Assert.Equal(text + "tasks:\n  a:\n    schedule: \"@daily\"\n    timezone: UTC\n    command: run-a\n", result);
    }

    [Fact]
    public void Tasks_are_added_to_a_file_with_only_comments()
    {
        const string text = "# nothing here yet";

        var result = Apply(text, [Task("a", "run-a")], []);

        Assert.Equal("# nothing here yet\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a\n", result);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    public void Tasks_added_to_an_empty_file_get_the_canonical_layout(string text)
    {
        var tasks = new[] { Task("b", "run-b"), Task("a", "run-a") };
        Assert.Equal(ScheduleWriter.WriteNew(tasks), Apply(text, tasks, []));
    }

    [Fact]
    public void Deleting_the_last_task_of_a_block_section_leaves_a_valid_file_that_tasks_can_be_added_to()
    {
        const string text = "version: 1\ntasks:\n  # the only one\n  a:\n    schedule: \"@daily\"\n    command: run-a\n# end\n";

        var empty = Apply(text, [], ["a"]);
        Assert.Equal("version: 1\ntasks:\n# end\n", empty);
        Assert.Empty(Model(empty));

        var refilled = Apply(empty, [Task("b", "run-b")], []);
        Assert.Equal(Model([Task("b", "run-b")]), Model(refilled));
        Assert.EndsWith("# end\n", refilled, StringComparison.Ordinal);
    }

    // ---- values YAML would misread ----

    public static TheoryData<string> TrickyStrings => [.. TaskGenerators.TrickyStrings];

    [Theory]
    [MemberData(nameof(TrickyStrings))]
    public void Tricky_text_round_trips_exactly_through_write_new_and_write_back(string value)
    {
        var task = TaskGenerators.Build(new TaskDraft
        {
            Id = "t",
            Name = value.Length > 0 ? value : null,
            Description = value,
            Schedule = "@daily",
            Command = string.IsNullOrWhiteSpace(value) ? "run" : value,
            Args = value.Length > 0 ? new() { ["v"] = ArgValue.Of(value), [value] = ArgValue.Of(1) } : new() { ["v"] = ArgValue.Of(value) },
        });

        var written = ScheduleWriter.WriteNew([task]);
        var read = Assert.Single(Parse(written).ValidTasks);
        Assert.Equal(task.Name, read.Name);
        Assert.Equal(task.Description, read.Description);
        Assert.Equal(task.Command, read.Command);
        Assert.Equal(task.ArgsJson(), read.ArgsJson());
        Assert.Equal(task.ContentHash, read.ContentHash);

        var appended = Apply(Sample, [task], []);
        Assert.Equal(task.ContentHash, Model(appended)["t"]);
        var replaced = Apply(Sample, [task with { Id = "report" }], []);
        Assert.Equal((task with { Id = "report" }).ContentHash, Model(replaced)["report"]);
    }

    [Theory]
    [InlineData("no")]
    [InlineData("on")]
    [InlineData("yes")]
    [InlineData("off")]
    [InlineData("y")]
    [InlineData("n")]
    [InlineData("true")]
    [InlineData("null")]
    [InlineData("0755")]
    [InlineData("1e3")]
    [InlineData("12")]
    [InlineData("1.5")]
    [InlineData("0x1f")]
    public void Ids_and_tags_that_look_like_other_types_are_quoted_and_round_trip(string id)
    {
        var task = Task(id, "run", tags: [id, "ops"]);

        var written = ScheduleWriter.WriteNew([task]);

        Assert.Contains($"  \"{id}\":\n", written, StringComparison.Ordinal);
        Assert.Contains($"    tags: [\"{id}\", ops]\n", written, StringComparison.Ordinal);
        Assert.Equal(Model([task]), Model(written));
        Assert.Equal(task.ContentHash, Model(Apply(Sample, [task], []))[id]);
    }

    [Theory]
    [InlineData("no", "\"no\"")]
    [InlineData("on", "\"on\"")]
    [InlineData("yes", "\"yes\"")]
    [InlineData("0755", "\"0755\"")]
    [InlineData("12:30", "\"12:30\"")]
    [InlineData("~", "\"~\"")]
    [InlineData("null", "\"null\"")]
    [InlineData("*/5 * * * *", "\"*/5 * * * *\"")]
    [InlineData("@daily", "\"@daily\"")]
    [InlineData(" lead", "\" lead\"")]
    [InlineData("trail ", "\"trail \"")]
    [InlineData("a # b", "\"a # b\"")]
    [InlineData("key: value", "\"key: value\"")]
    [InlineData("line1\nline2", "\"line1\\nline2\"")]
    [InlineData("tab\there", "\"tab\\there\"")]
    [InlineData("say \"hi\"", "say \"hi\"")]
    [InlineData("\"quoted\"", "\"\\\"quoted\\\"\"")]
    [InlineData("back\\slash", "back\\slash")]
    [InlineData("é", "\"é\"")]
    [InlineData("", "\"\"")]
    [InlineData("plain text", "plain text")]
    [InlineData("a#b", "a#b")]
    public void Scalars_are_quoted_exactly_when_yaml_would_read_them_differently(string value, string expected) =>
        Assert.Equal(expected, ScheduleWriter.Scalar(value));

    [Fact]
    public void Long_and_multi_line_texts_round_trip()
    {
        var task = Task("t", "run " + new string('x', 3_990), name: new string('n', 200),
            description: string.Concat(Enumerable.Repeat("line with 'quotes', \"doubles\", \\ and\ttabs — 日本 😀\n", 30)));
        Assert.Equal(Model([task]), Model(ScheduleWriter.WriteNew([task])));
        Assert.Equal(task.ContentHash, Model(Apply(Sample, [task], []))["t"]);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(1.0)]
    [InlineData(1e20)]
    [InlineData(1.5e-7)]
    [InlineData(-3.25)]
    [InlineData(double.MaxValue)]
    [InlineData(double.Epsilon)]
    public void Float_arguments_round_trip(double value)
    {
        var task = Task("t", "run", args: new() { ["x"] = ArgValue.Of(value) });
        Assert.Equal(Model([task]), Model(ScheduleWriter.WriteNew([task])));
    }

    [Fact]
    public void Negative_zero_float_argument_round_trips()
    {
        // ArgValue.Of(-0.0) has the text "-0", which the file reads back as the integer 0: another content hash.
        var task = Task("t", "run", args: new() { ["x"] = ArgValue.Of(-0.0) });
        Assert.Equal(Model([task]), Model(ScheduleWriter.WriteNew([task])));
    }

    [Theory]
    [InlineData("a *b")]
    [InlineData("every *")]
    [InlineData("x *")]
    public void Argument_key_with_a_space_before_an_asterisk_round_trips(string key)
    {
        // YamlDotNet reads the plain flow key `a *b: 1` as the key "a *b: 1" with no value.
        var task = Task("t", "run", args: new() { [key] = ArgValue.Of(1), ["other"] = ArgValue.Of("x") });
        Assert.Equal(Model([task]), Model(ScheduleWriter.WriteNew([task])));
    }

    [Fact]
    public void Integer_and_boolean_arguments_and_text_that_looks_like_them_round_trip()
    {
        var task = Task("t", "run", args: new()
        {
            ["min"] = ArgValue.Of(long.MinValue), ["max"] = ArgValue.Of(long.MaxValue), ["zero"] = ArgValue.Of(0), ["yes"] = ArgValue.Of(true),
            ["no"] = ArgValue.Of(false), ["text-7"] = ArgValue.Of("7"), ["text-true"] = ArgValue.Of("true"), ["text-no"] = ArgValue.Of("no"),
            ["url"] = ArgValue.Of("http://example.com:8080/p?q=1#f"), ["list"] = ArgValue.Of("[1, 2]"), ["comma"] = ArgValue.Of("a, b"),
        });
        var written = ScheduleWriter.WriteNew([task]);
        var read = Assert.Single(Parse(written).ValidTasks);
        Assert.Equal(task.ArgsJson(), read.ArgsJson());
        Assert.Equal(task.Args.Select(a => a.Value.Kind), read.Args.Select(a => a.Value.Kind));
    }

    // ---- the canonical layout ----

    [Fact]
    public void Write_new_has_the_canonical_layout()
    {
        var full = TaskGenerators.Build(new TaskDraft
        {
            Id = "nightly-backup", Name = "Nightly backup", Description = "Backs up", Schedule = "0 3 * * *", Timezone = "Europe/Berlin",
            Command = "/usr/local/bin/backup.sh", Args = new() { ["target"] = ArgValue.Of("s3"), ["keep"] = ArgValue.Of(7) },
            Enabled = false, TimeoutSeconds = 3600, MaxRetries = 2, Tags = ["ops", "backup"],
        });

        var text = ScheduleWriter.WriteNew([full, Task("a-minimal", "run")]);

        Assert.Equal(ScheduleWriter.Header + """
            version: 1
            tasks:
              a-minimal:
                schedule: "@daily"
                command: run
              nightly-backup:
                name: Nightly backup
                description: Backs up
                schedule: "0 3 * * *"
                timezone: Europe/Berlin
                command: /usr/local/bin/backup.sh
                args: { keep: 7, target: s3 }
                enabled: false
                timeout_seconds: 3600
                max_retries: 2
                tags: [ops, backup]

            """, text);
    }

    [Fact]
    public void Write_new_of_no_tasks_is_a_valid_empty_file()
    {
        var text = ScheduleWriter.WriteNew([]);
        Assert.Equal(ScheduleWriter.Header + "version: 1\ntasks: {}\n", text);
        Assert.Empty(Model(text));
    }

    [Fact]
    public void Write_new_is_deterministic_and_reads_back_the_same_tasks()
    {
        Gen.Select(TaskGenerators.Tasks(0, 8), Gen.Int).Sample((tasks, seed) =>
        {
            var random = new Random(seed);
            var shuffled = tasks.OrderBy(_ => random.Next()).ToArray();
            var text = ScheduleWriter.WriteNew(tasks);
            Assert.Equal(text, ScheduleWriter.WriteNew(shuffled));
            Assert.Equal(Model(tasks), Model(text));
            Assert.Equal(tasks.Select(t => t.Id).Order(StringComparer.Ordinal), Parse(text).Entries.Select(e => e.Id));
        }, iter: 300);
    }
}
