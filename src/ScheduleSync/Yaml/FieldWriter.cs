using System.Collections.Immutable;
using System.Text;
using ScheduleSync.Tasks;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using static ScheduleSync.Yaml.ScheduleWriter;

namespace ScheduleSync.Yaml;

/// <summary>
/// The field-by-field edits of one changed task (SPEC §2 step 5): only the fields whose values changed are touched,
/// each in the style it is written in. A changed scalar keeps its quoting (plain, single, double; quoted only when the
/// new value needs it) and its line's trailing comment (at its column while the line is not longer); a block scalar
/// stays a block scalar of its kind; block <c>args</c> and <c>tags</c> gain, lose or change single lines; flow ones keep
/// their order and spacing; a field that appears is inserted after the field that precedes it in the canonical
/// order; a field that disappears loses its own lines and the comment lines directly above it.
/// </summary>
internal static class FieldWriter
{
    /// <summary>
    /// The edits that turn the entry's text into <paramref name="task"/>, as (start, end, text) in the source; null (with
    /// the reason, if it is worth a warning) when the task cannot be edited in place. The caller checks the result.
    /// </summary>
    public static (List<(int Start, int End, string Text)>? Edits, string? Reason) Edit(string source, TaskEntry entry, TaskDefinition task, string defaultTimezone, string lineBreak)
    {
        if (entry.Task is not { } old || entry.Layout is not { Fields.Count: > 0 } layout) return (null, null);
        if (layout.IsFlow) return (null, $"task '{task.Id}' is written as a flow mapping ({{ … }}), which cannot be edited field by field");
        if (layout.HasExplicitKey) return (null, $"task '{task.Id}' is written with explicit '?' keys, which cannot be edited field by field");
        var writer = new Writer(source, entry, layout, lineBreak);
        foreach (var taskField in TaskFields.All)
        {
            if (taskField.Equal(old, task)) continue;
            var field = layout.Find(taskField.Name);
            var isDefault = taskField.IsDefault(task, defaultTimezone);
            if (field is not null)
            {
                if (isDefault) writer.Remove(field);
                else writer.Change(field, taskField, old, task);
            }
            else if (!isDefault)
            {
                writer.Insert(taskField, task);
            }
        }
        return (writer.Edits, null);
    }

    private sealed class Writer(string source, TaskEntry entry, TaskLayout layout, string lineBreak)
    {
        public List<(int Start, int End, string Text)> Edits { get; } = [];

        private int Abs(int relative) => entry.KeyIndex + relative;

        private int FieldIndent => Indent(Abs(layout.Fields[0].KeyStart));

        private int Indent(int index)
        {
            var start = LineStart(source, index);
            var i = start;
            while (i < source.Length && source[i] == ' ') i++;
            return i - start;
        }

        /// <summary>Index of the end of the line's content (before its line break).</summary>
        private int ContentEnd(int index)
        {
            var end = source.IndexOf('\n', index);
            if (end < 0) return source.Length;
            return end > index && source[end - 1] == '\r' ? end - 1 : end;
        }

        public void Remove(FieldLayout field)
        {
            var key = Abs(field.KeyStart);
            var previous = layout.Fields.Where(f => Abs(f.ValueEnd) <= key).Select(f => Abs(f.ValueEnd)).DefaultIfEmpty(entry.KeyIndex).Max();
            RemoveLines(key, Abs(field.ValueEnd), LineEnd(source, previous));
        }

        /// <summary>Removes the lines from the one holding <paramref name="from"/> to the one holding <paramref name="to"/>, with their own comment lines above.</summary>
        private void RemoveLines(int from, int to, int floor)
        {
            // From the line break before the first line to the end of the last line's content: the lines go, the
            // line break after them stays (so a last line without one is removed cleanly too).
            var start = OwnCommentStart(source, LineStart(source, from), floor);
            start -= start >= 2 && source[start - 2] == '\r' ? 2 : 1;
            Edits.Add((start, ContentEnd(to), ""));
        }

        public void Insert(TaskField inserted, TaskDefinition task)
        {
            var order = TaskFields.IndexOf(inserted.Name);
            FieldLayout? after = null;
            foreach (var field in layout.Fields)
            {
                var index = TaskFields.IndexOf(field.Name);
                if (index < order && (after is null || index > TaskFields.IndexOf(after.Name))) after = field;
            }
            InsertLines(after is null ? entry.KeyIndex : Abs(after.ValueEnd), [new string(' ', FieldIndent) + inserted.Name + ": " + CanonicalValue(task, inserted)]);
        }

        /// <summary>Inserts lines after the line that holds <paramref name="index"/> (at the end of its content, each line after a line break).</summary>
        private void InsertLines(int index, IEnumerable<string> lines)
        {
            var position = ContentEnd(index);
            Edits.Add((position, position, string.Concat(lines.Select(line => lineBreak + line))));
        }

