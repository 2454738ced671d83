using System.Diagnostics;
using System.Text;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// SPEC §1: hostile input is bounded. Time and memory bounds here are generous sanity checks that catch an
/// expansion or a runaway, not benchmarks.
/// </summary>
public class HostileInputTests
{
    private const string FilePath = "schedule_config.yml";

    /// <summary>
    /// The classic alias bomb: nine levels of nine aliases each, 9^9 (387 million) "lol"s if anything expanded it.
    /// Each level is a list (the classic form) or a mapping with keys 1 to 9; <paramref name="indent"/> puts the levels
    /// under <c>tasks:</c> (each level a task id) or at the top level.
    /// </summary>
    private static string BillionLaughs(string prefix, string indent, bool mappings)
    {
        string Level(string item) => mappings
            ? "{" + string.Join(",", Enumerable.Range(1, 9).Select(i => $"{i}: {item}")) + "}"
            : "[" + string.Join(",", Enumerable.Repeat(item, 9)) + "]";
        var yaml = new StringBuilder(prefix);
        yaml.Append(indent).Append("a: &a ").Append(Level("lol")).Append('\n');
        for (var level = 'b'; level <= 'i'; level++)
            yaml.Append(indent).Append(level).Append(": &").Append(level).Append(' ').Append(Level("*" + (char)(level - 1))).Append('\n');
        return yaml.ToString();
    }

    private static (ScheduleDocument Document, TimeSpan Elapsed, long Allocated) Measure(Func<ScheduleDocument> load)
    {
        load(); // warm up, so the measurement is of the input rather than of JIT compilation
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var document = load();
        clock.Stop();
        return (document, clock.Elapsed, GC.GetAllocatedBytesForCurrentThread() - allocatedBefore);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Alias bombs
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void Billion_laughs_under_tasks_fails_fast_and_small_and_says_anchors_are_not_allowed()
    {
        var yaml = BillionLaughs("version: 1\ntasks:\n", "  ", mappings: true);
        Assert.InRange(Encoding.UTF8.GetByteCount(yaml), 400, 700);

        var (document, elapsed, allocated) = Measure(() => ScheduleLoader.Parse(yaml, FilePath));

        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"took {elapsed}");
        Assert.True(allocated < 50_000_000, $"allocated {allocated:N0} bytes");
        Assert.False(document.IsValid);
        var anchors = document.Problems.Where(p => p.Message.StartsWith("anchors (&", StringComparison.Ordinal)).ToList();
        Assert.Equal(9, anchors.Count);
        Assert.All(anchors.Select((problem, i) => (problem, level: (char)('a' + i), line: 3 + i)), p =>
        {
            Assert.Equal((p.line, 6, p.level.ToString()), (p.problem.Line, p.problem.Column, p.problem.TaskId));
            Assert.Equal($"anchors (&{p.level}) are not allowed; write each value out", p.problem.Message);
        });
        // The rest: each refused task then lacks its schedule and command.
        Assert.Equal(18, document.Problems.Count(p => p.Message.Contains(" is required", StringComparison.Ordinal)));
        Assert.Equal(27, document.Problems.Count);
        Assert.Empty(document.ValidTasks);
    }

