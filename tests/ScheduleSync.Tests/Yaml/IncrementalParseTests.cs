using System.Globalization;
using System.Text;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// <see cref="ScheduleLoader.Reload"/> (re-parse only the task blocks a change touches) gives exactly what a full
/// <see cref="ScheduleLoader.Load(ReadOnlySpan{byte}, string, LoaderLimits?, Action{int, int}?)"/> gives: same tasks in
/// the same order, same spans and layouts, same problems with line and column, on random edits — local ones (a field
/// value, a task added or removed) and ones that break locality (an unclosed quote, defaults, indentation, a tab, a
/// comment across two tasks, a truncated file, a duplicate id, a top-level key between tasks).
/// </summary>
public class IncrementalParseTests
{
    private const string FilePath = "schedule_config.yml";

    private static readonly string[] Zones = ["UTC", "Europe/Berlin", "America/New_York"];

    /// <summary>A file of several tasks written in the ways people write them (the indentation is the file's).</summary>
    private static string RandomFile(Random rng, out int indent)
    {
        indent = rng.Next(3) == 0 ? 4 : 2;
        var pad = new string(' ', indent);
        var text = new StringBuilder();
        if (rng.Next(4) == 0) text.Append("# the schedule\n");
        text.Append("version: 1\n");
        if (rng.Next(2) == 0) text.Append("defaults:\n").Append(pad).Append("timezone: ").Append(Zones[rng.Next(Zones.Length)]).Append('\n');
        if (rng.Next(3) == 0) text.Append('\n');
        text.Append("tasks:\n");
        if (rng.Next(3) == 0) text.Append(pad).Append("# first batch\n");
        var count = rng.Next(2, 9);
        for (var i = 0; i < count; i++) text.Append(RandomTask(rng, pad, "t" + i.ToString(CultureInfo.InvariantCulture)));
        if (rng.Next(3) == 0) text.Append("# the end\n");
        if (rng.Next(4) == 0) text.Append('\n');
        return text.ToString();
    }

    private static string RandomTask(Random rng, string pad, string id)
    {
        var field = pad + pad;
        var task = new StringBuilder();
        if (rng.Next(5) == 0)
            return task.Append(pad).Append(id).Append(": { schedule: \"@daily\", command: run ").Append(id).Append(" }\n").ToString();
        task.Append(pad).Append(id).Append(":\n");
        if (rng.Next(2) == 0) task.Append(field).Append("name: Task ").Append(id).Append('\n');
        if (rng.Next(4) == 0) task.Append(field).Append("description: |\n").Append(field).Append(pad).Append("line one\n").Append(field).Append(pad).Append("line two\n");
        task.Append(field).Append("schedule: \"").Append(rng.Next(60)).Append(" * * * *\"\n");
        if (rng.Next(4) == 0) task.Append(field).Append("timezone: ").Append(Zones[rng.Next(Zones.Length)]).Append('\n');
        task.Append(field).Append("command: ").Append(rng.Next(3) == 0 ? "'run it'" : "run " + id).Append('\n');
        switch (rng.Next(4))
        {
            case 0: task.Append(field).Append("tags: [a, b]\n"); break;
            case 1: task.Append(field).Append("tags:\n").Append(field).Append("- x\n").Append(field).Append("- y\n"); break;
        }
        if (rng.Next(4) == 0) task.Append(field).Append("args:\n").Append(field).Append(pad).Append("keep: 7\n").Append(field).Append(pad).Append("target: s3\n");
        if (rng.Next(5) == 0) task.Append(field).Append("enabled: false\n");
        if (rng.Next(5) == 0) task.Append(field).Append("timeout_seconds: 60 # a minute\n");
        if (rng.Next(4) == 0) task.Append(rng.Next(2) == 0 ? "\n" : pad + "# between tasks\n");
        return task.ToString();
    }

    private delegate string Edit(Random rng, string text, ScheduleDocument document);

