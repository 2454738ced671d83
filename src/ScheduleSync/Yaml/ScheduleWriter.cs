using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using ScheduleSync.Tasks;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace ScheduleSync.Yaml;

/// <summary>What a write-back produced: the new text and its document, the warnings to log and announce, the ids not written.</summary>
internal sealed record WriteBack(string Text, ScheduleDocument Document, IReadOnlyList<string> Warnings, IReadOnlyList<string> Failed);

/// <summary>
/// Writes tasks back into the person's file minimally (SPEC §2 step 5): in a changed task only the changed fields' lines
/// are edited (<see cref="FieldWriter"/>), a new task is appended at the end of <c>tasks:</c>, a deleted task is removed
/// with its own comment lines directly above it, and every other byte stays as it was (CRLF files stay CRLF). A file
/// written from nothing gets one canonical, deterministic layout.
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
    /// The result is checked to hold exactly the expected tasks before it is returned; a task that cannot be written
    /// makes this throw (<see cref="Write"/> reports it instead and writes the others).
    /// </summary>
    public static string Apply(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes) =>
        ApplyWithDocument(document, upserts, deletes).Text;

    /// <summary>
    /// Like <see cref="Apply"/>, and also returns the document of the new text, derived from the old one without
    /// parsing the whole file again (only the edited stretch is re-parsed, to check it): the next sync starts from it.
    /// </summary>
    public static (string Text, ScheduleDocument Document) ApplyWithDocument(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var result = Write(document, upserts, deletes);
        if (result.Failed.Count > 0)
            throw new InvalidOperationException($"internal error: the written-back text of {document.Path} does not hold the expected tasks ({string.Join(", ", result.Failed)}); nothing was written. "
                + string.Join("; ", result.Warnings));
        return (result.Text, result.Document);
    }

    /// <summary>
    /// Writes the changes back field by field (SPEC §2 step 5). A task that cannot be edited in place (a flow mapping,
    /// explicit <c>? key</c> entries, an edit that did not verify) is re-rendered whole; a document that cannot be
    /// edited in place (flow or JSON style) is re-rendered canonically. Each such fallback is a warning. A task whose
    /// export cannot be written even whole is left as it is in the file and listed in <see cref="WriteBack.Failed"/>;
    /// the other tasks are written.
    /// </summary>
    public static WriteBack Write(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var present = document.Entries.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        deletes = [.. deletes.Where(present.Contains)];
        if (upserts.Count == 0 && deletes.Count == 0) return new WriteBack(document.Text, document, [], []);
        if (document.HasFileProblems)
            throw new InvalidOperationException($"internal error: {document.Path} has problems and cannot be written back");
        if (!document.IsFlowRoot && document.Tasks is { IsBlockMapping: true } section)
            return ApplyToBlock(document, section, upserts, deletes);

        var warnings = new List<string>();
        if (!document.IsFlowRoot && !document.Entries.Any(e => e.Task is null))
        {
            // The tasks section is empty, missing or a flow mapping: it is written anew in block form, the rest kept.
            var text = ToLineBreak(RewriteSection(document, upserts, deletes), document.LineBreak);
            var after = ScheduleLoader.Parse(text, document.Path);
            if (Holds(after, Expected(document, upserts, deletes)))
            {
                if (document.Entries.Count > 0)
                    warnings.Add($"{document.Path}: the tasks section is written as a flow mapping, which cannot be edited in place; it was re-rendered in the block layout");
                return new WriteBack(text, after, warnings, []);
            }
        }
        return Canonical(document, upserts, deletes, warnings);
    }

    /// <summary>The whole document in the canonical layout (its default time zone kept): the way out of any layout.</summary>
    private static WriteBack Canonical(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes, List<string> warnings)
    {
        if (document.Entries.Any(e => e.Task is null))
        {
            // Re-rendering would drop the invalid tasks (kept as written under on_invalid: skip_task): export nothing.
            warnings.Add($"{document.Path} cannot be edited in place and holds invalid tasks, which a rewrite would lose; nothing was exported to it");
            return new WriteBack(document.Text, document, warnings, [.. upserts.Select(t => t.Id).Concat(deletes).Distinct(StringComparer.Ordinal)]);
        }
        var tasks = document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
        foreach (var id in deletes) tasks.Remove(id);
        foreach (var task in upserts) tasks[task.Id] = task;
        var zone = document.DefaultTimezone;
        var text = new StringBuilder(Header).Append("version: 1\n");
        if (zone is not null) text.Append("defaults:\n  timezone: ").Append(Scalar(zone)).Append('\n');
        text.Append("tasks:");
        foreach (var task in tasks.Values.OrderBy(t => t.Id, StringComparer.Ordinal))
        {
            text.Append('\n');
            RenderTask(text, task, 2, zone ?? "UTC");
        }
        text.Append(tasks.Count > 0 ? "\n" : " {}\n");
        var written = ToLineBreak(text.ToString(), document.LineBreak);
        var after = ScheduleLoader.Parse(written, document.Path);
        Verify(document.Path, after, Expected(document, upserts, deletes));
        warnings.Add($"{document.Path} is written in a layout that cannot be edited in place (a flow or JSON-style document, or explicit '?' keys); it was rewritten in the canonical block layout, and its comments and formatting were not kept");
        return new WriteBack(written, after, warnings, []);
    }

    private static bool Holds(ScheduleDocument after, Dictionary<string, string> expected)
    {
        try
        {
            Verify(after.Path, after, expected);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string ToLineBreak(string text, string lineBreak) => lineBreak == "\n" ? text : text.Replace("\n", lineBreak, StringComparison.Ordinal);

    /// <param name="Produced">The tasks the replacement holds, with indices relative to the replacement's start.</param>
    private sealed record Edit(int Start, int End, string Replacement, List<TaskEntry> Produced);

    private static string Splice(string source, List<Edit> edits, out Dictionary<Edit, int> landed)
    {
        edits.Sort((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : a.End.CompareTo(b.End));
        var result = new StringBuilder(source.Length + 256);
        landed = new Dictionary<Edit, int>(ReferenceEqualityComparer.Instance);
        var cursor = 0;
        foreach (var edit in edits)
        {
            result.Append(source, cursor, edit.Start - cursor);
            landed[edit] = result.Length;
            result.Append(edit.Replacement);
            cursor = edit.End;
        }
        result.Append(source, cursor, source.Length - cursor);
        return result.ToString();
    }

    private static WriteBack ApplyToBlock(
        ScheduleDocument document, TasksSection section, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var source = document.Text;
        var lineBreak = document.LineBreak;
        var entries = document.Entries;
        var indexOf = new Dictionary<string, int>(entries.Count, StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++) indexOf.TryAdd(entries[i].Id, i);
        var timezone = document.EffectiveDefaultTimezone;
        var edits = new List<Edit>();
        var appended = new List<TaskDefinition>();
        var replaced = new Dictionary<int, Edit>();
        var deleted = new HashSet<int>();
        var warnings = new List<string>();
        var failed = new List<string>();

        foreach (var task in upserts)
        {
            if (!indexOf.TryGetValue(task.Id, out var i))
            {
                appended.Add(task);
                continue;
            }
            var entry = entries[i];
            if (entry.Task is { } current && current.ContentHash == task.ContentHash) continue;
            var segmentStart = LineStart(source, entry.KeyIndex);
            // The task's lines, up to the end of the last one's content (its line break stays, outside).
            var segmentEnd = ContentEnd(source, entry.EndIndex);
            var trailing = BlankLinesAfter(source, segmentEnd);
            Edit? edit = null;
            var (fieldLevel, reason) = FieldWriter.Edit(source, entry, task, timezone, lineBreak);
            if (fieldLevel is not null)
            {
                edit = Checked(document, segmentStart, segmentEnd, fieldLevel, trailing, task);
                if (edit is null)
                    warnings.Add($"{document.Path}: the field-by-field write-back of task '{task.Id}' did not read back as intended; the task was re-rendered whole");
            }
            else if (reason is not null)
            {
                warnings.Add($"{document.Path}: {reason}; the task was re-rendered in the block layout");
            }
            if (edit is null)
            {
                edit = Checked(document, segmentStart, segmentEnd, WholeTask(source, entry, task, timezone, segmentStart, segmentEnd, lineBreak), trailing, task);
                if (edit is null)
                {
                    warnings.Add($"{document.Path}: task '{task.Id}' could not be written back; its export was skipped and the file keeps its previous version");
                    failed.Add(task.Id);
                    continue;
                }
            }
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
            var at = ContentEnd(source, Math.Max(section.ValueEndIndex, section.KeyIndex));
            var inside = deletions.Where(d => d.Start <= at && at < d.End).Select(d => (int?)d.Start).FirstOrDefault();
            // Follow the person's layout: when tasks are separated by blank lines, so are the new ones.
            var separator = BlankLineBetweenTasks(document) ? "\n\n" : "\n";
            var text = new StringBuilder();
            foreach (var task in appended)
            {
                if (inside is null || text.Length > 0) text.Append(separator);
                RenderTask(text, task, section.EntryIndent, timezone);
            }
            if (inside is not null) text.Append('\n');
            var position = inside ?? at;
            var replacement = ToLineBreak(text.ToString(), lineBreak);
            var produced = Produced(document, replacement, "", appended);
            if (produced is null)
            {
                warnings.Add($"{document.Path}: the new tasks {string.Join(", ", appended.Select(t => t.Id))} could not be written; their export was skipped");
                failed.AddRange(appended.Select(t => t.Id));
            }
            else
            {
                edits.Add(new Edit(position, position, replacement, produced));
            }
        }
        if (edits.Count == 0) return new WriteBack(source, document, warnings, failed);

        var newText = Splice(source, edits, out var landed);

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
                var produced = edit.Produced[0];
                newEntries.Add(produced with { KeyIndex = landed[edit] + produced.KeyIndex, EndIndex = landed[edit] + produced.EndIndex, Line = entry.Line, Column = entry.Column });
            }
            else
            {
                newEntries.Add(entry with { KeyIndex = entry.KeyIndex + shift, EndIndex = entry.EndIndex + shift });
            }
        }
        foreach (var edit in edits.Where(e => e.Produced.Count > 0 && !replaced.ContainsValue(e)))
            foreach (var produced in edit.Produced)
                newEntries.Add(produced with { KeyIndex = landed[edit] + produced.KeyIndex, EndIndex = landed[edit] + produced.EndIndex });
        newEntries.Sort((a, b) => a.KeyIndex.CompareTo(b.KeyIndex));
        var expected = Expected(document, [.. upserts.Where(t => !failed.Contains(t.Id))], deletes);
        foreach (var id in failed)
            if (entries.FirstOrDefault(e => e.Id == id)?.Task is { } kept) expected[id] = kept.ContentHash;
        if (document.Problems.Count > 0)
        {
            // Invalid tasks stay as the person wrote them (on_invalid: skip_task); their problems' positions moved, so
            // parse the result rather than derive it (a rare path: the file has invalid tasks).
            var parsed = ScheduleLoader.Parse(newText, document.Path);
            Verify(document.Path, parsed, expected, [.. document.InvalidTaskIds.Where(id => !deletes.Contains(id) && !upserts.Any(u => u.Id == id && !failed.Contains(id)))]);
            return new WriteBack(newText, parsed, warnings, failed);
        }
        if (newEntries.Count == 0)
        {
            // No task left: the section is no longer a block mapping; parse the (small) result instead of deriving it.
            var parsed = ScheduleLoader.Parse(newText, document.Path);
            Verify(document.Path, parsed, []);
            return new WriteBack(newText, parsed, warnings, failed);
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
        return new WriteBack(newText, newDocument, warnings, failed);
    }

    /// <summary>The edits of one task applied to its lines, as one edit; null when the result does not read back as the task.</summary>
    private static Edit? Checked(ScheduleDocument document, int segmentStart, int segmentEnd, List<(int Start, int End, string Text)> edits, string trailing, TaskDefinition task)
    {
        var source = document.Text;
        var ordered = edits.Select((e, n) => (e.Start, e.End, e.Text, n)).OrderBy(e => e.Start).ThenBy(e => e.End).ThenBy(e => e.n).ToList();
        var segment = new StringBuilder(segmentEnd - segmentStart + 64);
        var cursor = segmentStart;
        foreach (var (start, end, text, _) in ordered)
        {
            if (start < cursor || end < start || start < segmentStart || end > segmentEnd) return null; // overlapping: not editable this way
            segment.Append(source, cursor, start - cursor).Append(text);
            cursor = end;
        }
        segment.Append(source, cursor, segmentEnd - cursor);
        var replacement = segment.ToString();
        var produced = Produced(document, replacement, trailing, [task]);
        return produced is null ? null : new Edit(segmentStart, segmentEnd, replacement, produced);
    }

    /// <summary>
    /// Parses whole lines of new text on their own (under a <c>tasks:</c> key, with the file's default time zone) and
    /// returns the entries, relative to the text, when they are exactly the given tasks; null otherwise.
    /// </summary>
    private static List<TaskEntry>? Produced(ScheduleDocument document, string lines, string trailing, IReadOnlyList<TaskDefinition> tasks)
    {
        var header = new StringBuilder("version: 1\n");
        if (document.DefaultTimezone is { } zone) header.Append("defaults:\n  timezone: ").Append(Quoted(zone)).Append('\n');
        header.Append("tasks:\n");
        var offset = header.Length;
        var parsed = ScheduleLoader.Parse(header.Append(lines).Append(trailing).ToString(), document.Path);
        if (parsed.Problems.Count > 0 || parsed.Entries.Count != tasks.Count) return null;
        var result = new List<TaskEntry>(tasks.Count);
        for (var i = 0; i < tasks.Count; i++)
        {
            var entry = parsed.Entries[i];
            if (entry.Id != tasks[i].Id || entry.Task?.ContentHash != tasks[i].ContentHash || entry.EndIndex > offset + lines.Length) return null;
            result.Add(entry with { KeyIndex = entry.KeyIndex - offset, EndIndex = entry.EndIndex - offset });
        }
        return result;
    }

    /// <summary>The blank lines right after an index (they may belong to a keep-chomped block scalar before it).</summary>
    private static string BlankLinesAfter(string text, int index)
    {
        var end = index;
        while (end < text.Length)
        {
            var newline = text.IndexOf('\n', end);
            var lineEnd = newline < 0 ? text.Length : newline + 1;
            if (!string.IsNullOrWhiteSpace(text[end..lineEnd])) break;
            end = lineEnd;
        }
        return text[index..end];
    }

    /// <summary>The task rendered whole in the canonical layout, in place of its lines (the key line kept when it can be).</summary>
    private static List<(int Start, int End, string Text)> WholeTask(string source, TaskEntry entry, TaskDefinition task, string timezone, int segmentStart, int segmentEnd, string lineBreak)
    {
        var block = new StringBuilder();
        // When the fields start on the line after the key, the key line (and a comment on it) stays as it is.
        var keyLineEnd = LineEnd(source, entry.KeyIndex);
        var keyLine = source.AsSpan(entry.KeyIndex, keyLineEnd - entry.KeyIndex);
        var comment = keyLine.IndexOf(" #");
        var explicitKey = entry.Layout?.HasExplicitKey ?? !source.AsSpan(segmentStart, entry.KeyIndex - segmentStart).IsWhiteSpace();
        var bodyOnly = !explicitKey && (comment >= 0 ? keyLine[..comment] : keyLine).TrimEnd().EndsWith(":") && keyLineEnd < entry.EndIndex;
        var indent = LineIndent(source, segmentStart, entry.KeyIndex);
        if (bodyOnly)
        {
            RenderTask(block, task, indent, timezone, bodyOnly: true);
            return [(keyLineEnd - (keyLineEnd > 0 && source[keyLineEnd - 1] == '\r' ? 1 : 0), entry.EndIndex, ToLineBreak(block.ToString(), lineBreak))];
        }
        if (!explicitKey)
        {
            RenderTask(block, task, indent, timezone, skipFirstIndent: true);
            return [(entry.KeyIndex, entry.EndIndex, ToLineBreak(block.ToString(), lineBreak))];
        }
        // An explicit key ('? id'): the whole entry goes, from its line start.
        RenderTask(block, task, indent, timezone);
        return [(segmentStart, entry.EndIndex, ToLineBreak(block.ToString(), lineBreak))];
    }

    /// <summary>The number of spaces that start the line (from its start up to the first other character).</summary>
    private static int LineIndent(string text, int lineStart, int limit)
    {
        var i = lineStart;
        while (i < limit && text[i] == ' ') i++;
        return i - lineStart;
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
        foreach (var field in TaskFields.All)
            if (!field.IsDefault(task, defaultTimezone))
                text.Append('\n').Append(child).Append(field.Name).Append(": ").Append(CanonicalValue(task, field));
    }

    /// <summary>A field's value as the canonical layout writes it (one line).</summary>
    public static string CanonicalValue(TaskDefinition task, TaskField field) => field.Value(task) switch
    {
        string text => field.AlwaysQuoted ? Quoted(text) : Scalar(text),
        null => field.Kind == FieldKind.OptionalText ? Scalar("") : "~",
        bool flag => flag ? "true" : "false",
        int number => number.ToString(CultureInfo.InvariantCulture),
        ImmutableSortedDictionary<string, ArgValue> { Count: 0 } => "{}",
        ImmutableSortedDictionary<string, ArgValue> args => "{ " + string.Join(", ", args.Select(a => Key(a.Key, flow: true) + ": " + ArgText(a.Value))) + " }",
        ImmutableArray<string> tags => "[" + string.Join(", ", tags.Select(t => Scalar(t, flow: true))) + "]",
        var other => throw new ArgumentOutOfRangeException(nameof(field), other, $"field {field.Name} has a value the layout cannot write"),
    };

    internal static string ArgText(ArgValue value) => value.Kind switch
    {
        ArgKind.String => Scalar(value.Text, flow: true),
        _ => value.Text,
    };

    internal static string Key(string key, bool flow = false) => Scalar(key, flow);

    /// <summary>A string as a plain scalar when YAML reads it back as the same string, else double-quoted.</summary>
    public static string Scalar(string value, bool flow = false) => IsSafePlain(value, flow) ? value : Quoted(value);

    internal static bool IsSafePlain(string value, bool flow)
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

    internal static int LineStart(string text, int index) => index == 0 ? 0 : text.LastIndexOf('\n', index - 1) + 1;

    /// <summary>Index of the newline ending the line that holds <paramref name="index"/> (or the text length).</summary>
    internal static int LineEnd(string text, int index)
    {
        if (index > 0 && index <= text.Length && text[index - 1] == '\n') return index - 1;
        var end = text.IndexOf('\n', Math.Min(index, text.Length));
        return end < 0 ? text.Length : end;
    }

    /// <summary>Index of the end of the content of the line that holds <paramref name="index"/> (before its LF or CRLF).</summary>
    internal static int ContentEnd(string text, int index)
    {
        var end = text.IndexOf('\n', Math.Min(index, text.Length));
        if (end < 0) return text.Length;
        return end > index && text[end - 1] == '\r' ? end - 1 : end;
    }

    internal static int LineEndInclusive(string text, int index)
    {
        var end = LineEnd(text, index);
        return end < text.Length ? end + 1 : end;
    }

    /// <summary>Moves a line start up over the comment-only lines directly above it (the task's own comments).</summary>
    internal static int OwnCommentStart(string text, int lineStart, int floor)
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