    [Fact]
    public void Billion_laughs_of_lists_under_tasks_fails_fast_and_small()
    {
        var yaml = BillionLaughs("version: 1\ntasks:\n", "  ", mappings: false);
        Assert.InRange(Encoding.UTF8.GetByteCount(yaml), 300, 700);

        var (document, elapsed, allocated) = Measure(() => ScheduleLoader.Parse(yaml, FilePath));

        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"took {elapsed}");
        Assert.True(allocated < 50_000_000, $"allocated {allocated:N0} bytes");
        Assert.False(document.IsValid);
        // Each anchored list is refused for its anchor (checked before its type), and nothing is expanded.
        Assert.Equal(9, document.Problems.Count(p => p.Message.StartsWith("anchors (&", StringComparison.Ordinal)));
        Assert.Empty(document.ValidTasks);
    }

    // An anchor is refused as such even on a value of the wrong type (the classic list-form bomb above).
    [Fact]
    public void Anchor_on_a_value_of_the_wrong_type_is_reported_as_an_anchor()
    {
        var document = ScheduleLoader.Parse("tasks:\n  t: &a [1, 2]\n", FilePath);

        Assert.Contains(document.Problems, p => p.Message.StartsWith("anchors (&a) are not allowed", StringComparison.Ordinal));
    }

    [Fact]
    public void Billion_laughs_under_unknown_top_level_keys_is_skipped_without_expanding_it()
    {
        var yaml = BillionLaughs("", "", mappings: false);

        var (document, elapsed, allocated) = Measure(() => ScheduleLoader.Parse(yaml, FilePath));

        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"took {elapsed}");
        Assert.True(allocated < 50_000_000, $"allocated {allocated:N0} bytes");
        // Unknown keys are skipped wholesale, so the anchors inside them are never looked at: the keys are the problem.
        Assert.Equal(9, document.Problems.Count);
        Assert.All(document.Problems, p => Assert.Contains("unknown top-level key", p.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Alias_to_a_bomb_in_a_task_field_is_refused_as_an_alias()
    {
        var yaml = BillionLaughs("version: 1\ntasks:\n", "  ", mappings: true) + "  t:\n    schedule: \"@daily\"\n    command: run\n    args: *i\n";

        var document = ScheduleLoader.Parse(yaml, FilePath);

        var last = document.Problems[^1];
        Assert.Equal((15, 11, "t"), (last.Line, last.Column, last.TaskId));
        Assert.Equal("aliases (*i) are not allowed; if this is a value that starts with '*' (such as a cron expression), put it in quotes", last.Message);
        Assert.Empty(document.ValidTasks);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Deep nesting: refused at MaxDepth without recursion (a stack overflow would kill the test process)
    // ---------------------------------------------------------------------------------------------------------------

    public static TheoryData<string, string, int, int> DeepNesting => new()
    {
        // flow lists, closed and unclosed
        { "balanced [[[...]]]", new string('[', 10_000) + new string(']', 10_000), 1, 33 },
        { "unclosed [[[...", new string('[', 10_000), 1, 33 },
        // flow mappings, at the top level and inside a task's args
        { "{a: {a: ...", string.Concat(Enumerable.Repeat("{a: ", 10_000)) + "1" + new string('}', 10_000), 1, 133 },
        { "args: {a: {a: ...", "tasks:\n  t:\n    args: " + string.Concat(Enumerable.Repeat("{a: ", 10_000)) + "1" + new string('}', 10_000), 3, 143 },
        // block sequences on one line
        { "- - - ...", "tasks:\n" + string.Concat(Enumerable.Repeat("- ", 10_000)) + "x\n", 2, 65 },
    };

    [Theory]
    [MemberData(nameof(DeepNesting))]
    public void Nesting_ten_thousand_deep_fails_with_a_clear_message(string shape, string yaml, int line, int column)
    {
        var (document, elapsed, _) = Measure(() => ScheduleLoader.Parse(yaml, FilePath));

        Assert.False(document.IsValid, shape);
        var deep = Assert.Single(document.Problems, p => p.Message.Contains("nesting is deeper than 32 levels", StringComparison.Ordinal));
        Assert.Equal((line, column), (deep.Line, deep.Column));
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"took {elapsed}");
    }

    [Fact]
    public void Nesting_limit_is_configurable()
    {
        // The depth is counted inside the value being refused (here the value of args.a), not from the document root.
        var yaml = "tasks:\n  t:\n    args: {a: {b: {c: {d: 1}}}}\n";

        var document = ScheduleLoader.Parse(yaml, FilePath, new LoaderLimits { MaxDepth = 2 });

        Assert.Collection(
            document.Problems,
            p => Assert.Equal((3, 15, "task 't': args.a must be a single value, not a mapping"), (p.Line, p.Column, p.Message)),
            p => Assert.Equal((3, 23, "nesting is deeper than 2 levels"), (p.Line, p.Column, p.Message)));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // File size
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void File_larger_than_the_limit_is_refused_with_its_size()
    {
        var path = Path.Combine(Path.GetTempPath(), $"schedsync-{Guid.NewGuid():N}.yml");
        try
        {
            File.WriteAllText(path, "tasks:\n" + string.Concat(Enumerable.Repeat("# a comment line of 32 bytes ##\n", 2041 / 32)) + new string('#', 2041 % 32));
            Assert.Equal(2048, new FileInfo(path).Length);

            var document = ScheduleLoader.LoadFile(path, new LoaderLimits { MaxFileBytes = 1024 });

            var problem = Assert.Single(document.Problems);
            Assert.Equal((1, 1), (problem.Line, problem.Column));
            Assert.StartsWith("the file is ", problem.Message, StringComparison.Ordinal);
            // The sizes are formatted with the current culture's group separator; the digits are what matter.
            Assert.Equal("20481024", string.Concat(problem.Message.Where(char.IsAsciiDigit)));
            Assert.Empty(document.Entries);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bytes_larger_than_the_limit_are_refused_and_a_file_at_the_limit_is_read()
    {
        var atLimit = Encoding.UTF8.GetBytes("tasks:\n" + new string('#', 1024 - 7));
        var overLimit = Encoding.UTF8.GetBytes("tasks:\n" + new string('#', 1025 - 7));
        var limits = new LoaderLimits { MaxFileBytes = 1024 };

        Assert.True(ScheduleLoader.Load(atLimit, FilePath, limits).IsValid);
        var problem = Assert.Single(ScheduleLoader.Load(overLimit, FilePath, limits).Problems);
        Assert.Equal("10251024", string.Concat(problem.Message.Where(char.IsAsciiDigit)));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Invalid UTF-8: the line and column (in characters) of the first bad byte
    // ---------------------------------------------------------------------------------------------------------------

    public static TheoryData<string, byte[], int, int, string> InvalidUtf8 => new()
    {
        { "0xFF after ASCII", Bytes("tasks:\n  t:\n    name: ab", [0xFF], "cd\n"), 3, 13, "bad byte 0xFF at byte offset 24" },
        { "0xFF after two-byte characters", Bytes("tasks:\n  t:\n    name: éé", [0xFF], "\n"), 3, 13, "bad byte 0xFF at byte offset 26" },
        // columns count UTF-16 code units, as YamlDotNet's do: a character outside the BMP counts two
        { "0xFF after an emoji", Bytes("tasks:\n  t:\n    name: \U0001F600", [0xFF], "\n"), 3, 13, "bad byte 0xFF at byte offset 26" },
        { "a sequence cut short by the line end", Bytes("tasks:\n  t:\n    name: ab", [0xC3], "\n"), 3, 13, "bad byte 0xC3 at byte offset 24" },
        { "an overlong encoding of '/'", Bytes("tasks:\n  t:\n    command: ", [0xC0, 0xAF], "bin\n"), 3, 14, "bad byte 0xC0" },
        { "an encoded UTF-16 surrogate", Bytes("tasks:\n  t:\n    command: x", [0xED, 0xA0, 0x80], "\n"), 3, 15, "bad byte 0xED" },
        { "0xFF on the first line", Bytes("ta", [0xFF], "sks:\n"), 1, 3, "bad byte 0xFF at byte offset 2" },
    };

    private static byte[] Bytes(string before, byte[] bad, string after) =>
        [.. Encoding.UTF8.GetBytes(before), .. bad, .. Encoding.UTF8.GetBytes(after)];

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public void Invalid_utf8_is_reported_at_its_line_and_column(string what, byte[] bytes, int line, int column, string phrase)
    {
        var document = ScheduleLoader.Load(bytes, FilePath);

        Assert.False(document.IsValid, what);
        var problem = Assert.Single(document.Problems);
        Assert.Equal((line, column), (problem.Line, problem.Column));
        Assert.Contains("the file is not valid UTF-8", problem.Message, StringComparison.Ordinal);
        Assert.Contains(phrase, problem.Message, StringComparison.Ordinal);
        Assert.Empty(document.Entries);
    }

    [Fact]
    public void Invalid_utf8_in_a_file_is_reported_by_load_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"schedsync-{Guid.NewGuid():N}.yml");
        try
        {
            File.WriteAllBytes(path, Bytes("version: 1\ntasks:\n  t:\n    name: x", [0xFF], "\n"));

            var problem = Assert.Single(ScheduleLoader.LoadFile(path).Problems);

            Assert.Equal((4, 12), (problem.Line, problem.Column));
            Assert.Equal($"{path}:4:12: the file is not valid UTF-8 (bad byte 0xFF at byte offset 34)", problem.Format(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Problem count: bounded, with a note
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void Ten_thousand_invalid_tasks_stop_after_max_problems_with_a_note()
    {
        var yaml = new StringBuilder("tasks:\n");
        for (var i = 0; i < 10_000; i++) yaml.Append("  t").Append(i).Append(": { schedule: \"@daily\" }\n");

        var document = ScheduleLoader.Parse(yaml.ToString(), FilePath);

        Assert.Equal(LoaderLimits.Default.MaxProblems + 1, document.Problems.Count);
        // The note comes last, right after the problem it follows (the same position).
        Assert.Equal($"stopped after {LoaderLimits.Default.MaxProblems} problems", document.Problems[^1].Message);
        Assert.Equal("task 't499': command is required", document.Problems[^2].Message);
        Assert.Equal(LoaderLimits.Default.MaxProblems, document.Problems.Count(p => p.Message.EndsWith("command is required", StringComparison.Ordinal)));
        // Every task is still known, and every one is invalid, including those whose problem was not listed.
        Assert.Equal(10_000, document.Entries.Count);
        Assert.Empty(document.ValidTasks);
    }

    [Fact]
    public void Ten_thousand_unknown_fields_stop_the_walk_after_max_problems_with_a_note()
    {
        var yaml = new StringBuilder("tasks:\n  t:\n    schedule: \"@daily\"\n    command: run\n");
        for (var i = 0; i < 10_000; i++) yaml.Append("    field").Append(i).Append(": x\n");
        var limits = new LoaderLimits { MaxProblems = 10 };

        var document = ScheduleLoader.Parse(yaml.ToString(), FilePath, limits);

        Assert.Equal(11, document.Problems.Count);
        Assert.Equal(10, document.Problems.Count(p => p.Message.Contains("unknown field 'field", StringComparison.Ordinal)));
        var note = Assert.Single(document.Problems, p => p.Message == "stopped after 10 problems");
        Assert.Equal(14, note.Line);
        Assert.False(document.IsValid);
        Assert.Empty(document.ValidTasks);
    }
}
