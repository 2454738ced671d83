using System.Collections.Immutable;
using CsCheck;
using ScheduleSync.Tasks;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>
/// CsCheck generators for valid <see cref="TaskDefinition"/>s in their normal form. Every task is built through
/// <see cref="TaskDraft.Build"/>, so a generated task is exactly what the loader or the API could produce.
/// Text values mix small pools (so two generated versions often agree on a field, which the three-way merge needs)
/// with strings that YAML likes to misread: YAML 1.1 booleans, octal-looking numbers, indicators, quotes, escapes,
/// line breaks, non-ASCII text and emoji.
/// </summary>
internal static class TaskGenerators
{
    /// <summary>Whole strings that a YAML writer must quote (or may not) to read back the same text.</summary>
    public static readonly ImmutableArray<string> TrickyStrings =
    [
        "no", "No", "NO", "yes", "Yes", "on", "On", "off", "OFF", "y", "n", "Y", "N", "true", "false", "True", "FALSE",
        "null", "Null", "~", "0755", "0o17", "0x1F", "0b101", "12:30", "1:2:3", "1e3", "1.5", "-.5", "+7", "-12", "007",
        ".inf", "-.Inf", ".nan", "*/5 * * * *", "@daily", "@hourly", " lead", "trail ", "  both  ", "a # b", "a #b", "a#b",
        "key: value", "key:", ":key", "- item", "-", "--", "---", "...", "? q", "[x]", "{y}", "a, b", "a,b", "!tag", "!!str",
        "&anchor", "*alias", "|", "|-", ">", ">+", "%TAG", "`tick`", "'single'", "\"double\"", "it's", "say \"hi\"",
        "back\\slash", "C:\\path\\to", "line1\nline2", "trailing newline\n", "\nleading newline", "crlf\r\nline", "tab\there",
        "\t", " ", "é", "café", "日本", "日本語のテキスト", "😀", "emoji 🎉 party", "naïve façade", "\u00a0nbsp", "nel\u0085x",
        "ls\u2028ps\u2029", "bom\ufeff", "ctrl\u0001\u001f\u007f", "c1\u0080\u009f", "=", "<<", "http://example.com:8080/p?q=1#f",
        "a: b: c", "#", "# not a comment", "%", "@", "a\\nb", "\"", "'", "\\", "a *b", "every *", "x &y", "p !q",
    ];

    private static readonly string[] Pieces =
    [
        "a", "b", "z", "Q", "0", "7", "42", " ", "  ", ":", ": ", "#", " #", "'", "\"", "\\", "-", "- ", "?", "!", "&", "*",
        "|", ">", "%", "@", "`", ",", "[", "]", "{", "}", "\t", "\n", "\r\n", "é", "日本", "😀", "\u00a0", "\u0085",
        "\u2028", "\u0001", "~", "null", "yes", ".", "/",
    ];

    private static readonly Gen<string> Words = Gen.OneOfConst("backup", "Nightly backup", "cache warmup", "report", "x", "A", "B", "C");

    /// <summary>Any text (possibly empty), from small pools, tricky whole strings and random concatenations of tricky pieces.</summary>
    public static readonly Gen<string> Text = Gen.Frequency(
        (3, Words),
        (3, Gen.OneOfConst([.. TrickyStrings])),
        (3, Gen.OneOfConst(Pieces).Array[1, 12].Select(p => string.Concat(p))),
        (1, Gen.String[Gen.Char['\u0020', '\u007e'], 0, 30]),
        (1, Gen.String[Gen.Char['\u00a0', '\ud7ff'], 1, 10]));

    private static readonly Gen<char> IdChar = Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789._-"];
    private static readonly Gen<char> IdFirst = Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"];

    /// <summary>A valid id (also a valid tag): mostly short, sometimes one a YAML reader would take for a number, bool or null.</summary>
    public static readonly Gen<string> Id = Gen.Frequency(
        (6, Gen.Select(IdFirst, Gen.String[IdChar, 0, 12], (first, rest) => first + rest)),
        (1, Gen.OneOfConst("no", "yes", "on", "off", "y", "n", "true", "false", "null", "1", "0755", "1e3", "1.5", "0x1f", "nan", "12", "a.b_c-d")),
        (1, Gen.Select(IdFirst, Gen.String[IdChar, 100, 127], (first, rest) => first + rest)));

