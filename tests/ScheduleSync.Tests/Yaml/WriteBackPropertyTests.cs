using System.Text;
using CsCheck;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// Minimal write-back by property (SPEC §2 point 5): a canonical file, decorated the way a person would (comments and
/// blank lines between tasks, trailing comments), goes through random batches of replacements, additions and deletions.
/// After each batch the file holds exactly the expected tasks, and every line outside the edited tasks (and, for a
/// deleted task, its own comment lines directly above it) is still there, unchanged and in order.
/// </summary>
public class WriteBackPropertyTests
{
    private const string Path = "schedule_config.yml";

    private static readonly string[] DecorationLines =
    [
        "", "", "# a comment", "  # an indented comment", "    # a deeper comment", "#   old-task:", "  #   schedule: \"0 0 * * *\"",
        "  # é 日本 😀 — unicode", "  ", "# tasks:", "  #", "  # - not a list item",
    ];

    private static readonly string[] TrailingComments = ["", "", "", "  # note", " # key: value", "    # after a gap"];

    private sealed record Batch(int[] Actions, TaskDefinition[] Donors, int[] Masks, TaskDefinition[] NewTasks, bool DeleteAbsent);

    private static readonly Gen<Batch> BatchGen = Gen.Select(
        Gen.Int[0, 9].Array[12],
        TaskGenerators.Task.Array[1, 3],
        Gen.Frequency((3, Gen.Int[0, 1023]), (2, Gen.OneOfConst(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)), (1, Gen.Const(0))).Array[12],
        Gen.Frequency((2, Gen.Const(Array.Empty<TaskDefinition>())), (2, TaskGenerators.Task.Array[1, 2])),
        Gen.Int[0, 9].Select(i => i == 0),
        (actions, donors, masks, newTasks, deleteAbsent) => new Batch(actions, donors, masks, newTasks, deleteAbsent));

    private static readonly Gen<(TaskDefinition[] Tasks, string[][] Decorations, string[] Trailing, Batch[] Batches)> Scenario = Gen.Select(
        TaskGenerators.Tasks(0, 7),
        Gen.OneOfConst(DecorationLines).Array[0, 3].Array[9],
        Gen.OneOfConst(TrailingComments).Array[16],
        BatchGen.Array[1, 4]);

    [Fact]
    public void Random_edits_to_a_decorated_file_change_only_the_edited_tasks()
    {
        Scenario.Sample((tasks, decorations, trailing, batches) =>
        {
            var text = Decorate(ScheduleWriter.WriteNew(tasks), decorations, trailing);
            var log = new StringBuilder().Append("--- decorated file:\n").Append(text);
            var model = Model(Parse(text, log));
            Assert.Equal(tasks.ToDictionary(t => t.Id, t => t.ContentHash, StringComparer.Ordinal), model);

            foreach (var batch in batches)
            {
                var document = Parse(text, log);
                var (upserts, deletes) = Edits(document, batch);
                log.Append("\n--- upserts: ").AppendJoin(", ", upserts.Select(t => t.Id)).Append("; deletes: ").AppendJoin(", ", deletes).Append('\n');
                string next;
                ScheduleDocument derived;
                try
                {
                    (next, derived) = ScheduleWriter.ApplyWithDocument(document, upserts, deletes);
                }
                catch (InvalidOperationException e)
                {
                    throw new InvalidOperationException(e.Message + "\n" + log, e);
                }
                log.Append("--- after:\n").Append(next);
                Check(text, document, next, upserts, deletes, log.ToString());
                // The document derived from the edits (what the next sync starts from) is the one parsing gives.
                var reparsed = ScheduleLoader.Parse(next, Path);
                var derivedShape = derived.Entries.Select(e => (e.Id, e.KeyIndex, e.EndIndex, e.Line, e.Column, e.Task?.ContentHash)).ToList();
                var parsedShape = reparsed.Entries.Select(e => (e.Id, e.KeyIndex, e.EndIndex, e.Line, e.Column, e.Task?.ContentHash)).ToList();
                Assert.True(derivedShape.SequenceEqual(parsedShape),
                    $"the derived document differs from the parsed one\nderived: {string.Join(" ", derivedShape.Except(parsedShape))}\nparsed: {string.Join(" ", parsedShape.Except(derivedShape))}\n{log}");
                Assert.Equal(reparsed.Tasks?.ValueEndIndex, derived.Tasks?.ValueEndIndex);
                text = next;
            }
        }, iter: 300);
    }