        public void Change(FieldLayout field, TaskField taskField, TaskDefinition old, TaskDefinition task)
        {
            switch (taskField.Kind)
            {
                case FieldKind.Args: ChangeArgs(field, old.Args, task); break;
                case FieldKind.Tags: ChangeTags(field, old.Tags, task.Tags); break;
                // A field that becomes null is at its default and removed, not changed: the value here is text.
                case FieldKind.Text or FieldKind.OptionalText: ChangeText(field, (string)taskField.Value(task)!); break;
                default: ReplaceValue(field, CanonicalValue(task, taskField)); break;
            }
        }

        private void ReplaceValue(FieldLayout field, string text)
        {
            var (start, end) = (Abs(field.ValueStart), Abs(field.ValueEnd));
            Replace(start, end, start == end ? " " + text : text);
        }

        /// <summary>Replaces text and keeps a trailing comment after <paramref name="tail"/> (default: the end) at its column when it can.</summary>
        private void Replace(int start, int end, string text, int? tail = null)
        {
            var after = tail ?? end;
            var lineEnd = ContentEnd(after);
            var blanks = 0;
            while (after + blanks < lineEnd && source[after + blanks] is ' ' or '\t') blanks++;
            if (blanks == 0 || after + blanks >= lineEnd || source[after + blanks] != '#')
            {
                Edits.Add((start, end, text));
                return;
            }
            var commentColumn = after + blanks - LineStart(source, after);
            var newline = text.LastIndexOf('\n');
            var tailColumn = (newline >= 0 ? text.Length - newline - 1 : start - LineStart(source, start) + text.Length) + (after - end);
            var padding = new string(' ', Math.Max(1, commentColumn - tailColumn));
            if (after == end)
            {
                Edits.Add((start, end + blanks, text + padding));
            }
            else
            {
                Edits.Add((start, end, text));
                Edits.Add((after, after + blanks, padding));
            }
        }

        private void ChangeText(FieldLayout field, string value)
        {
            if (field.Style is ValueStyle.Literal or ValueStyle.Folded && ChangeBlock(field, value)) return;
            Replace(Abs(field.ValueStart), Abs(field.ValueEnd), Styled(value, field.Style, flow: false));
        }

        /// <summary>A block scalar keeps its kind (and a comment on its header line) when the new value can be written so.</summary>
        private bool ChangeBlock(FieldLayout field, string value)
        {
            var start = Abs(field.ValueStart);
            var end = Abs(field.ValueEnd);
            var headerEnd = ContentEnd(start);
            var indent = FieldIndentOf(field) + 2;
            if (end > headerEnd)
            {
                // Keep the indentation of the old content.
                var first = NextLine(headerEnd);
                while (first < end && string.IsNullOrWhiteSpace(source[first..ContentEnd(first)])) first = NextLine(first);
                if (first < end) indent = Indent(first);
            }
            if (RenderBlock(value, field.Style == ValueStyle.Literal, new string(' ', indent)) is not var (header, lines)) return false;
            var token = start;
            while (token < headerEnd && !char.IsWhiteSpace(source[token])) token++;
            Edits.Add((start, token, header));
            var body = string.Concat(lines.Select(l => lineBreak + l));
            Edits.Add((headerEnd, Math.Max(headerEnd, end), body));
            return true;
        }

        private int NextLine(int index)
        {
            var newline = source.IndexOf('\n', index);
            return newline < 0 ? source.Length : newline + 1;
        }

        private int FieldIndentOf(FieldLayout field) => Indent(Abs(field.KeyStart));

        private void ChangeArgs(FieldLayout field, ImmutableSortedDictionary<string, ArgValue> old, TaskDefinition task)
        {
            var args = task.Args;
            var items = field.Items;
            if (items.Count == 0 || field.Style is not (ValueStyle.BlockMapping or ValueStyle.FlowMapping))
            {
                ReplaceValue(field, CanonicalValue(task, TaskFields.Args));
                return;
            }
            var added = args.Where(a => !items.Any(i => i.Key == a.Key)).ToList();
            if (field.Style == ValueStyle.BlockMapping)
            {
                var floor = LineEnd(source, Abs(field.KeyStart));
                foreach (var item in items)
                {
                    if (!args.TryGetValue(item.Key!, out var value))
                        RemoveLines(Abs(item.KeyStart), Abs(item.ValueEnd), floor);
                    else if (!old.TryGetValue(item.Key!, out var before) || before != value)
                        Replace(Abs(item.ValueStart), Abs(item.ValueEnd), Styled(value, item.Style, flow: false));
                    floor = LineEnd(source, Abs(item.ValueEnd));
                }
                if (added.Count > 0)
                {
                    var prefix = new string(' ', Indent(Abs(items[0].KeyStart)));
                    InsertLines(Abs(items[^1].ValueEnd),
                        added.Select(a => prefix + Key(a.Key) + ": " + Styled(a.Value, ValueStyle.Plain, flow: false)));
                }
                return;
            }
            var tokens = new List<(int? Old, string Text)>();
            for (var i = 0; i < items.Count; i++)
            {
                var item = items[i];
                if (!args.TryGetValue(item.Key!, out var value)) continue;
                var (keyStart, valueStart, valueEnd) = (Abs(item.KeyStart), Abs(item.ValueStart), Abs(item.ValueEnd));
                var text = old.TryGetValue(item.Key!, out var before) && before == value
                    ? source[keyStart..valueEnd]
                    : source[keyStart..valueStart] + Styled(value, item.Style, flow: true);
                tokens.Add((i, text));
            }
            tokens.AddRange(added.Select(a => ((int?)null, Key(a.Key, flow: true) + ": " + Styled(a.Value, ValueStyle.Plain, flow: true))));
            ReplaceStretch(field, tokens);
        }

