using System.Globalization;
using System.Text;
using ScheduleSync.Tasks;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace ScheduleSync.Yaml;

/// <summary>
/// Writes tasks back into the person's file minimally: a changed task's block is replaced in place, a new task is
/// appended at the end of <c>tasks:</c>, a deleted task is removed with its own comment lines directly above it, and
/// every other byte stays as it was. A file written from nothing gets one canonical, deterministic layout.
/// </summary>
internal static class ScheduleWriter
{
    public const string Header = "# schedule_config.yml — scheduled tasks, kept in sync with PostgreSQL by ScheduleSync.\n"
        + "# Edit freely: comments, blank lines and key order are kept when ScheduleSync writes back.\n";

    /// <summary>The canonical file for a set of tasks, sorted by id; timezone is written only when it is not UTC.</summary>
    public static string WriteNew(IEnumerable<TaskDefinition> tasks)
    {
        var text = new StringBuilder(Header).Append("version: 1\ntasks:");
        var any = false;
        foreach (var task in tasks.OrderBy(t => t.Id, StringComparer.Ordinal))
        {
            text.Append('\n');
            RenderTask(text, task, indent: 2, defaultTimezone: "UTC");
            any = true;
        }
        text.Append(any ? "\n" : " {}\n");
        return text.ToString();
    }

    /// <summary>
    /// Applies upserts and deletions to the document's text. Ids not present are appended; deleting an absent id is a no-op.
    /// The result is checked to hold exactly the expected tasks before it is returned.
    /// </summary>
    public static string Apply(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes) =>
        ApplyWithDocument(document, upserts, deletes).Text;

    /// <summary>
    /// Like <see cref="Apply"/>, and also returns the document of the new text, derived from the old one without
    /// parsing the whole file again (only the edited stretch is re-parsed, to check it): the next sync starts from it.
    /// </summary>
    public static (string Text, ScheduleDocument Document) ApplyWithDocument(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var present = document.Entries.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        deletes = [.. deletes.Where(present.Contains)];
        if (upserts.Count == 0 && deletes.Count == 0) return (document.Text, document);
        if (document.HasFileProblems)
            throw new InvalidOperationException($"internal error: {document.Path} has problems and cannot be written back");
        if (document.Tasks is { IsBlockMapping: true } section)
            return ApplyToBlock(document, section, upserts, deletes);
        // Not a block mapping: the section is written anew, so it must not hold invalid tasks (they would be lost).
        if (document.Entries.Any(e => e.Task is null))
            throw new InvalidOperationException($"internal error: the tasks of {document.Path} are not a block mapping and some are invalid; nothing was written");
        var text = RewriteSection(document, upserts, deletes);
        var after = ScheduleLoader.Parse(text, document.Path);
        Verify(document.Path, after, Expected(document, upserts, deletes));
        return (text, after);
    }

    private sealed record Edit(int Start, int End, string Replacement, List<(TaskDefinition Task, int Offset, int Length)> Produced);