    /// <summary>The edits, each named for the failure message; the first ones are local, the later ones break locality.</summary>
    private static readonly (string Name, Edit Apply)[] Edits =
    [
        ("change a field value", (rng, text, doc) => ReplaceValue(rng, text, doc, "run-" + rng.Next(1000).ToString(CultureInfo.InvariantCulture), textOnly: true)),
        ("change a value to a quoted one", (rng, text, doc) => ReplaceValue(rng, text, doc, "\"q " + rng.Next(1000).ToString(CultureInfo.InvariantCulture) + "\"", textOnly: true)),
        ("add a task", (rng, text, doc) => Insert(text, BlockStartOrEnd(rng, text, doc), RandomTask(rng, Pad(doc), "new" + rng.Next(100).ToString(CultureInfo.InvariantCulture)))),
        ("remove a task", (rng, text, doc) => RemoveBlock(rng, text, doc)),
        ("add a line to a task", (rng, text, doc) => Insert(text, LineAfterKey(rng, text, doc), Pad(doc) + Pad(doc) + "enabled: true\n")),
        ("rename an id to another task's", (rng, text, doc) => RenameId(rng, text, doc, other: true)),
        ("rename an id", (rng, text, doc) => RenameId(rng, text, doc, other: false)),
        ("make a value invalid", (rng, text, doc) => ReplaceValue(rng, text, doc, rng.Next(2) == 0 ? "yes" : "\"not cron\"")),
        ("unclosed quote", (rng, text, doc) => ReplaceValue(rng, text, doc, "\"unclosed")),
        ("unclosed bracket", (rng, text, doc) => ReplaceValue(rng, text, doc, "[a, b")),
        ("change defaults", (rng, text, _) => ChangeDefaults(rng, text)),
        ("indent a line differently", (rng, text, _) => Reindent(rng, text)),
        ("tab in an indentation", (rng, text, _) => TabIndent(rng, text)),
        ("comment across two tasks", (rng, text, doc) => CommentAcross(rng, text, doc)),
        ("truncate the file", (rng, text, _) => text[..rng.Next(text.Length)]),
        ("top-level key between tasks", (rng, text, doc) => Insert(text, BlockStartOrEnd(rng, text, doc), rng.Next(2) == 0 ? "defaults:\n  timezone: UTC\n" : "version: 1\n")),
        ("anchor and alias", (rng, text, doc) => ReplaceValue(rng, text, doc, rng.Next(2) == 0 ? "&a run" : "*a")),
        ("insert a character anywhere", (rng, text, _) => Insert(text, rng.Next(text.Length + 1), "\n \t#:\"'[{}]-|>&*?x"[rng.Next(17)].ToString())),
        ("delete a character anywhere", (rng, text, _) => text.Length == 0 ? text : text.Remove(rng.Next(text.Length), 1)),
        ("a block scalar line less indented", (rng, text, doc) => Insert(text, LineAfterKey(rng, text, doc), Pad(doc) + Pad(doc) + "description: |\n" + Pad(doc) + " half\n")),
        ("nothing", (_, text, _) => text),
    ];

    private const int LocalEdits = 7;

    private static string Pad(ScheduleDocument document) => new(' ', document.Tasks?.EntryIndent ?? 2);

    private static string Insert(string text, int at, string what) => text.Insert(Math.Clamp(at, 0, text.Length), what);

    private static int LineStart(string text, int index) => index <= 0 ? 0 : text.LastIndexOf('\n', Math.Min(index, text.Length) - 1) + 1;

    private static int NextLineStart(string text, int index) => text.IndexOf('\n', index) is var i and >= 0 ? i + 1 : text.Length;

    private static TaskEntry? AnyEntry(Random rng, ScheduleDocument doc) => doc.Entries.Count == 0 ? null : doc.Entries[rng.Next(doc.Entries.Count)];

    private static int BlockStartOrEnd(Random rng, string text, ScheduleDocument doc) =>
        AnyEntry(rng, doc) is { } entry && rng.Next(4) != 0 ? LineStart(text, entry.KeyIndex) : text.Length;

    private static int LineAfterKey(Random rng, string text, ScheduleDocument doc) =>
        AnyEntry(rng, doc) is { } entry ? NextLineStart(text, entry.KeyIndex) : text.Length;

