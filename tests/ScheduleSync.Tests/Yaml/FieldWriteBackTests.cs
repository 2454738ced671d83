using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// SPEC §2 step 5, field by field: on a richly formatted file (a trailing comment on every line, block and flow
/// <c>args</c> and <c>tags</c>, plain, single- and double-quoted scalars, a folded description), changing one field
/// changes exactly that field's line (or adds or removes exactly one line), in LF and in CRLF files alike.
/// </summary>
public class FieldWriteBackTests
{
    private const string Path = "schedule_config.yml";

    internal const string Rich = """
        # a richly formatted file
        version: 1
        defaults:
          timezone: Europe/Berlin        # default zone

        tasks:
          # the rich one
          rich:                          # key comment
            name: Rich task              # plain name
            description: >               # folded
              Folded text that
              continues here.
            schedule: "0 3 * * *"        # double-quoted
            timezone: 'UTC'              # single-quoted
            command: /usr/bin/run --all  # plain command
            args:                        # block args
              target: s3                 # plain
              keep: 7                    # int
              mail: "kpi@example.com"    # double
            enabled: false               # bool
            timeout_seconds: 3600        # int
            max_retries: 2               # retries
            tags:                        # block tags
              - ops                      # first
              - backup                   # second

          flowy:                         # flow collections
            schedule: '@hourly'          # single
            command: warm-cache          # plain
            args: { mode: fast, n: 3 }   # flow args
            tags: [web, cache]           # flow tags
        # end

        """;