    public static readonly Gen<string> Name = Gen.Frequency((8, Text), (1, Gen.Const(new string('n', 200)))).Where(n => n.Length is > 0 and <= TaskRules.MaxNameLength);

    public static readonly Gen<string?> Description = Gen.Frequency(
        (3, Gen.Const((string?)null)),
        (6, Text.Select(t => (string?)t)),
        (1, Gen.Const<string?>("long " + string.Concat(Enumerable.Repeat("line of text\n", 150)))));

    /// <summary>Valid cron expressions and macros in their normal form (single spaces).</summary>
    public static readonly Gen<string> Schedule = Gen.Frequency(
        (4, Gen.OneOfConst("0 3 * * *", "*/5 * * * *", "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "0 0 1 1 *",
            "30 */2 * * 1-5", "0 9-17 * * MON-FRI", "*/30 * * * * *", "0 0 12 * * *", "15 10 L * *", "0 0 * * 0#2")),
        (1, Gen.Select(Gen.Int[0, 59], Gen.Int[0, 23], (m, h) => $"{m} {h} * * *")));

    public static readonly Gen<string> Timezone = Gen.OneOfConst("UTC", "UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney");

    public static readonly Gen<string> Command = Gen.Frequency(
        (4, Gen.OneOfConst("/usr/local/bin/backup.sh", "warm-cache", "run-a", "run-b", "echo 'hi' && exit 1", "python3 -c \"print(1)\"")),
        (3, Text),
        (1, Gen.Const("cmd " + new string('c', 3_900))))
        .Where(c => !string.IsNullOrWhiteSpace(c) && c.Length <= TaskRules.MaxCommandLength);

    public static readonly Gen<string> ArgKey = Gen.Frequency((3, Gen.OneOfConst("target", "keep", "mode", "url", "n")), (2, Text))
        .Where(k => k.Length is > 0 and <= 128);

    // -0.0 is left out on purpose: see ScheduleWriterTests.Negative_zero_float_argument_round_trips.
    public static readonly Gen<ArgValue> ArgValueGen = Gen.Frequency(
        (4, Text.Select(ArgValue.Of)),
        (2, Gen.Long.Select(ArgValue.Of)),
        (1, Gen.Int[-1000, 1000].Select(i => ArgValue.Of((long)i))),
        (1, Gen.Double.Where(d => double.IsFinite(d) && !(d == 0 && double.IsNegative(d))).Select(ArgValue.Of)),
        (1, Gen.OneOfConst(0.5, 1.0, 1e20, 1.5e-7, -3.25).Select(ArgValue.Of)),
        (1, Gen.Bool.Select(ArgValue.Of)));

    public static readonly Gen<ImmutableSortedDictionary<string, ArgValue>> Args = Gen.Frequency(
        (2, Gen.Const(ImmutableSortedDictionary.Create<string, ArgValue>(StringComparer.Ordinal))),
        (3, Gen.Select(ArgKey, ArgValueGen).Array[1, 5].Select(pairs =>
        {
            var args = new Dictionary<string, ArgValue>(StringComparer.Ordinal);
            foreach (var (key, value) in pairs) args[key] = value;
            return args.ToImmutableSortedDictionary(StringComparer.Ordinal);
        })));

    public static readonly Gen<ImmutableArray<string>> Tags = Gen.Frequency(
        (2, Gen.Const(ImmutableArray<string>.Empty)),
        (3, Gen.Frequency((3, Gen.OneOfConst("ops", "backup", "nightly", "no", "1")), (1, Id)).Array[1, 5]
            .Select(tags => tags.Distinct(StringComparer.Ordinal).ToImmutableArray())));

    public static readonly Gen<int?> TimeoutSeconds = Gen.Frequency(
        (2, Gen.Const((int?)null)),
        (2, Gen.OneOfConst<int?>(1, 60, 3600)),
        (1, Gen.Int[1, int.MaxValue].Select(i => (int?)i)));

    public static readonly Gen<int> MaxRetries = Gen.Frequency((2, Gen.Const(0)), (2, Gen.Int[0, 3]), (1, Gen.Int[0, TaskRules.MaxRetriesLimit]));