        private void ChangeTags(FieldLayout field, ImmutableArray<string> old, ImmutableArray<string> tags)
        {
            var items = field.Items;
            if (items.Count == 0 || items.Count != old.Length || field.Style is not (ValueStyle.BlockSequence or ValueStyle.FlowSequence))
            {
                ReplaceValue(field, "[" + string.Join(", ", tags.Select(t => Scalar(t, flow: true))) + "]");
                return;
            }
            var ops = Diff(old, tags);
            if (field.Style == ValueStyle.FlowSequence)
            {
                var tokens = new List<(int? Old, string Text)>();
                foreach (var (o, n) in ops)
                {
                    if (n is not { } j) continue;
                    if (o is not { } i) tokens.Add((null, Scalar(tags[j], flow: true)));
                    else if (old[i] == tags[j]) tokens.Add((i, source[Abs(items[i].ValueStart)..Abs(items[i].ValueEnd)]));
                    else tokens.Add((i, Styled(tags[j], items[i].Style, flow: true)));
                }
                ReplaceStretch(field, tokens);
                return;
            }
            var prefix = source[LineStart(source, Abs(items[0].ValueStart))..Abs(items[0].ValueStart)];
            var floor = LineEnd(source, Abs(field.KeyStart));
            var anchor = -1;
            var pending = new List<string>();
            void Flush()
            {
                if (pending.Count == 0) return;
                var lines = pending.Select(t => prefix + Scalar(t)).ToList();
                if (anchor < 0) Edits.Add((LineStart(source, Abs(items[0].ValueStart)), LineStart(source, Abs(items[0].ValueStart)), string.Concat(lines.Select(l => l + lineBreak))));
                else InsertLines(Abs(items[anchor].ValueEnd), lines);
                pending.Clear();
            }
            foreach (var (o, n) in ops)
            {
                if (o is { } i)
                {
                    Flush();
                    if (n is { } j)
                    {
                        if (old[i] != tags[j]) Replace(Abs(items[i].ValueStart), Abs(items[i].ValueEnd), Styled(tags[j], items[i].Style, flow: false));
                        anchor = i;
                    }
                    else
                    {
                        RemoveLines(Abs(items[i].ValueStart), Abs(items[i].ValueEnd), floor);
                    }
                    floor = LineEnd(source, Abs(items[i].ValueEnd));
                }
                else
                {
                    pending.Add(tags[n!.Value]);
                }
            }
            Flush();
        }

        /// <summary>Rewrites a flow collection's entries (from the first to the last) keeping the spelling and separators of those kept.</summary>
        private void ReplaceStretch(FieldLayout field, List<(int? Old, string Text)> tokens)
        {
            var items = field.Items;
            string Separator(int i) => source[Abs(items[i].ValueEnd)..Abs(items[i + 1].KeyStart)];
            var standard = items.Count >= 2 && !Separator(0).Contains('#') ? Separator(0) : ", ";
            var text = new StringBuilder();
            int? previous = null;
            foreach (var (old, token) in tokens)
            {
                if (text.Length > 0)
                    text.Append(previous is { } p && old is { } q && q > p ? Separator(p) : standard);
                text.Append(token);
                previous = old;
            }
            Replace(Abs(items[0].KeyStart), Abs(items[^1].ValueEnd), text.ToString(), Abs(field.ValueEnd));
        }
    }