    private static (string Text, ScheduleDocument Document) ApplyToBlock(
        ScheduleDocument document, TasksSection section, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var source = document.Text;
        var entries = document.Entries;
        var indexOf = new Dictionary<string, int>(entries.Count, StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++) indexOf.TryAdd(entries[i].Id, i);
        var timezone = document.EffectiveDefaultTimezone;
        var edits = new List<Edit>();
        var appended = new List<TaskDefinition>();
        var replaced = new Dictionary<int, Edit>();
        var deleted = new HashSet<int>();

        foreach (var task in upserts)
        {
            if (!indexOf.TryGetValue(task.Id, out var i))
            {
                appended.Add(task);
                continue;
            }
            var entry = entries[i];
            var block = new StringBuilder();
            // When the fields start on the line after the key, the key line (and a comment on it) stays as it is.
            var keyLineEnd = LineEnd(source, entry.KeyIndex);
            var keyLine = source.AsSpan(entry.KeyIndex, keyLineEnd - entry.KeyIndex);
            var comment = keyLine.IndexOf(" #");
            var bodyOnly = (comment >= 0 ? keyLine[..comment] : keyLine).TrimEnd().EndsWith(":") && keyLineEnd < entry.EndIndex;
            RenderTask(block, task, LineIndent(source, entry.KeyIndex), timezone, skipFirstIndent: true, bodyOnly: bodyOnly);
            var start = bodyOnly ? keyLineEnd : entry.KeyIndex;
            var edit = new Edit(start, entry.EndIndex, block.ToString(), [(task, bodyOnly ? entry.KeyIndex - start : 0, block.Length)]);
            edits.Add(edit);
            replaced[i] = edit;
        }
        var deletions = new List<Edit>();
        foreach (var id in deletes)
        {
            if (!indexOf.TryGetValue(id, out var i) || !deleted.Add(i)) continue;
            var entry = entries[i];
            // Never climb into the previous task's value (a literal block may hold lines that start with '#').
            var floor = i > 0 ? entries[i - 1].EndIndex : section.KeyIndex;
            deletions.Add(new Edit(OwnCommentStart(source, LineStart(source, entry.KeyIndex), floor), LineEndInclusive(source, entry.EndIndex), "", []));
        }
        edits.AddRange(deletions);

        if (appended.Count > 0)
        {
            // After the last line of the section (with its trailing comment), or where a deleted last task stood.
            var at = LineEnd(source, Math.Max(section.ValueEndIndex, section.KeyIndex));
            var inside = deletions.Where(d => d.Start <= at && at < d.End).Select(d => (int?)d.Start).FirstOrDefault();
            // Follow the person's layout: when tasks are separated by blank lines, so are the new ones.
            var separator = BlankLineBetweenTasks(document) ? "\n\n" : "\n";
            var text = new StringBuilder();
            var produced = new List<(TaskDefinition, int, int)>();
            foreach (var task in appended)
            {
                if (inside is null || produced.Count > 0) text.Append(separator);
                var offset = text.Length + section.EntryIndent; // the key, after its indentation
                RenderTask(text, task, section.EntryIndent, timezone);
                produced.Add((task, offset, text.Length - offset));
            }
            if (inside is not null) text.Append('\n');
            var position = inside ?? at;
            edits.Add(new Edit(position, position, text.ToString(), produced));
        }

        // Splice, noting where each edit landed in the new text.
        edits.Sort((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : a.End.CompareTo(b.End));
        var result = new StringBuilder(source.Length + 256);
        var landed = new Dictionary<Edit, int>(ReferenceEqualityComparer.Instance);
        var cursor = 0;
        foreach (var edit in edits)
        {
            result.Append(source, cursor, edit.Start - cursor);
            landed[edit] = result.Length;
            result.Append(edit.Replacement);
            cursor = edit.End;
        }
        result.Append(source, cursor, source.Length - cursor);
        var newText = result.ToString();

        // The new entries: kept ones shifted by the edits before them, replaced and appended ones where they landed.
        var newEntries = new List<TaskEntry>(entries.Count + appended.Count);
        var shift = 0;
        var next = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            while (next < edits.Count && edits[next].End <= entry.KeyIndex && !ReferenceEquals(edits[next], replaced.GetValueOrDefault(i)))
            {
                shift += edits[next].Replacement.Length - (edits[next].End - edits[next].Start);
                next++;
            }
            if (deleted.Contains(i)) continue;
            if (replaced.TryGetValue(i, out var edit))
            {
                // The key either moved with the text before it (body-only edit, negative offset) or starts the edit.
                var (task, offset, _) = edit.Produced[0];
                newEntries.Add(entry with { Task = task, KeyIndex = landed[edit] + offset, EndIndex = landed[edit] + edit.Replacement.Length });
            }
            else
            {
                newEntries.Add(entry with { KeyIndex = entry.KeyIndex + shift, EndIndex = entry.EndIndex + shift });
            }
        }
        foreach (var edit in edits.Where(e => e.Produced.Count > 0 && !replaced.ContainsValue(e)))
            foreach (var (task, offset, length) in edit.Produced)
                newEntries.Add(new TaskEntry(task.Id, task, landed[edit] + offset, landed[edit] + offset + length, 0, 0));
        newEntries.Sort((a, b) => a.KeyIndex.CompareTo(b.KeyIndex));
        if (document.Problems.Count > 0)
        {
            // Invalid tasks stay as the person wrote them (on_invalid: skip_task); their problems' positions moved, so
            // parse the result rather than derive it (a rare path: the file has invalid tasks).
            var parsed = ScheduleLoader.Parse(newText, document.Path);
            Verify(document.Path, parsed, Expected(document, upserts, deletes), [.. document.InvalidTaskIds.Where(id => !deletes.Contains(id) && !upserts.Any(u => u.Id == id))]);
            return (newText, parsed);
        }
        if (newEntries.Count == 0)
        {
            // No task left: the section is no longer a block mapping; parse the (small) result instead of deriving it.
            var parsed = ScheduleLoader.Parse(newText, document.Path);
            Verify(document.Path, parsed, []);
            return (newText, parsed);
        }
        var withLines = WithLines(newText, newEntries);
        var newDocument = new ScheduleDocument
        {
            Path = document.Path,
            Text = newText,
            DefaultTimezone = document.DefaultTimezone,
            Entries = withLines,
            Problems = [],
            Tasks = section with { ValueEndIndex = withLines[^1].EndIndex },
        };
        VerifyStretch(document, newDocument, edits.Select(e => (landed[e], landed[e] + e.Replacement.Length)).ToList());
        return (newText, newDocument);
    }