    private static readonly string[] TextFields = ["name", "command"];

    private static string ReplaceValue(Random rng, string text, ScheduleDocument doc, string value, bool textOnly = false)
    {
        if (AnyEntry(rng, doc) is not { Layout.Fields.Count: > 0 } entry) return text + value;
        var fields = textOnly && entry.Layout.Fields.Where(f => TextFields.Contains(f.Name)).ToList() is { Count: > 0 } texts ? texts : entry.Layout.Fields;
        var field = fields[rng.Next(fields.Count)];
        int start = entry.KeyIndex + field.ValueStart, end = entry.KeyIndex + field.ValueEnd;
        if (field.Style is ValueStyle.Literal or ValueStyle.Folded or ValueStyle.BlockMapping or ValueStyle.BlockSequence) return text;
        return string.Concat(text.AsSpan(0, start), field.Style == ValueStyle.Empty ? " " + value : value, text.AsSpan(end));
    }

    private static string RemoveBlock(Random rng, string text, ScheduleDocument doc)
    {
        if (doc.Entries.Count == 0) return text;
        var i = rng.Next(doc.Entries.Count);
        var start = LineStart(text, doc.Entries[i].KeyIndex);
        var end = i + 1 < doc.Entries.Count ? LineStart(text, doc.Entries[i + 1].KeyIndex) : text.Length;
        return text.Remove(start, end - start);
    }

    private static string RenameId(Random rng, string text, ScheduleDocument doc, bool other)
    {
        if (AnyEntry(rng, doc) is not { } entry) return text;
        var id = other && AnyEntry(rng, doc) is { } donor ? donor.Id : entry.Id + "x";
        return string.Concat(text.AsSpan(0, entry.KeyIndex), id, text.AsSpan(entry.KeyIndex + entry.Id.Length));
    }

    private static string ChangeDefaults(Random rng, string text)
    {
        var at = text.IndexOf("timezone: ", StringComparison.Ordinal);
        if (at < 0 || rng.Next(3) == 0) return "defaults:\n  timezone: " + Zones[rng.Next(Zones.Length)] + "\n" + text;
        var end = NextLineStart(text, at) - 1;
        return string.Concat(text.AsSpan(0, at + "timezone: ".Length), rng.Next(4) == 0 ? "Mars/Base" : Zones[rng.Next(Zones.Length)], text.AsSpan(Math.Max(end, at + "timezone: ".Length)));
    }

    private static int RandomLineStart(Random rng, string text) => LineStart(text, rng.Next(text.Length + 1));

    private static string Reindent(Random rng, string text)
    {
        var at = RandomLineStart(rng, text);
        return rng.Next(2) == 0 || at >= text.Length || text[at] != ' ' ? text.Insert(at, " ") : text.Remove(at, 1);
    }

    private static string TabIndent(Random rng, string text)
    {
        var at = RandomLineStart(rng, text);
        return at < text.Length && text[at] == ' ' ? string.Concat(text.AsSpan(0, at), "\t", text.AsSpan(at + 1)) : text.Insert(at, "\t");
    }

    private static string CommentAcross(Random rng, string text, ScheduleDocument doc)
    {
        if (doc.Entries.Count < 2) return "# " + text;
        var i = rng.Next(doc.Entries.Count - 1);
        var boundary = LineStart(text, doc.Entries[i + 1].KeyIndex);
        var lines = new[] { LineStart(text, boundary - 1), boundary };
        return lines.OrderDescending().Aggregate(text, (t, at) => t.Insert(at, "#"));
    }