    /// <summary>A valid task with the given id.</summary>
    public static Gen<TaskDefinition> TaskWithId(string id) =>
        Gen.Select(Gen.Frequency((1, Gen.Const((string?)null)), (3, Name.Select(n => (string?)n))), Description, Schedule, Timezone, Command, Args,
                Gen.Bool, Gen.Select(TimeoutSeconds, MaxRetries, Tags),
            (name, description, schedule, timezone, command, args, enabled, rest) => Build(new TaskDraft
            {
                Id = id,
                Name = name,
                Description = description,
                Schedule = schedule,
                Timezone = timezone,
                Command = command,
                Args = new Dictionary<string, ArgValue>(args),
                Enabled = enabled,
                TimeoutSeconds = rest.Item1,
                MaxRetries = rest.Item2,
                Tags = [.. rest.Item3],
            }));

    /// <summary>A valid task with a random id.</summary>
    public static readonly Gen<TaskDefinition> Task = Id.SelectMany(TaskWithId);

    /// <summary>Between <paramref name="min"/> and <paramref name="max"/> valid tasks with distinct ids.</summary>
    public static Gen<TaskDefinition[]> Tasks(int min, int max) =>
        Id.HashSet[min, max].SelectMany(ids => All([.. ids.Order(StringComparer.Ordinal).Select(TaskWithId)]));

    /// <summary>One value from each generator, in order.</summary>
    public static Gen<T[]> All<T>(IReadOnlyList<Gen<T>> gens) =>
        gens.Aggregate(Gen.Const(ImmutableList<T>.Empty), (acc, gen) => acc.SelectMany(list => gen.Select(list.Add)))
            .Select(list => list.ToArray());

    /// <summary>The field names <see cref="Changed"/> can change (every field of the normal form).</summary>
    public static ImmutableArray<string> FieldNames { get; } = [.. TaskFields.Names];

    /// <summary>The same task (same id) with one to <paramref name="maxFields"/> fields given new values; always different content.</summary>
    public static Gen<TaskDefinition> Changed(TaskDefinition task, int maxFields = 3) =>
        Gen.Select(Gen.Shuffle(FieldNames.ToArray()), Gen.Int[1, maxFields])
            .SelectMany((fields, count) => All([.. fields.Take(count).Select(field => NewValue(task, field))]))
            .Select(changes => changes.Aggregate(task, (t, change) => change(t)))
            .Where(t => t.ContentHash != task.ContentHash);

    /// <summary>A change to one field (by its YAML name), as a function so several can be applied in turn.</summary>
    public static Gen<Func<TaskDefinition, TaskDefinition>> NewValue(TaskDefinition task, string field) => field switch
    {
        "name" => Name.Select(v => With(t => t.Name = v)),
        "description" => Description.Select(v => With(t => t.Description = v)),
        "schedule" => Schedule.Select(v => With(t => t.Schedule = v)),
        "timezone" => Timezone.Select(v => With(t => t.Timezone = v)),
        "command" => Command.Select(v => With(t => t.Command = v)),
        "args" => Args.Select(v => With(t => t.Args = new Dictionary<string, ArgValue>(v))),
        "enabled" => Gen.Const(With(t => t.Enabled = !task.Enabled)),
        "timeout_seconds" => TimeoutSeconds.Select(v => With(t => t.TimeoutSeconds = v)),
        "max_retries" => MaxRetries.Select(v => With(t => t.MaxRetries = v)),
        "tags" => Tags.Select(v => With(t => t.Tags = [.. v])),
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "not a task field"),
    };

    /// <summary>A function that rebuilds a task with one draft field set, through the same rules as everything else.</summary>
    private static Func<TaskDefinition, TaskDefinition> With(Action<TaskDraft> set) => task =>
    {
        var draft = ToDraft(task);
        set(draft);
        return Build(draft);
    };

    public static TaskDraft ToDraft(TaskDefinition task) => new()
    {
        Id = task.Id,
        Name = task.Name,
        Description = task.Description,
        Schedule = task.Schedule,
        Timezone = task.Timezone,
        Command = task.Command,
        Args = new Dictionary<string, ArgValue>(task.Args),
        Enabled = task.Enabled,
        TimeoutSeconds = task.TimeoutSeconds,
        MaxRetries = task.MaxRetries,
        Tags = [.. task.Tags],
    };

    /// <summary>Builds a draft into its normal form; a generator that produced an invalid draft is a bug in the test.</summary>
    public static TaskDefinition Build(TaskDraft draft, string defaultTimezone = "UTC")
    {
        var problems = new List<string>();
        return draft.Build(defaultTimezone, (field, message) => problems.Add($"{field}: {message}"))
            ?? throw new InvalidOperationException($"the generator made an invalid task '{draft.Id}': {string.Join("; ", problems)}");
    }
}