    /// <summary>Line and column of each entry's key, counted in one pass over the text.</summary>
    private static List<TaskEntry> WithLines(string text, List<TaskEntry> entries)
    {
        var list = new List<TaskEntry>(entries.Count);
        var line = 1;
        var lineStart = 0;
        var position = 0;
        foreach (var entry in entries)
        {
            while (true)
            {
                var newline = text.IndexOf('\n', position, entry.KeyIndex - position);
                if (newline < 0) break;
                line++;
                lineStart = newline + 1;
                position = newline + 1;
            }
            position = entry.KeyIndex;
            list.Add(entry with { Line = line, Column = entry.KeyIndex - lineStart + 1 });
        }
        return list;
    }

    /// <summary>
    /// Re-parses the stretch of the new text from the task before the first edit to the task after the last one (the
    /// rest is byte-for-byte what was parsed before) and checks it holds exactly the expected tasks.
    /// </summary>
    private static void VerifyStretch(ScheduleDocument before, ScheduleDocument after, List<(int Start, int End)> changed)
    {
        var entries = after.Entries;
        var first = changed.Min(c => c.Start);
        var last = changed.Max(c => c.End);
        var from = 0;
        while (from < entries.Count && entries[from].EndIndex < first) from++;
        var to = entries.Count - 1;
        while (to >= 0 && entries[to].KeyIndex > last) to--;
        from = Math.Max(0, from - 1);
        to = Math.Min(entries.Count - 1, to + 1);
        var text = after.Text;
        var start = from < entries.Count && from <= to ? LineStart(text, Math.Min(entries[from].KeyIndex, first)) : LineStart(text, first);
        var end = to >= 0 && from <= to ? LineEndInclusive(text, Math.Max(entries[to].EndIndex, last)) : LineEndInclusive(text, last);
        start = Math.Min(start, LineStart(text, Math.Min(first, text.Length)));
        end = Math.Max(end, LineEndInclusive(text, Math.Min(last, text.Length)));

        var header = new StringBuilder("version: 1\n");
        if (before.DefaultTimezone is { } zone) header.Append("defaults:\n  timezone: ").Append(Quoted(zone)).Append('\n');
        header.Append("tasks:\n");
        var stretch = ScheduleLoader.Parse(header + text[start..end], before.Path);
        var expected = entries.Where(e => e.KeyIndex >= start && e.KeyIndex < end).ToDictionary(e => e.Id, e => e.Task!.ContentHash, StringComparer.Ordinal);
        Verify(before.Path, stretch, expected);
    }