    [Fact]
    public void Random_edits_reloaded_from_the_previous_document_equal_a_full_load()
    {
        var rng = new Random(20261203);
        int cases = 0, reused = 0;
        var reusedByEdit = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var scenario = 0; scenario < 150; scenario++)
        {
            var text = RandomFile(rng, out _);
            var previous = ScheduleLoader.Load(Encoding.UTF8.GetBytes(text), FilePath);
            var log = new StringBuilder().Append("--- file:\n").Append(text);
            for (var step = 0; step < 4; step++)
            {
                // Half the edits local ones (the first LocalEdits), so chains of them reach the incremental path.
                var (name, apply) = Edits[rng.Next(2) == 0 ? rng.Next(LocalEdits) : rng.Next(Edits.Length)];
                var full = ScheduleLoader.Load(Encoding.UTF8.GetBytes(text), FilePath);
                text = apply(rng, text, full);
                log.Append("\n--- ").Append(name).Append(":\n").Append(text);
                var bytes = Encoding.UTF8.GetBytes(text);

                var expected = ScheduleLoader.Load(bytes, FilePath);
                var actual = ScheduleLoader.Reload(previous, bytes, FilePath);

                AssertSame(expected, actual, log);
                cases++;
                if (actual.Entries.Count > 0 && previous.Entries.Any(p => actual.Entries.Any(e => e.Task is not null && ReferenceEquals(e.Task, p.Task))))
                {
                    reused++;
                    reusedByEdit[name] = reusedByEdit.GetValueOrDefault(name) + 1;
                }
                previous = actual;
            }
        }
        Assert.Equal(600, cases);
        // The incremental path must really be taken, for each kind of local edit, not just fall back to a full parse.
        Assert.True(reused > cases / 3, $"only {reused} of {cases} reloads reused the previous tasks: {string.Join(", ", reusedByEdit)}");
        foreach (var local in new[] { "change a field value", "change a value to a quoted one", "add a task", "remove a task", "add a line to a task", "rename an id" })
            Assert.True(reusedByEdit.GetValueOrDefault(local) > 0, $"'{local}' never took the incremental path");
    }

    [Fact]
    public void A_one_task_edit_reuses_every_other_task_and_shifts_the_later_ones()
    {
        var text = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 100; i++)
            text.Append(CultureInfo.InvariantCulture, $"  t{i}:\n    schedule: \"{i % 60} * * * *\"\n    command: run {i}\n");
        var before = ScheduleLoader.Load(Encoding.UTF8.GetBytes(text.ToString()), FilePath);
        var edited = text.ToString().Replace("    command: run 50\n", "    command: |\n      run 50\n      and more\n", StringComparison.Ordinal);

        var after = ScheduleLoader.Reload(before, Encoding.UTF8.GetBytes(edited), FilePath);

        AssertSame(ScheduleLoader.Load(Encoding.UTF8.GetBytes(edited), FilePath), after, new StringBuilder(edited));
        Assert.Equal("run 50\nand more\n", after.Entries[50].Task!.Command);
        for (var i = 0; i < 100; i++)
            if (i != 50) Assert.Same(before.Entries[i].Task, after.Entries[i].Task);
        Assert.Equal(before.Entries[51].Line + 2, after.Entries[51].Line);
    }

    [Theory]
    [InlineData("    command: \"run 50\n", "an unclosed quote runs into the next task")]
    [InlineData("    command: [run\n", "an unclosed bracket runs into the next task")]
    [InlineData("  t49:\n    schedule: \"0 * * * *\"\n    command: run\n", "a duplicate id")]
    [InlineData("tasks2: 1\n", "a top-level key between tasks")]
    [InlineData("    command: run 50\n  # x\n     extra: 1\n", "a deeper line after a comment")]
    public void An_edit_that_is_not_local_gives_what_a_full_load_gives(string replacement, string what)
    {
        var text = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 100; i++)
            text.Append(CultureInfo.InvariantCulture, $"  t{i}:\n    schedule: \"{i % 60} * * * *\"\n    command: run {i}\n");
        var before = ScheduleLoader.Load(Encoding.UTF8.GetBytes(text.ToString()), FilePath);
        var edited = text.ToString().Replace("    command: run 50\n", replacement, StringComparison.Ordinal);

        var expected = ScheduleLoader.Load(Encoding.UTF8.GetBytes(edited), FilePath);
        var actual = ScheduleLoader.Reload(before, Encoding.UTF8.GetBytes(edited), FilePath);

        Assert.False(expected.IsValid, what);
        AssertSame(expected, actual, new StringBuilder(what));
    }

    private static void AssertSame(ScheduleDocument expected, ScheduleDocument actual, StringBuilder log)
    {
        var context = log.ToString();
        Assert.True(expected.Text == actual.Text, "text differs\n" + context);
        Assert.True(expected.Path == actual.Path, context);
        Assert.True(string.Join('\n', expected.FormatProblems()) == string.Join('\n', actual.FormatProblems()),
            $"problems differ:\nexpected:\n{string.Join('\n', expected.FormatProblems())}\nactual:\n{string.Join('\n', actual.FormatProblems())}\n{context}");
        Assert.True(expected.Problems.Select(p => p.TaskId).SequenceEqual(actual.Problems.Select(p => p.TaskId)), "problem task ids differ\n" + context);
        Assert.True(expected.DefaultTimezone == actual.DefaultTimezone, context);
        Assert.True(expected.IsFlowRoot == actual.IsFlowRoot, context);
        Assert.True(Equals(expected.Tasks, actual.Tasks), $"tasks section: expected {expected.Tasks}, got {actual.Tasks}\n{context}");
        Assert.True(expected.Entries.Count == actual.Entries.Count, $"{expected.Entries.Count} entries expected, got {actual.Entries.Count}\n{context}");
        for (var i = 0; i < expected.Entries.Count; i++)
        {
            TaskEntry e = expected.Entries[i], a = actual.Entries[i];
            Assert.True((e.Id, e.KeyIndex, e.EndIndex, e.Line, e.Column) == (a.Id, a.KeyIndex, a.EndIndex, a.Line, a.Column),
                $"entry {i}: expected {e.Id}@{e.KeyIndex}-{e.EndIndex} {e.Line}:{e.Column}, got {a.Id}@{a.KeyIndex}-{a.EndIndex} {a.Line}:{a.Column}\n{context}");
            Assert.True((e.Task is null) == (a.Task is null) && (e.Task is null || (e.Task.Equals(a.Task) && e.Task.Name == a.Task!.Name)), $"task {e.Id} differs\n{context}");
            Assert.True(Describe(e.Layout) == Describe(a.Layout), $"layout of {e.Id}: expected {Describe(e.Layout)}, got {Describe(a.Layout)}\n{context}");
        }
    }

    private static string Describe(TaskLayout? layout) => layout is null ? "none"
        : $"{layout.IsFlow} {layout.HasExplicitKey} " + string.Join("; ", layout.Fields.Select(f =>
            $"{f.Name} {f.KeyStart}-{f.KeyEnd} {f.ValueStart}-{f.ValueEnd} {f.Style} [{string.Join(", ", f.Items)}]"));
}