    /// <summary>A change to one task and the exact edit it must make to the file: old lines → new lines.</summary>
    private sealed record Case(string Id, Action<TaskDraft> Change, string Old, string New);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["name"] = new("rich", d => d.Name = "Other name",
            "    name: Rich task              # plain name\n", "    name: Other name             # plain name\n"),
        ["name needs quotes"] = new("rich", d => d.Name = "yes",
            "    name: Rich task              # plain name\n", "    name: \"yes\"                  # plain name\n"),
        ["name removed"] = new("rich", d => d.Name = null, "    name: Rich task              # plain name\n", ""),
        ["name added"] = new("flowy", d => d.Name = "Flowy",
            "  flowy:                         # flow collections\n", "  flowy:                         # flow collections\n    name: Flowy\n"),
        ["description folded"] = new("rich", d => d.Description = "Shorter folded text.\n",
            "      Folded text that\n      continues here.\n", "      Shorter folded text.\n"),
        ["description folded two lines"] = new("rich", d => d.Description = "First line\nsecond line\n",
            "      Folded text that\n      continues here.\n", "      First line\n\n      second line\n"),
        ["description removed"] = new("rich", d => d.Description = null,
            "    description: >               # folded\n      Folded text that\n      continues here.\n", ""),
        ["schedule"] = new("rich", d => d.Schedule = "*/5 * * * *",
            "    schedule: \"0 3 * * *\"        # double-quoted\n", "    schedule: \"*/5 * * * *\"      # double-quoted\n"),
        ["schedule single-quoted"] = new("flowy", d => d.Schedule = "@daily",
            "    schedule: '@hourly'          # single\n", "    schedule: '@daily'           # single\n"),
        ["timezone single-quoted"] = new("rich", d => d.Timezone = "Asia/Tokyo",
            "    timezone: 'UTC'              # single-quoted\n", "    timezone: 'Asia/Tokyo'       # single-quoted\n"),
        ["timezone back to the default"] = new("rich", d => d.Timezone = null,
            "    timezone: 'UTC'              # single-quoted\n", ""),
        ["timezone added"] = new("flowy", d => d.Timezone = "UTC",
            "    schedule: '@hourly'          # single\n", "    schedule: '@hourly'          # single\n    timezone: UTC\n"),
        ["command"] = new("rich", d => d.Command = "/usr/bin/run --some",
            "    command: /usr/bin/run --all  # plain command\n", "    command: /usr/bin/run --some # plain command\n"),
        ["command longer than the comment column"] = new("rich", d => d.Command = "/usr/bin/run --all --verbose",
            "    command: /usr/bin/run --all  # plain command\n", "    command: /usr/bin/run --all --verbose # plain command\n"),
        ["block args value"] = new("rich", d => d.Args!["keep"] = ArgValue.Of(8),
            "      keep: 7                    # int\n", "      keep: 8                    # int\n"),
        ["block args double-quoted value"] = new("rich", d => d.Args!["mail"] = ArgValue.Of("ops@example.com"),
            "      mail: \"kpi@example.com\"    # double\n", "      mail: \"ops@example.com\"    # double\n"),
        ["block args key added"] = new("rich", d => d.Args!["zone"] = ArgValue.Of("eu"),
            "      mail: \"kpi@example.com\"    # double\n", "      mail: \"kpi@example.com\"    # double\n      zone: eu\n"),
        ["block args key removed"] = new("rich", d => d.Args!.Remove("target"), "      target: s3                 # plain\n", ""),
        ["flow args value"] = new("flowy", d => d.Args!["n"] = ArgValue.Of(4),
            "    args: { mode: fast, n: 3 }   # flow args\n", "    args: { mode: fast, n: 4 }   # flow args\n"),
        ["flow args key added"] = new("flowy", d => d.Args!["extra"] = ArgValue.Of(true),
            "    args: { mode: fast, n: 3 }   # flow args\n", "    args: { mode: fast, n: 3, extra: true } # flow args\n"),
        ["flow args key removed"] = new("flowy", d => d.Args!.Remove("mode"),
            "    args: { mode: fast, n: 3 }   # flow args\n", "    args: { n: 3 }               # flow args\n"),
        ["args removed"] = new("flowy", d => d.Args = null, "    args: { mode: fast, n: 3 }   # flow args\n", ""),
        ["enabled"] = new("rich", d => d.Enabled = null, "    enabled: false               # bool\n", ""),
        ["enabled added"] = new("flowy", d => d.Enabled = false,
            "    args: { mode: fast, n: 3 }   # flow args\n", "    args: { mode: fast, n: 3 }   # flow args\n    enabled: false\n"),
        ["timeout"] = new("rich", d => d.TimeoutSeconds = 60,
            "    timeout_seconds: 3600        # int\n", "    timeout_seconds: 60          # int\n"),
        ["timeout removed"] = new("rich", d => d.TimeoutSeconds = null, "    timeout_seconds: 3600        # int\n", ""),
        ["max_retries"] = new("rich", d => d.MaxRetries = 5,
            "    max_retries: 2               # retries\n", "    max_retries: 5               # retries\n"),
        ["block tag renamed"] = new("rich", d => d.Tags = ["ops", "archive"],
            "      - backup                   # second\n", "      - archive                  # second\n"),
        ["block tag added"] = new("rich", d => d.Tags = ["ops", "backup", "nightly"],
            "      - backup                   # second\n", "      - backup                   # second\n      - nightly\n"),
        ["block tag added first"] = new("rich", d => d.Tags = ["first", "ops", "backup"],
            "      - ops                      # first\n", "      - first\n      - ops                      # first\n"),
        ["block tag removed"] = new("rich", d => d.Tags = ["backup"], "      - ops                      # first\n", ""),
        ["flow tag added"] = new("flowy", d => d.Tags = ["web", "cache", "extra"],
            "    tags: [web, cache]           # flow tags\n", "    tags: [web, cache, extra]    # flow tags\n"),
        ["flow tag removed"] = new("flowy", d => d.Tags = ["cache"],
            "    tags: [web, cache]           # flow tags\n", "    tags: [cache]                # flow tags\n"),
        ["tags removed"] = new("flowy", d => d.Tags = null, "    tags: [web, cache]           # flow tags\n", ""),
    };

    public static TheoryData<string, bool> CaseNames()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in Cases.Keys)
        {
            data.Add(name, false);
            data.Add(name, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Changing_one_field_edits_only_that_fields_line(string name, bool crlf)
    {
        var (id, change, oldLines, newLines) = Cases[name];
        var text = Crlf(Rich, crlf);
        var document = Parse(text);
        var task = Changed(document, id, change);

        var written = ScheduleWriter.Write(document, [task], []);

        Assert.Empty(written.Warnings);
        Assert.Empty(written.Failed);
        Assert.Equal(1, Rich.Split(oldLines).Length - 1); // the case names lines that occur once
        Assert.Equal(Crlf(Rich.Replace(oldLines, newLines, StringComparison.Ordinal), crlf), written.Text);
        Assert.Equal(task.ContentHash, Parse(written.Text).ValidTasks.Single(t => t.Id == id).ContentHash);
        if (crlf) Assert.DoesNotMatch("[^\r]\n", written.Text);
    }

    [Fact]
    public void Changing_several_fields_of_a_task_edits_each_of_their_lines_and_nothing_else()
    {
        var document = Parse(Rich);
        var task = Changed(document, "rich", d =>
        {
            d.Schedule = "@weekly";
            d.Args!["keep"] = ArgValue.Of(9);
            d.Tags = ["ops"];
            d.MaxRetries = null;
        });

        var text = ScheduleWriter.Apply(document, [task], []);

        Assert.Equal(Rich
            .Replace("    schedule: \"0 3 * * *\"        # double-quoted\n", "    schedule: \"@weekly\"          # double-quoted\n", StringComparison.Ordinal)
            .Replace("      keep: 7                    # int\n", "      keep: 9                    # int\n", StringComparison.Ordinal)
            .Replace("    max_retries: 2               # retries\n", "", StringComparison.Ordinal)
            .Replace("      - backup                   # second\n", "", StringComparison.Ordinal), text);
    }

    [Fact]
    public void A_new_multi_line_value_of_a_literal_block_stays_literal()
    {
        const string text = "tasks:\n  a:\n    description: |   # notes\n      one\n      two\n    schedule: \"@daily\"\n    command: run\n";
        var document = Parse(text);

        var result = ScheduleWriter.Apply(document, [Changed(document, "a", d => d.Description = "one\nthree\nfour")], []);

        Assert.Equal("tasks:\n  a:\n    description: |-   # notes\n      one\n      three\n      four\n    schedule: \"@daily\"\n    command: run\n", result);
    }

    [Fact]
    public void A_value_a_single_quoted_scalar_cannot_hold_is_double_quoted()
    {
        const string text = "tasks:\n  a:\n    name: 'plain'  # n\n    schedule: \"@daily\"\n    command: run\n";
        var document = Parse(text);

        var result = ScheduleWriter.Apply(document, [Changed(document, "a", d => d.Name = "two\nlines")], []);

        Assert.Equal("tasks:\n  a:\n    name: \"two\\nlines\" # n\n    schedule: \"@daily\"\n    command: run\n", result);
    }

    [Fact]
    public void A_removed_field_takes_its_own_comment_lines_and_nothing_else()
    {
        const string text = "tasks:\n  a:\n    schedule: \"@daily\"\n    command: run\n\n    # why it may take long\n    timeout_seconds: 60\n    # the tags\n    tags: [x]\n";
        var document = Parse(text);

        var result = ScheduleWriter.Apply(document, [Changed(document, "a", d => d.TimeoutSeconds = null)], []);

        Assert.Equal("tasks:\n  a:\n    schedule: \"@daily\"\n    command: run\n\n    # the tags\n    tags: [x]\n", result);
    }

    [Fact]
    public void The_last_field_at_the_end_of_a_file_without_a_final_line_break_is_removed_and_added_cleanly()
    {
        const string text = "tasks:\n  a:\n    schedule: \"@daily\"\n    command: run\n    max_retries: 3";
        var document = Parse(text);

        var removed = ScheduleWriter.Apply(document, [Changed(document, "a", d => d.MaxRetries = null)], []);
        var added = ScheduleWriter.Apply(document, [Changed(document, "a", d => d.Tags = ["x"])], []);

        Assert.Equal("tasks:\n  a:\n    schedule: \"@daily\"\n    command: run", removed);
        Assert.Equal(text + "\n    tags: [x]", added);
    }

    [Fact]
    public void A_crlf_file_stays_crlf_when_tasks_are_added_removed_and_re_rendered()
    {
        var text = Crlf(Rich, true) + "  one-liner: { schedule: \"@daily\", command: run }\r\n";
        var document = Parse(text);
        var added = TaskGenerators.Build(new TaskDraft { Id = "added", Schedule = "@daily", Command = "run-added" }, "Europe/Berlin");
        var oneLiner = Changed(document, "one-liner", d => d.Command = "run-more");

        var written = ScheduleWriter.Write(document, [added, oneLiner], ["flowy"]);

        Assert.DoesNotMatch("[^\r]\n", written.Text);
        Assert.Equal(["added", "one-liner", "rich"], Parse(written.Text).ValidTasks.Select(t => t.Id).Order(StringComparer.Ordinal));
        Assert.Contains("  one-liner:\r\n    schedule: \"@daily\"\r\n    command: run-more\r\n", written.Text, StringComparison.Ordinal);
    }

    // ---- layouts that cannot be edited in place (issue 10 item 6) ----

    [Fact]
    public void A_json_style_document_is_rewritten_canonically_with_a_warning()
    {
        const string text = """{"version": 1, "defaults": {"timezone": "Europe/Berlin"}, "tasks": {"a": {"schedule": "@daily", "command": "run-a"}, "b": {"schedule": "@hourly", "command": "run-b", "tags": ["x"]}}}""" + "\n";
        var document = Parse(text);
        var changed = Changed(document, "a", d => d.Command = "run-a2");

        var written = ScheduleWriter.Write(document, [changed], ["b"]);

        Assert.Empty(written.Failed);
        Assert.Contains(written.Warnings, w => w.Contains("canonical", StringComparison.Ordinal));
        Assert.Equal(ScheduleWriter.Header + "version: 1\ndefaults:\n  timezone: Europe/Berlin\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a2\n", written.Text);
        Assert.Equal(changed.ContentHash, Assert.Single(Parse(written.Text).ValidTasks).ContentHash);
    }

    [Fact]
    public void A_document_with_explicit_keys_gets_the_affected_task_re_rendered_with_a_warning()
    {
        const string text = "? version\n: 1\n? tasks\n:\n  ? a\n  : schedule: \"@daily\"\n    command: run-a\n  b:   # b\n    schedule: \"@daily\"\n    command: run-b\n";
        var document = Parse(text);
        var changed = Changed(document, "a", d => d.Command = "run-a2");
        var added = TaskGenerators.Build(new TaskDraft { Id = "c", Schedule = "@daily", Command = "run-c" });

        var written = ScheduleWriter.Write(document, [changed, added], []);

        Assert.Empty(written.Failed);
        Assert.Contains(written.Warnings, w => w.Contains("'a'", StringComparison.Ordinal));
        Assert.Equal("? version\n: 1\n? tasks\n:\n  a:\n    schedule: \"@daily\"\n    command: run-a2\n  b:   # b\n    schedule: \"@daily\"\n    command: run-b\n  c:\n    schedule: \"@daily\"\n    command: run-c\n", written.Text);
    }

    [Fact]
    public void A_task_written_as_a_flow_mapping_is_re_rendered_in_block_layout_with_a_warning()
    {
        const string text = "tasks:\n  a: { schedule: \"@daily\", command: run-a }   # one-liner\n  b:\n    schedule: \"@daily\"\n    command: run-b\n";
        var document = Parse(text);

        var written = ScheduleWriter.Write(document, [Changed(document, "a", d => d.Command = "run-a2")], []);

        Assert.Single(written.Warnings);
        Assert.Equal("tasks:\n  a:\n    schedule: \"@daily\"\n    command: run-a2   # one-liner\n  b:\n    schedule: \"@daily\"\n    command: run-b\n", written.Text);
    }

    [Fact]
    public void The_shipped_sample_takes_a_schedule_change_as_one_changed_line()
    {
        var sample = File.ReadAllText(System.IO.Path.Combine(RepositoryRoot(), "config", "schedule_config.yml"));
        var document = Parse(sample);
        var changed = Changed(document, "report-weekly", d => d.Schedule = "0 9 * * MON");

        var text = ScheduleWriter.Apply(document, [changed], []);

        Assert.Equal(sample.Replace("    schedule: \"0 8 * * MON\"\n", "    schedule: \"0 9 * * MON\"\n", StringComparison.Ordinal), text);
        Assert.Equal(1, LinesDiffering(sample, text));
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(System.IO.Path.Combine(directory.FullName, "ScheduleSync.slnx"))) directory = directory.Parent;
        return directory?.FullName ?? throw new DirectoryNotFoundException("the repository root (ScheduleSync.slnx) is not above the test assembly");
    }

    /// <summary>How many lines differ between two texts with the same number of lines.</summary>
    internal static int LinesDiffering(string a, string b)
    {
        var (x, y) = (a.Split('\n'), b.Split('\n'));
        Assert.Equal(x.Length, y.Length);
        return x.Zip(y).Count(p => p.First != p.Second);
    }

    private static string Crlf(string text, bool crlf) => crlf ? text.Replace("\n", "\r\n", StringComparison.Ordinal) : text;

    private static ScheduleDocument Parse(string text)
    {
        var document = ScheduleLoader.Parse(text, Path);
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()) + "\n--- text:\n" + text);
        return document;
    }

    private static TaskDefinition Changed(ScheduleDocument document, string id, Action<TaskDraft> change)
    {
        var draft = TaskGenerators.ToDraft(document.ValidTasks.Single(t => t.Id == id));
        // Fields at their default are left out, as a file would (the draft then takes the file's defaults again).
        if (draft.Name == id) draft.Name = null;
        if (draft.Timezone == document.EffectiveDefaultTimezone) draft.Timezone = null;
        change(draft);
        return TaskGenerators.Build(draft, document.EffectiveDefaultTimezone);
    }
}
