using System.Collections.Immutable;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CsCheck;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Tasks;

/// <summary>
/// The normal form and its content hash (SPEC §1): defaults applied, key order and formatting ignored, every field
/// counted, and the hash stable across runs and machines.
/// </summary>
public class TaskDefinitionTests
{
    private static TaskDefinition Single(string yaml)
    {
        var document = ScheduleLoader.Parse(yaml, "schedule_config.yml");
        Assert.True(document.IsValid, string.Join('\n', document.FormatProblems()));
        return Assert.Single(document.ValidTasks);
    }

    /// <summary>The sample's nightly-backup task, built by hand; its canonical JSON and hash are pinned below.</summary>
    private static TaskDefinition NightlyBackup() => new()
    {
        Id = "nightly-backup",
        Name = "Nightly backup",
        Description = "pg_dump of the primary, uploaded to S3.",
        Schedule = "0 3 * * *",
        Timezone = "Europe/Berlin",
        Command = "/usr/local/bin/backup.sh",
        Args = ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, new Dictionary<string, ArgValue>
        {
            ["target"] = ArgValue.Of("s3"),
            ["keep"] = ArgValue.Of(7L),
            ["ratio"] = ArgValue.Of(0.5),
            ["verify"] = ArgValue.Of(true),
        }),
        Enabled = true,
        TimeoutSeconds = 3600,
        MaxRetries = 2,
        Tags = ["ops", "backup"],
    };

    // ---------------------------------------------------------------------------------------------------------------
    // Stability: computed once, pinned; a change here changes every stored hash and must be deliberate.
    // ---------------------------------------------------------------------------------------------------------------

    private const string PinnedCanonicalJson =
        """{"name":"Nightly backup","description":"pg_dump of the primary, uploaded to S3.","schedule":"0 3 * * *","timezone":"Europe/Berlin","command":"/usr/local/bin/backup.sh","args":{"keep":7,"ratio":0.5,"target":"s3","verify":true},"enabled":true,"timeout_seconds":3600,"max_retries":2,"tags":["ops","backup"]}""";

    // Also checked outside .NET: python3 -c "import hashlib; print(hashlib.sha256(b'<the JSON above>').hexdigest())"
    private const string PinnedHash = "af40a4404bce880fef4463d8587c5397daf5487420390cb27672acb79ee494b7";

    [Fact]
    public void Canonical_json_of_a_fixed_task_is_pinned()
    {
        Assert.Equal(PinnedCanonicalJson, Encoding.UTF8.GetString(NightlyBackup().CanonicalJson()));
    }

    [Fact]
    public void Content_hash_of_a_fixed_task_is_pinned()
    {
        Assert.Equal(PinnedHash, NightlyBackup().ContentHash);
    }

    [Fact]
    public void Content_hash_is_the_lowercase_hex_sha256_of_the_canonical_json()
    {
        var task = NightlyBackup();

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(task.CanonicalJson())), task.ContentHash);
        Assert.Matches("^[0-9a-f]{64}$", task.ContentHash);
    }

    [Fact]
    public void Fixed_task_read_from_yaml_has_the_pinned_hash()
    {
        var task = Single("""
            defaults:
              timezone: Europe/Berlin
            tasks:
              nightly-backup:
                name: Nightly backup
                description: pg_dump of the primary, uploaded to S3.
                schedule: "0 3 * * *"
                command: /usr/local/bin/backup.sh
                args: { target: s3, keep: 7, ratio: 0.5, verify: true }
                timeout_seconds: 3600
                max_retries: 2
                tags: [ops, backup]
            """);

        Assert.Equal(PinnedHash, task.ContentHash);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // What does not change the hash: explicit defaults, key order, flow or block style, quoting style.
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void Explicit_defaults_hash_the_same_as_omitted_ones()
    {
        var omitted = Single("""
            defaults:
              timezone: Europe/Berlin
            tasks:
              backup:
                schedule: "0 3 * * *"
                command: run
            """);
        var explicitDefaults = Single("""
            defaults:
              timezone: Europe/Berlin
            tasks:
              backup:
                name: backup
                schedule: "0 3 * * *"
                timezone: Europe/Berlin
                command: run
                args: {}
                enabled: true
                max_retries: 0
                tags: []
            """);

        Assert.Equal(omitted.ContentHash, explicitDefaults.ContentHash);
        Assert.Equal(omitted, explicitDefaults);
    }

    [Fact]
    public void Explicit_utc_hashes_the_same_as_no_timezone_anywhere()
    {
        var implicitUtc = Single("tasks:\n  t: { schedule: \"@daily\", command: run }\n");
        var explicitUtc = Single("tasks:\n  t: { schedule: \"@daily\", command: run, timezone: UTC }\n");

        Assert.Equal(implicitUtc.ContentHash, explicitUtc.ContentHash);
    }

    [Fact]
    public void Key_order_does_not_change_the_hash()
    {
        var one = Single("""
            tasks:
              t:
                name: Report
                schedule: "0 8 * * MON"
                command: report
                args: { a: 1, b: two }
                tags: [web, cache]
            """);
        var other = Single("""
            tasks:
              t:
                tags: [web, cache]
                args: { b: two, a: 1 }
                command: report
                schedule: "0 8 * * MON"
                name: Report
            """);

        Assert.Equal(one.ContentHash, other.ContentHash);
    }

    [Fact]
    public void Flow_and_block_style_hash_the_same()
    {
        var block = Single("""
            tasks:
              t:
                schedule: "@hourly"
                command: warm-cache
                args:
                  size: 10
                  mode: full
                tags:
                  - cache
                  - web
            """);
        var flow = Single("""{ tasks: { t: { schedule: "@hourly", command: warm-cache, args: { size: 10, mode: full }, tags: [cache, web] } } }""");

        Assert.Equal(block.ContentHash, flow.ContentHash);
    }

    [Fact]
    public void Quoting_style_does_not_change_the_hash()
    {
        var plain = Single("""
            tasks:
              t:
                name: Nightly backup
                description: one line
                schedule: "0 3 * * *"
                command: /usr/local/bin/backup.sh
                args: { target: s3 }
                tags: [ops]
            """);
        var quoted = Single("""
            tasks:
              "t":
                'name': "Nightly backup"
                description: >-
                  one line
                schedule: '0 3 * * *'
                command: "/usr/local/bin/backup.sh"
                args: { "target": 's3' }
                tags: ["ops"]
            """);

        Assert.Equal(plain.ContentHash, quoted.ContentHash);
    }

    [Fact]
    public void Whitespace_between_cron_fields_does_not_change_the_hash()
    {
        var single = Single("tasks:\n  t: { schedule: \"0 3 * * *\", command: run }\n");
        var spaced = Single("tasks:\n  t: { schedule: \"  0   3 *  * * \", command: run }\n");

        Assert.Equal(single.ContentHash, spaced.ContentHash);
    }

    [Fact]
    public void Id_is_not_part_of_the_hash_but_is_part_of_equality()
    {
        var task = NightlyBackup();
        var renamed = task with { Id = "other" };

        Assert.Equal(task.ContentHash, renamed.ContentHash);
        Assert.NotEqual(task, renamed);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // What changes the hash: any single field. The original's hash is computed (and cached) first, so a `with` copy
    // that carried the cached hash along would fail here.
    // ---------------------------------------------------------------------------------------------------------------

    public static TheoryData<string> FieldChanges =>
    [
        "name", "description", "description removed", "schedule", "timezone", "command",
        "args value", "args value kind", "args key added", "args key removed", "enabled",
        "timeout_seconds", "timeout_seconds removed", "max_retries", "tag added", "tag removed", "tag order",
    ];

    private static TaskDefinition Change(TaskDefinition task, string change) => change switch
    {
        "name" => task with { Name = "Nightly backup!" },
        "description" => task with { Description = "pg_dump of the replica, uploaded to S3." },
        "description removed" => task with { Description = null },
        "schedule" => task with { Schedule = "0 4 * * *" },
        "timezone" => task with { Timezone = "Europe/Paris" },
        "command" => task with { Command = "/usr/local/bin/backup.sh --full" },
        "args value" => task with { Args = task.Args.SetItem("keep", ArgValue.Of(8L)) },
        "args value kind" => task with { Args = task.Args.SetItem("keep", ArgValue.Of("7")) },
        "args key added" => task with { Args = task.Args.Add("region", ArgValue.Of("eu")) },
        "args key removed" => task with { Args = task.Args.Remove("verify") },
        "enabled" => task with { Enabled = false },
        "timeout_seconds" => task with { TimeoutSeconds = 3601 },
        "timeout_seconds removed" => task with { TimeoutSeconds = null },
        "max_retries" => task with { MaxRetries = 3 },
        "tag added" => task with { Tags = task.Tags.Add("nightly") },
        "tag removed" => task with { Tags = task.Tags.Remove("backup") },
        "tag order" => task with { Tags = ["backup", "ops"] },
        _ => throw new ArgumentOutOfRangeException(nameof(change), change, null),
    };

    [Theory]
    [MemberData(nameof(FieldChanges))]
    public void Changing_any_single_field_changes_the_hash(string change)
    {
        var original = NightlyBackup();
        var before = original.ContentHash;

        var changed = Change(original, change);

        Assert.NotEqual(before, changed.ContentHash);
        Assert.NotEqual(original, changed);
        Assert.Equal(before, NightlyBackup().ContentHash);
    }

    [Theory]
    [InlineData("name: Nightly backup", "name: Nightly Backup")]
    [InlineData("schedule: \"0 3 * * *\"", "schedule: \"0 3 * * 0\"")]
    [InlineData("args: { keep: 7 }", "args: { keep: \"7\" }")]
    [InlineData("args: { keep: 7 }", "args: { keep: 7.5 }")]
    [InlineData("args: { on: true }", "args: { on: \"true\" }")]
    [InlineData("enabled: true", "enabled: false")]
    [InlineData("max_retries: 0", "max_retries: 1")]
    [InlineData("timezone: UTC", "timezone: Etc/UTC")] // the same zone, but ids are not canonicalised
    [InlineData("description: \"\"", "name: t")] // an empty description is not the same as none
    public void Changing_a_value_in_the_file_changes_the_hash(string field, string changedField)
    {
        var before = Single(Yaml.ScheduleLoaderTests.TaskWith("    " + field));
        var after = Single(Yaml.ScheduleLoaderTests.TaskWith("    " + changedField));

        Assert.NotEqual(before.ContentHash, after.ContentHash);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Property: any valid task, written in two different layouts, reads back to the same normal form.
    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>One arg value, with its text in each of the two renderings and the value it means.</summary>
    private sealed record ArgSpec(string Key, string TextA, string TextB, ArgValue Value);

    private sealed record TaskSpec(
        string Id, string? Name, string? Description, string Schedule, string? Timezone, string? DefaultTimezone,
        string Command, ArgSpec[] Args, bool Enabled, int? TimeoutSeconds, int MaxRetries, string[] Tags, int ShuffleSeed);

    private const string IdFirst = "abcdefghijklmnopqrstuvwxyz0123456789";
    private const string IdRest = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    // Characters that force quoting or need escaping in one style or the other.
    private const string TextChars = "abcxyzABC 019:#'\"\\-,{}[]&*!|>%@`?/é€";

    private static readonly Gen<string> GenId =
        Gen.Select(Gen.Char[IdFirst], Gen.String[Gen.Char[IdRest], 0, 15], (first, rest) => first + rest);

    private static readonly Gen<string> GenText = Gen.String[Gen.Char[TextChars], 1, 30];

    private static readonly Gen<ArgSpec> GenArg = Gen.Select(
        Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz_"], 1, 10],
        Gen.Int[0, 3],
        GenText,
        Gen.Long[-10_000_000, 10_000_000],
        Gen.Bool,
        (key, kind, text, number, flag) => kind switch
        {
            0 => new ArgSpec(key, DoubleQuoted(text), SingleQuoted(text), ArgValue.Of(text)),
            1 => new ArgSpec(key, Invariant(number), number >= 0 ? "+" + Invariant(number) : Invariant(number), ArgValue.Of(number)),
            2 => FloatArg(key, number),
            _ => new ArgSpec(key, flag ? "true" : "false", flag ? "true" : "false", ArgValue.Of(flag)),
        });

    private static ArgSpec FloatArg(string key, long hundredths)
    {
        var text = (hundredths / 100m).ToString("0.00", CultureInfo.InvariantCulture);
        return new ArgSpec(key, text, text + "0", ArgValue.Of(double.Parse(text, CultureInfo.InvariantCulture)));
    }

    private static readonly Gen<TaskSpec> GenTask =
        from id in GenId
        from name in GenText.Null()
        from description in Gen.String[Gen.Char[TextChars], 0, 40].Null()
        from schedule in Gen.OneOfConst("0 3 * * *", "*/5 * * * *", "@daily", "@hourly", "15 2 * * MON-FRI", "*/30 * * * * *", "0 0 1 1 *")
        from timezone in Gen.OneOfConst<string?>(null, "UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
        from defaultTimezone in Gen.OneOfConst<string?>(null, "Europe/Berlin", "Australia/Sydney")
        from command in Gen.Select(Gen.Char["abcdefghijklmnopqrstuvwxyz/"], Gen.String[Gen.Char[TextChars], 0, 30], (c, rest) => c + rest)
        from args in GenArg.Array[0, 5]
        from enabled in Gen.Bool
        from timeout in Gen.Int[1, int.MaxValue].Nullable()
        from retries in Gen.Int[0, 100]
        from tags in GenId.Array[0, 4]
        from seed in Gen.Int
        select new TaskSpec(
            id, name, description, schedule, timezone, defaultTimezone, command,
            [.. args.DistinctBy(a => a.Key)], enabled, timeout, retries, [.. tags.Distinct()], seed);

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string DoubleQuoted(string text) =>
        "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string SingleQuoted(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>Block style, canonical key order, double quotes, defaults left out, the default time zone in defaults.</summary>
    private static string RenderBlock(TaskSpec t)
    {
        var yaml = new StringBuilder("version: 1\n");
        if (t.DefaultTimezone is not null) yaml.Append("defaults:\n  timezone: ").Append(t.DefaultTimezone).Append('\n');
        yaml.Append("tasks:\n  ").Append(t.Id == "null" ? "\"null\"" : t.Id).Append(":\n");
        if (t.Name is not null) yaml.Append("    name: ").Append(DoubleQuoted(t.Name)).Append('\n');
        if (t.Description is not null) yaml.Append("    description: ").Append(DoubleQuoted(t.Description)).Append('\n');
        yaml.Append("    schedule: ").Append(DoubleQuoted(t.Schedule)).Append('\n');
        if (t.Timezone is not null) yaml.Append("    timezone: ").Append(t.Timezone).Append('\n');
        yaml.Append("    command: ").Append(DoubleQuoted(t.Command)).Append('\n');
        if (t.Args.Length > 0)
        {
            yaml.Append("    args:\n");
            foreach (var arg in t.Args) yaml.Append("      ").Append(DoubleQuoted(arg.Key)).Append(": ").Append(arg.TextA).Append('\n');
        }
        if (!t.Enabled) yaml.Append("    enabled: false\n");
        if (t.TimeoutSeconds is { } timeout) yaml.Append("    timeout_seconds: ").Append(Invariant(timeout)).Append('\n');
        if (t.MaxRetries != 0) yaml.Append("    max_retries: ").Append(Invariant(t.MaxRetries)).Append('\n');
        if (t.Tags.Length > 0)
        {
            yaml.Append("    tags:\n");
            foreach (var tag in t.Tags) yaml.Append("      - ").Append(DoubleQuoted(tag)).Append('\n');
        }
        return yaml.ToString();
    }

    /// <summary>
    /// One line of flow style, shuffled key order, single quotes, every default written out explicitly, no defaults
    /// section, args in reverse order, extra spaces between the cron fields, numbers written differently.
    /// </summary>
    private static string RenderFlow(TaskSpec t)
    {
        var fields = new List<string>
        {
            "name: " + SingleQuoted(t.Name ?? t.Id),
            "schedule: " + SingleQuoted(t.Schedule.Replace(" ", "  ", StringComparison.Ordinal)),
            "timezone: " + SingleQuoted(t.Timezone ?? t.DefaultTimezone ?? "UTC"),
            "command: " + SingleQuoted(t.Command),
            "args: { " + string.Join(", ", t.Args.Reverse().Select(a => SingleQuoted(a.Key) + ": " + a.TextB)) + " }",
            "enabled: " + (t.Enabled ? "true" : "false"),
            "max_retries: " + Invariant(t.MaxRetries),
            "tags: [" + string.Join(", ", t.Tags.Select(SingleQuoted)) + "]",
        };
        if (t.Description is not null) fields.Add("description: " + SingleQuoted(t.Description));
        if (t.TimeoutSeconds is { } timeout) fields.Add("timeout_seconds: " + Invariant(timeout));
        var shuffled = fields.ToArray();
        new Random(t.ShuffleSeed).Shuffle(shuffled);
        return "{ tasks: { " + DoubleQuoted(t.Id) + ": { " + string.Join(", ", shuffled) + " } }, version: 1 }";
    }

    private static TaskDefinition Expected(TaskSpec t) => new()
    {
        Id = t.Id,
        Name = t.Name ?? t.Id,
        Description = t.Description,
        Schedule = t.Schedule,
        Timezone = t.Timezone ?? t.DefaultTimezone ?? "UTC",
        Command = t.Command,
        Args = t.Args.ToImmutableSortedDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal),
        Enabled = t.Enabled,
        TimeoutSeconds = t.TimeoutSeconds,
        MaxRetries = t.MaxRetries,
        Tags = [.. t.Tags],
    };

    [Fact]
    public void Random_valid_tasks_in_two_layouts_read_back_to_the_same_hash()
    {
        GenTask.Sample(spec =>
        {
            var block = Single(RenderBlock(spec));
            var flow = Single(RenderFlow(spec));
            var expected = Expected(spec);

            Assert.Equal(expected.ContentHash, block.ContentHash);
            Assert.Equal(expected.ContentHash, flow.ContentHash);
            Assert.Equal(spec.Id, block.Id);
            Assert.Equal(spec.Id, flow.Id);
        }, iter: 500, print: spec => RenderBlock(spec) + "\n---- and ----\n" + RenderFlow(spec));
    }
}