/// <summary>The sync's document cache reloads a changed file from the document it holds (issue 15).</summary>
public class ParsedDocumentCacheTests
{
    [Fact]
    public void A_changed_snapshot_is_reloaded_from_the_last_document_and_equals_a_full_load()
    {
        const string path = "schedule_config.yml";
        var text = new StringBuilder("version: 1\ntasks:\n");
        for (var i = 0; i < 20; i++)
            text.Append(CultureInfo.InvariantCulture, $"  t{i}:\n    schedule: \"@daily\"\n    command: run {i}\n");
        var cache = new ScheduleSync.Sync.ParsedDocumentCache(path);
        var first = cache.Load(Snapshot(text.ToString()));
        var edited = text.ToString().Replace("command: run 7\n", "command: run seven\n", StringComparison.Ordinal);

        var parses = 0;
        var second = cache.Load(Snapshot(edited), parsing: () => parses++);

        Assert.Equal(1, parses);
        Assert.Equal("run seven", second.Entries[7].Task!.Command);
        Assert.Same(first.Entries[8].Task, second.Entries[8].Task);
        Assert.Equal(ScheduleLoader.Parse(edited, path).ValidTasks, second.ValidTasks);
        Assert.Same(second, cache.Load(Snapshot(edited)));
    }

    private static ScheduleSync.Files.FileSnapshot Snapshot(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return new ScheduleSync.Files.FileSnapshot(true, bytes, ScheduleSync.Files.ConfigFileStore.Checksum(bytes), null);
    }
}