    private static ScheduleDocument Parse(string text, StringBuilder log)
    {
        var document = ScheduleLoader.Parse(text, Path);
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()) + "\n" + log);
        return document;
    }

    private static Dictionary<string, string> Model(ScheduleDocument document) =>
        document.ValidTasks.ToDictionary(t => t.Id, t => t.ContentHash, StringComparer.Ordinal);

    /// <summary>Inserts comment and blank lines before each task and at the end, and trailing comments on key and last lines.</summary>
    private static string Decorate(string text, string[][] decorations, string[] trailing)
    {
        var document = ScheduleLoader.Parse(text, Path);
        var lines = text.Split('\n').ToList();
        var insertions = new List<(int Line, string[] Lines)>();
        var entries = document.Entries.ToList();
        for (var i = 0; i < entries.Count; i++)
        {
            var keyLine = LineOf(text, entries[i].KeyIndex);
            var lastLine = LineOf(text, entries[i].EndIndex - 1);
            if (trailing[(2 * i) % trailing.Length] is { Length: > 0 } onKey) lines[keyLine] += onKey;
            if (lastLine != keyLine && trailing[(2 * i + 1) % trailing.Length] is { Length: > 0 } onLast) lines[lastLine] += onLast;
            insertions.Add((keyLine, decorations[i % decorations.Length]));
        }
        // After the last task: before the final empty string that the closing line break leaves.
        insertions.Add((lines.Count - 1, decorations[entries.Count % decorations.Length]));
        foreach (var (line, added) in insertions.OrderByDescending(x => x.Line))
            lines.InsertRange(line, added);
        return string.Join('\n', lines);
    }

    /// <summary>What one batch does to the current document: replace, delete or keep each task, and add new ones.</summary>
    private static (List<TaskDefinition> Upserts, List<string> Deletes) Edits(ScheduleDocument document, Batch batch)
    {
        var upserts = new List<TaskDefinition>();
        var deletes = new List<string>();
        var existing = document.ValidTasks.ToList();
        for (var i = 0; i < existing.Count; i++)
        {
            var task = existing[i];
            switch (batch.Actions[i % batch.Actions.Length])
            {
                case 6 or 7:
                    // Take the fields picked by the mask from a donor: one field, several, all or none (same content).
                    var donor = batch.Donors[i % batch.Donors.Length];
                    var mask = batch.Masks[i % batch.Masks.Length];
                    upserts.Add(TaskFields.All.Where((_, bit) => (mask & (1 << bit)) != 0).Aggregate(task, (t, field) => field.CopyFrom(t, donor)));
                    break;
                case 8 or 9:
                    deletes.Add(task.Id);
                    break;
            }
        }
        var ids = existing.Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var added in batch.NewTasks)
            if (ids.Add(added.Id)) upserts.Add(added);
        if (batch.DeleteAbsent && ids.Add("absent-task-0")) deletes.Add("absent-task-0");
        return (upserts, deletes);
    }

    private static void Check(string before, ScheduleDocument document, string after, List<TaskDefinition> upserts, List<string> deletes, string log)
    {
        var parsed = ScheduleLoader.Parse(after, Path);
        Assert.True(parsed.IsValid, string.Join("\n", parsed.FormatProblems()) + "\n" + log);

        // The file holds exactly the expected tasks.
        var expected = Model(document);
        foreach (var id in deletes) expected.Remove(id);
        foreach (var task in upserts) expected[task.Id] = task.ContentHash;
        Assert.True(expected.OrderBy(kv => kv.Key, StringComparer.Ordinal).SequenceEqual(Model(parsed).OrderBy(kv => kv.Key, StringComparer.Ordinal)),
            "the written file does not hold the expected tasks\n" + log);

        // Untouched tasks keep their exact text and their order; new tasks come after them in the order given.
        var touched = upserts.Select(t => t.Id).Concat(deletes).ToHashSet(StringComparer.Ordinal);
        var oldEntries = document.Entries.ToDictionary(e => e.Id, StringComparer.Ordinal);
        var newEntries = parsed.Entries.ToDictionary(e => e.Id, StringComparer.Ordinal);
        foreach (var entry in document.Entries.Where(e => !touched.Contains(e.Id)))
        {
            var now = newEntries[entry.Id];
            Assert.True(before[entry.KeyIndex..entry.EndIndex] == after[now.KeyIndex..now.EndIndex], $"task '{entry.Id}' was not edited but its text changed\n{log}");
        }
        var kept = document.Entries.Select(e => e.Id).Where(id => !deletes.Contains(id)).ToList();
        var added = upserts.Select(t => t.Id).Where(id => !oldEntries.ContainsKey(id)).ToList();
        Assert.True(kept.Concat(added).SequenceEqual(parsed.Entries.Select(e => e.Id)), "tasks are not in the expected order\n" + log);

        // Every line outside the edited tasks (and a deleted task's own comments) is still there, in order.
        var oldLines = before.Split('\n');
        var removed = new HashSet<int>();
        foreach (var entry in document.Entries.Where(e => touched.Contains(e.Id)))
        {
            var (first, last) = (LineOf(before, entry.KeyIndex), LineOf(before, entry.EndIndex - 1));
            for (var line = first; line <= last; line++) removed.Add(line);
            if (!deletes.Contains(entry.Id)) continue;
            for (var line = first - 1; line >= 0 && oldLines[line].TrimStart().StartsWith('#'); line--) removed.Add(line);
        }
        var newLines = after.Split('\n');
        var written = new HashSet<int>();
        if (document.Tasks is { IsBlockMapping: false, KeyIndex: >= 0 } section && upserts.Count > 0)
        {
            // An empty or flow section (`tasks:`, `tasks: {}`) is rewritten as a block: its own lines are edited too.
            for (var line = LineOf(before, section.KeyIndex); line <= LineOf(before, Math.Max(section.KeyIndex, section.ValueEndIndex - 1)); line++) removed.Add(line);
            written.Add(LineOf(after, parsed.Tasks!.KeyIndex));
        }
        foreach (var entry in parsed.Entries.Where(e => upserts.Any(t => t.Id == e.Id)))
        {
            for (var line = LineOf(after, entry.KeyIndex); line <= LineOf(after, entry.EndIndex - 1); line++) written.Add(line);
        }
        var keptBefore = oldLines.Where((_, i) => !removed.Contains(i)).ToList();
        var keptAfter = newLines.Where((_, i) => !written.Contains(i)).ToList();
        // A new task follows the file's layout (blank lines between tasks when the file has them): at most one blank
        // line per new task may appear; otherwise every line outside the edits is kept, in order, blank lines included.
        var addedCount = upserts.Count(t => !oldEntries.ContainsKey(t.Id));
        var blanksBefore = keptBefore.Count(l => l.Length == 0);
        var blanksAfter = keptAfter.Count(l => l.Length == 0);
        Assert.True(blanksAfter >= blanksBefore && blanksAfter <= blanksBefore + addedCount,
            $"blank lines outside the edits went from {blanksBefore} to {blanksAfter} with {addedCount} new task(s)\n{log}");
        keptBefore.RemoveAll(l => l.Length == 0);
        keptAfter.RemoveAll(l => l.Length == 0);
        Assert.True(keptBefore.SequenceEqual(keptAfter),
            "lines outside the edited tasks changed\n--- expected kept:\n" + string.Join('\n', keptBefore) + "\n--- actual kept:\n" + string.Join('\n', keptAfter) + "\n" + log);
    }

    private static int LineOf(string text, int index) => text.AsSpan(0, Math.Clamp(index, 0, text.Length)).Count('\n');
}
