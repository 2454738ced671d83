using System.Globalization;
using System.Text;
using ScheduleSync.Tasks;
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
    /// The result is re-parsed and checked to hold exactly the expected tasks before it is returned.
    /// </summary>
    public static string Apply(ScheduleDocument document, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        if (upserts.Count == 0 && deletes.Count == 0) return document.Text;
        var section = document.Tasks;
        var text = section is { IsBlockMapping: true }
            ? ApplyToBlock(document, section, upserts, deletes)
            : RewriteSection(document, upserts, deletes);
        Verify(document, text, upserts, deletes);
        return text;
    }

    private static string ApplyToBlock(ScheduleDocument document, TasksSection section, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var source = document.Text;
        var byId = document.Entries.GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var timezone = document.EffectiveDefaultTimezone;
        var edits = new List<(int Start, int End, string Replacement)>();
        var appended = new List<string>();

        foreach (var task in upserts)
        {
            var block = new StringBuilder();
            if (byId.TryGetValue(task.Id, out var entry))
            {
                RenderTask(block, task, LineIndent(source, entry.KeyIndex), timezone, skipFirstIndent: true);
                // A block scalar (| or >) ends after its newline; keep the line break it took.
                if (entry.EndIndex > 0 && source[entry.EndIndex - 1] == '\n') block.Append('\n');
                edits.Add((entry.KeyIndex, entry.EndIndex, block.ToString()));
            }
            else
            {
                RenderTask(block, task, section.EntryIndent, timezone);
                appended.Add(block.ToString());
            }
        }
        var deletions = new List<(int Start, int End)>();
        foreach (var id in deletes)
        {
            if (!byId.TryGetValue(id, out var entry)) continue;
            // Never climb into the previous task's value (a literal block may hold lines that start with '#').
            var floor = document.Entries.Where(e => e.EndIndex <= entry.KeyIndex).Select(e => e.EndIndex).DefaultIfEmpty(section.KeyIndex).Max();
            deletions.Add((OwnCommentStart(source, LineStart(source, entry.KeyIndex), floor), LineEndInclusive(source, entry.EndIndex)));
        }
        edits.AddRange(deletions.Select(d => (d.Start, d.End, "")));

        if (appended.Count > 0)
        {
            // After the last line of the section (with its trailing comment), or where a deleted last task stood.
            var at = LineEnd(source, Math.Max(section.ValueEndIndex, section.KeyIndex));
            var inside = deletions.Where(d => d.Start <= at && at < d.End).Select(d => (int?)d.Start).FirstOrDefault();
            // Follow the person's layout: when tasks are separated by blank lines, so are the new ones.
            var separator = BlankLineBetweenTasks(document) ? "\n\n" : "\n";
            edits.Add(inside is { } lineStart
                ? (lineStart, lineStart, string.Join(separator, appended) + "\n")
                : (at, at, separator + string.Join(separator, appended)));
        }

        var result = new StringBuilder(source.Length + 256);
        var position = 0;
        foreach (var (start, end, replacement) in edits.OrderBy(e => e.Start).ThenBy(e => e.End))
        {
            result.Append(source, position, start - position).Append(replacement);
            position = end;
        }
        result.Append(source, position, source.Length - position);
        return result.ToString();
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

    private static void Verify(ScheduleDocument before, string text, IReadOnlyCollection<TaskDefinition> upserts, IReadOnlyCollection<string> deletes)
    {
        var expected = before.Entries.Where(e => e.Task is not null).ToDictionary(e => e.Id, e => e.Task!.ContentHash, StringComparer.Ordinal);
        foreach (var id in deletes) expected.Remove(id);
        foreach (var task in upserts) expected[task.Id] = task.ContentHash;
        var after = ScheduleLoader.Parse(text, before.Path);
        var actual = after.Entries.Where(e => e.Task is not null).ToDictionary(e => e.Id, e => e.Task!.ContentHash, StringComparer.Ordinal);
        var fileProblems = after.Problems.Where(p => p.TaskId is null).ToList();
        if (fileProblems.Count > 0 || actual.Count != expected.Count || expected.Any(kv => !actual.TryGetValue(kv.Key, out var h) || h != kv.Value))
            throw new InvalidOperationException(
                $"internal error: the written-back text of {before.Path} does not hold the expected tasks; nothing was written. "
                + string.Join("; ", fileProblems.Select(p => p.Format(before.Path))));
    }

    /// <summary>Renders "id:" and its fields as a block mapping at the given indent, without a trailing newline.</summary>
    public static void RenderTask(StringBuilder text, TaskDefinition task, int indent, string defaultTimezone, bool skipFirstIndent = false)
    {
        var pad = new string(' ', indent);
        var child = new string(' ', indent + 2);
        if (!skipFirstIndent) text.Append(pad);
        text.Append(Key(task.Id)).Append(':');
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
        return ScheduleLoader.Resolve(new Scalar(value)) == ScheduleLoader.PlainKind.String;
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