    private static Dictionary<string, string> Expected(ScheduleDocument before, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var expected = before.Entries.Where(e => e.Task is not null).ToDictionary(e => e.Id, e => e.Task!.ContentHash, StringComparer.Ordinal);
        foreach (var id in deletes) expected.Remove(id);
        foreach (var task in upserts) expected[task.Id] = task.ContentHash;
        return expected;
    }

    /// <summary>The tasks section is a flow mapping, empty or missing: write it anew in block form, keep the rest.</summary>
    private static string RewriteSection(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var tasks = document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
        foreach (var id in deletes) tasks.Remove(id);
        foreach (var task in upserts) tasks[task.Id] = task;
        var block = new StringBuilder("tasks:");
        foreach (var task in tasks.Values)
        {
            block.Append('\n');
            RenderTask(block, task, 2, document.EffectiveDefaultTimezone);
        }
        if (tasks.Count == 0) block.Append(" {}");

        var source = document.Text;
        if (document.Tasks is { KeyIndex: >= 0 } section)
        {
            var end = Math.Max(section.ValueEndIndex, section.KeyIndex);
            return string.Concat(source.AsSpan(0, section.KeyIndex), block.ToString(), source.AsSpan(end));
        }
        if (source.Trim().Length == 0)
            return WriteNew(tasks.Values);
        var separator = source.EndsWith('\n') ? "" : "\n";
        return source + separator + block + "\n";
    }

    /// <summary>The text must parse with no file-level problem, hold exactly the expected valid tasks, and the expected invalid ones.</summary>
    private static void Verify(string path, ScheduleDocument after, Dictionary<string, string> expected, IReadOnlyCollection<string>? expectedInvalid = null)
    {
        var actual = after.Entries.Where(e => e.Task is not null).ToDictionary(e => e.Id, e => e.Task!.ContentHash, StringComparer.Ordinal);
        var invalid = after.InvalidTaskIds.ToHashSet(StringComparer.Ordinal);
        if (!after.HasFileProblems && invalid.SetEquals(expectedInvalid ?? [])
            && actual.Count == expected.Count && expected.All(kv => actual.TryGetValue(kv.Key, out var h) && h == kv.Value))
            return;
        throw new InvalidOperationException(
            $"internal error: the written-back text of {path} does not hold the expected tasks; nothing was written. "
            + string.Join("; ", after.Problems.Take(5).Select(p => p.Format(path))));
    }

    /// <summary>Renders "id:" and its fields as a block mapping at the given indent, without a trailing newline.</summary>
    public static void RenderTask(StringBuilder text, TaskDefinition task, int indent, string defaultTimezone, bool skipFirstIndent = false, bool bodyOnly = false)
    {
        var pad = new string(' ', indent);
        var child = new string(' ', indent + 2);
        if (!bodyOnly)
        {
            if (!skipFirstIndent) text.Append(pad);
            text.Append(Key(task.Id)).Append(':');
        }
        void Line(string key, string value) => text.Append('\n').Append(child).Append(key).Append(": ").Append(value);

        if (task.Name != task.Id) Line("name", Scalar(task.Name));
        if (task.Description is not null) Line("description", Scalar(task.Description));
        Line("schedule", Quoted(task.Schedule));
        if (task.Timezone != defaultTimezone) Line("timezone", Scalar(task.Timezone));
        Line("command", Scalar(task.Command));
        if (task.Args.Count > 0)
            Line("args", "{ " + string.Join(", ", task.Args.Select(a => Key(a.Key, flow: true) + ": " + ArgText(a.Value))) + " }");
        if (!task.Enabled) Line("enabled", "false");
        if (task.TimeoutSeconds is { } timeout) Line("timeout_seconds", timeout.ToString(CultureInfo.InvariantCulture));
        if (task.MaxRetries != 0) Line("max_retries", task.MaxRetries.ToString(CultureInfo.InvariantCulture));
        if (task.Tags.Length > 0) Line("tags", "[" + string.Join(", ", task.Tags.Select(t => Scalar(t, flow: true))) + "]");
    }