    /// <summary>
    /// The steps from one list to another, keeping the longest common subsequence: (old, new) for a kept or replaced item,
    /// (old, null) for a removed one, (null, new) for an added one. In a run of changes, removals and additions pair up
    /// as replacements first (so a renamed tag is one changed line).
    /// </summary>
    internal static List<(int? Old, int? New)> Diff(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var lcs = new int[a.Count + 1, b.Count + 1];
        for (var i = a.Count - 1; i >= 0; i--)
            for (var j = b.Count - 1; j >= 0; j--)
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
        var result = new List<(int?, int?)>();
        var removed = new List<int>();
        var added = new List<int>();
        void Flush()
        {
            var pairs = Math.Min(removed.Count, added.Count);
            for (var k = 0; k < pairs; k++) result.Add((removed[k], added[k]));
            for (var k = pairs; k < removed.Count; k++) result.Add((removed[k], null));
            for (var k = pairs; k < added.Count; k++) result.Add((null, added[k]));
            removed.Clear();
            added.Clear();
        }
        int x = 0, y = 0;
        while (x < a.Count || y < b.Count)
        {
            if (x < a.Count && y < b.Count && a[x] == b[y] && lcs[x, y] == lcs[x + 1, y + 1] + 1)
            {
                Flush();
                result.Add((x++, y++));
            }
            else if (y < b.Count && (x == a.Count || lcs[x, y + 1] >= lcs[x + 1, y])) added.Add(y++);
            else removed.Add(x++);
        }
        Flush();
        return result;
    }

    private static string Styled(ArgValue value, ValueStyle style, bool flow) =>
        value.Kind == ArgKind.String ? Styled(value.Text, style, flow) : value.Text;

    /// <summary>A string in the style it had, when that style can hold it; else the safe style (plain when it reads back the same, else double-quoted).</summary>
    internal static string Styled(string value, ValueStyle style, bool flow) => style switch
    {
        ValueStyle.SingleQuoted when CanSingleQuote(value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'",
        ValueStyle.SingleQuoted or ValueStyle.DoubleQuoted => Quoted(value),
        _ => Scalar(value, flow),
    };

    internal static bool CanSingleQuote(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])) { i++; continue; }
            if (c < ' ' || c is '\u007f' or (>= '\u0080' and <= '\u00a0') or '\u2028' or '\u2029' or '\ufeff' || char.IsSurrogate(c)) return false;
        }
        // Leading or trailing blanks survive single quotes on one line, but a reader may trim them: keep those double-quoted.
        return value.Length > 0 && value[0] != ' ' && value[^1] != ' ';
    }

    /// <summary>
    /// A value as a literal (<c>|</c>) or folded (<c>&gt;</c>) block scalar at the given indentation: the header and the
    /// content lines; null when the value cannot be written so (it would need escapes, keep-chomping or an indentation
    /// indicator, or, folded, has lines starting with blanks). The result is checked by reading it back.
    /// </summary>
    internal static (string Header, List<string> Lines)? RenderBlock(string value, bool literal, string indent)
    {
        if (value.Length == 0 || value.EndsWith("\n\n", StringComparison.Ordinal)) return null;
        var chomp = value.EndsWith('\n') ? "" : "-";
        var body = chomp.Length == 0 ? value[..^1] : value;
        if (body.Length == 0) return null;
        for (var i = 0; i < body.Length; i++)
        {
            var c = body[i];
            if (c == '\n') continue;
            if (char.IsHighSurrogate(c) && i + 1 < body.Length && char.IsLowSurrogate(body[i + 1])) { i++; continue; }
            if ((c < ' ' && c != '\t') || c is '\u007f' or (>= '\u0080' and <= '\u009f') or '\u2028' or '\u2029' or '\ufeff' || char.IsSurrogate(c)) return null;
        }
        var parts = body.Split('\n');
        if (parts[0].Length == 0 || char.IsWhiteSpace(parts[0][0])) return null;
        if (parts.Any(p => p.Length > 0 && (char.IsWhiteSpace(p[^1]) || (!literal && char.IsWhiteSpace(p[0]))))) return null;
        var lines = new List<string>(parts.Length * 2);
        if (literal)
        {
            lines.AddRange(parts.Select(p => p.Length == 0 ? "" : indent + p));
        }
        else
        {
            // Folded: a single line break between two lines reads as a space, so each break in the value is an empty line.
            lines.Add(indent + parts[0]);
            foreach (var part in parts.Skip(1))
            {
                lines.Add("");
                if (part.Length > 0) lines.Add(indent + part);
            }
        }
        var header = (literal ? "|" : ">") + chomp;
        return ReadsBack("k: " + header + "\n" + string.Join("\n", lines) + "\n", value) ? (header, lines) : null;
    }

    private static bool ReadsBack(string yaml, string value)
    {
        try
        {
            var parser = new Parser(new StringReader(yaml));
            while (parser.MoveNext())
                if (parser.Current is Scalar { Value: "k" }) return parser.MoveNext() && parser.Current is Scalar s && s.Value == value;
            return false;
        }
        catch (YamlException)
        {
            return false;
        }
    }
}