    private static string ArgText(ArgValue value) => value.Kind switch
    {
        ArgKind.String => Scalar(value.Text, flow: true),
        _ => value.Text,
    };

    private static string Key(string key, bool flow = false) => Scalar(key, flow);

    /// <summary>A string as a plain scalar when YAML reads it back as the same string, else double-quoted.</summary>
    public static string Scalar(string value, bool flow = false) => IsSafePlain(value, flow) ? value : Quoted(value);

    private static bool IsSafePlain(string value, bool flow)
    {
        if (value.Length == 0 || value.Length > 200 || char.IsWhiteSpace(value[0]) || char.IsWhiteSpace(value[^1]))
            return false;
        if ("-?:,[]{}#&*!|>'\"%@`".Contains(value[0], StringComparison.Ordinal))
            return false;
        foreach (var c in value)
        {
            if (c < ' ' || c == '\u007f' || c > '\u007e') return false;
            if (flow && c is ',' or '[' or ']' or '{' or '}') return false;
        }
        if (value.Contains(": ", StringComparison.Ordinal) || value.Contains(" #", StringComparison.Ordinal) || value.EndsWith(':'))
            return false;
        // Read as text here, but as booleans by YAML 1.1 parsers: written quoted, to be read the same everywhere.
        if (value is "y" or "Y" or "n" or "N") return false;
        // A value like "a *b" or "x &y" would start an alias or anchor inside a flow collection.
        if (value.Contains(" *", StringComparison.Ordinal) || value.Contains(" &", StringComparison.Ordinal)) return false;
        // Resolve the text as the plain scalar it would be written as (the one-argument Scalar has style Any, not Plain).
        return ScheduleLoader.Resolve(new Scalar(AnchorName.Empty, TagName.Empty, value, ScalarStyle.Plain, true, false)) == ScheduleLoader.PlainKind.String;
    }

    public static string Quoted(string value)
    {
        var text = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case < ' ' or '\u007f' or '\u0085' or '\u2028' or '\u2029' or '\ufeff':
                    text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    break;
                default: text.Append(c); break;
            }
        }
        return text.Append('"').ToString();
    }

    private static bool BlankLineBetweenTasks(ScheduleDocument document)
    {
        var entries = document.Entries;
        if (entries.Count < 2) return false;
        var previous = entries[^2];
        var last = entries[^1];
        if (previous.EndIndex >= last.KeyIndex) return false;
        // The lines strictly between the end of one task and the key of the next (not the tail or the indent).
        var lines = document.Text[previous.EndIndex..last.KeyIndex].Split('\n');
        return lines.Length > 2 && lines[1..^1].Any(string.IsNullOrWhiteSpace);
    }

    private static int LineStart(string text, int index) => index == 0 ? 0 : text.LastIndexOf('\n', index - 1) + 1;

    private static int LineIndent(string text, int index) => index - LineStart(text, index);

    /// <summary>Index of the newline ending the line that holds <paramref name="index"/> (or the text length).</summary>
    private static int LineEnd(string text, int index)
    {
        if (index > 0 && index <= text.Length && text[index - 1] == '\n') return index - 1;
        var end = text.IndexOf('\n', Math.Min(index, text.Length));
        return end < 0 ? text.Length : end;
    }

    private static int LineEndInclusive(string text, int index)
    {
        var end = LineEnd(text, index);
        return end < text.Length ? end + 1 : end;
    }

    /// <summary>Moves a line start up over the comment-only lines directly above it (the task's own comments).</summary>
    private static int OwnCommentStart(string text, int lineStart, int floor)
    {
        var start = lineStart;
        while (start > 0 && start - 1 > floor)
        {
            var previous = LineStart(text, start - 1);
            if (!text.AsSpan(previous, start - previous).TrimStart().StartsWith("#")) break;
            start = previous;
        }
        return start;
    }
}
