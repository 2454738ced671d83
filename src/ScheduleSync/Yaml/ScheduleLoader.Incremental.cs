using System.Text;

namespace ScheduleSync.Yaml;

/// <summary>
/// Loading a new version of a file from the document of the previous one: when the change is provably local to a few
/// task blocks under <c>tasks:</c>, only those blocks are parsed and validated again; the other entries (and their
/// <see cref="ScheduleSync.Tasks.TaskDefinition"/> objects) are kept, moved by the change's length and line count. The result is
/// the document a full <see cref="Load(ReadOnlySpan{byte}, string, LoaderLimits?, Action{int, int}?)"/> gives; whenever
/// that cannot be shown cheaply (the old or the new text has a problem, the change touches anything but whole task
/// blocks, a duplicate id), the file is parsed in full.
/// </summary>
internal static partial class ScheduleLoader
{
    private const string FragmentHeader = "tasks:\n";

    /// <summary>Like <see cref="Load(ReadOnlySpan{byte}, string, LoaderLimits?, Action{int, int}?)"/>, reusing
    /// <paramref name="previous"/> (an earlier version of the same file) where the change allows.</summary>
    public static ScheduleDocument Reload(ScheduleDocument? previous, ReadOnlySpan<byte> bytes, string path, LoaderLimits? limits = null,
        Action<int, int>? validating = null)
    {
        limits ??= LoaderLimits.Default;
        if (previous is null || previous.Path != path || bytes.Length > limits.MaxFileBytes)
            return Load(bytes, path, limits, validating);
        string text;
        try
        {
            text = StrictUtf8.GetString(bytes.StartsWith("\uFEFF"u8) ? bytes[3..] : bytes);
        }
        catch (DecoderFallbackException)
        {
            return Load(bytes, path, limits, validating); // it says where the bad byte is
        }
        return TryReparse(previous, text, limits) ?? Parse(text, path, limits, validating);
    }

    /// <summary>
    /// The document for <paramref name="text"/> built from <paramref name="old"/> by parsing only the task blocks the
    /// change touches; null when the change is not provably local (the caller then parses the whole text).
    /// </summary>
    /// <remarks>
    /// Why a fragment parses alone as it does in place: a task block runs from the start of its key's line to the start
    /// of the next task key's line (the last one to the end of the file, when only comments follow it). At such a line
    /// start the parser is inside the root block mapping and the <c>tasks</c> block mapping, and the key at the tasks'
    /// indentation closes whatever the previous task left open; <c>"tasks:\n" + fragment</c> puts the parser in the same
    /// state. The fragment must start with a key at that indentation, hold no line less indented (it would leave the
    /// tasks mapping), and end at a line break before the next key: then any construct that would run on into the next
    /// block (an unclosed quote or bracket) meets the end of the fragment and is a problem, and the file is parsed in full.
    /// </remarks>
    internal static ScheduleDocument? TryReparse(ScheduleDocument old, string text, LoaderLimits limits)
    {
        if (!old.IsValid || old.IsFlowRoot || old.Tasks is not { IsBlockMapping: true } section || old.Entries.Count == 0)
            return null;
        var oldText = old.Text;
        if (section.KeyIndex != 0 && oldText[section.KeyIndex - 1] != '\n') return null;
        var entries = old.Entries;
        var indent = section.EntryIndent;
        if (indent < 1) return null; // a line at column 0 would be a top-level key, '---' or '...'

        var prefix = oldText.AsSpan().CommonPrefixLength(text);
        if (prefix == oldText.Length && prefix == text.Length)
            return old;
        var suffix = CommonSuffixLength(oldText.AsSpan(prefix), text.AsSpan(prefix));
        var changeEnd = oldText.Length - suffix; // exclusive, in the old text

        var first = BlockAt(oldText, entries, indent, prefix);
        var last = changeEnd > prefix ? BlockAt(oldText, entries, indent, changeEnd - 1) : first;
        if (first < 0 || last < 0) return null;
        var regionStart = BlockStart(oldText, entries[first], indent);
        var isTail = last == entries.Count - 1;
        var regionEnd = isTail ? oldText.Length : BlockStart(oldText, entries[last + 1], indent);
        if (regionStart < 0 || regionEnd < 0) return null;
        // Only comments may follow the last task: another top-level key after tasks would be read into the fragment.
        if (isTail && !OnlyCommentsAndBlanks(oldText.AsSpan(entries[^1].EndIndex))) return null;

        var delta = text.Length - oldText.Length;
        var fragment = text.AsSpan(regionStart, regionEnd + delta - regionStart);
        if (fragment.IsEmpty)
        {
            // Whole blocks removed: fine in the middle; at either end the section's own span would change.
            if (first == 0 || isTail) return null;
        }
        else if (!IsWholeBlocks(fragment, indent, endsWithBreak: !isTail))
            return null;

        var parsed = fragment.IsEmpty
            ? null
            : new Walker(string.Concat(FragmentHeader, fragment), old.Path, limits) { InheritedTimezone = old.DefaultTimezone }.Run();
        if (parsed is not null && (parsed.Problems.Count > 0 || parsed.Tasks is not { IsBlockMapping: true } fragmentSection
            || fragmentSection.EntryIndent != indent || parsed.Entries.Count == 0 || parsed.IsFlowRoot))
            return null;

        // A new id that another task already has: the full parse reports the duplicate where it is.
        var replaced = new Dictionary<string, TaskEntry>(last - first + 1, StringComparer.Ordinal);
        for (var i = first; i <= last; i++) replaced[entries[i].Id] = entries[i];
        // Only ids the region did not have before need looking for (none, when a field is edited).
        var added = parsed?.Entries.Select(e => e.Id).Where(id => !replaced.ContainsKey(id)).ToList() ?? [];
        if (added.Count > 0)
            for (var i = 0; i < entries.Count; i++)
                if (i < first || i > last)
                    foreach (var id in added)
                        if (string.Equals(entries[i].Id, id, StringComparison.Ordinal)) return null;

        var lineOfRegion = entries[first].Line;
        var lineDelta = CountLines(fragment) - CountLines(oldText.AsSpan(regionStart, regionEnd - regionStart));
        var result = new List<TaskEntry>(entries.Count - (last - first + 1) + (parsed?.Entries.Count ?? 0));
        for (var i = 0; i < first; i++) result.Add(entries[i]);
        if (parsed is not null)
        {
            var indexShift = regionStart - FragmentHeader.Length;
            var lineShift = lineOfRegion - 2;
            foreach (var entry in parsed.Entries)
            {
                // An unchanged task keeps its object (and the content hash it has computed).
                var task = entry.Task is { } t && replaced.TryGetValue(entry.Id, out var before) && before.Task is { } kept && kept.Equals(t) ? kept : entry.Task;
                result.Add(entry with { Task = task, KeyIndex = entry.KeyIndex + indexShift, EndIndex = entry.EndIndex + indexShift, Line = entry.Line + lineShift });
            }
        }
        for (var i = last + 1; i < entries.Count; i++)
        {
            var entry = entries[i];
            result.Add(delta == 0 && lineDelta == 0 ? entry : entry with { KeyIndex = entry.KeyIndex + delta, EndIndex = entry.EndIndex + delta, Line = entry.Line + lineDelta });
        }

        var fragmentTasks = parsed?.Tasks;
        var shift = regionStart - FragmentHeader.Length;
        return new ScheduleDocument
        {
            Path = old.Path,
            Text = text,
            DefaultTimezone = old.DefaultTimezone,
            Entries = result,
            Problems = [],
            Tasks = section with
            {
                ValueStartIndex = first == 0 ? fragmentTasks!.ValueStartIndex + shift : section.ValueStartIndex,
                ValueEndIndex = isTail ? fragmentTasks!.ValueEndIndex + shift : section.ValueEndIndex + delta,
            },
            IsFlowRoot = false,
        };
    }

    /// <summary>The block (index into <paramref name="entries"/>) that holds the character at <paramref name="index"/>;
    /// -1 when it lies before the first task's line.</summary>
    private static int BlockAt(string text, IReadOnlyList<TaskEntry> entries, int indent, int index)
    {
        int lo = 0, hi = entries.Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (entries[mid].KeyIndex <= index) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        // In the indentation before the next key: that key's block.
        if (found + 1 < entries.Count && BlockStart(text, entries[found + 1], indent) is var next and >= 0 && next <= index)
            found++;
        return found;
    }

    /// <summary>Start of the line of a task key written at the tasks' indentation; -1 when the key is written otherwise.</summary>
    private static int BlockStart(string text, TaskEntry entry, int indent)
    {
        var start = entry.KeyIndex - indent;
        if (start < 0 || (start > 0 && text[start - 1] != '\n')) return -1;
        for (var i = start; i < entry.KeyIndex; i++)
            if (text[i] != ' ') return -1;
        return start;
    }

    /// <summary>
    /// The fragment starts with a key at <paramref name="indent"/>, has no content line indented less (nor any tab in
    /// an indentation), and ends with a line break when a block follows it.
    /// </summary>
    private static bool IsWholeBlocks(ReadOnlySpan<char> fragment, int indent, bool endsWithBreak)
    {
        if (endsWithBreak && fragment[^1] != '\n') return false;
        var firstLine = true;
        foreach (var line in fragment.EnumerateLines())
        {
            var spaces = 0;
            while (spaces < line.Length && line[spaces] == ' ') spaces++;
            var rest = line[spaces..];
            if (firstLine)
            {
                if (spaces != indent || rest.IsEmpty || rest[0] is '#' or '\t' or '\r') return false;
                firstLine = false;
                continue;
            }
            if (rest.IsEmpty || rest[0] == '#' || (rest.Length == 1 && rest[0] == '\r')) continue;
            if (rest[0] == '\t' || spaces < indent) return false;
        }
        // EnumerateLines also splits at a lone '\r' and at other Unicode line breaks the parser may not: only '\n' here.
        return !fragment.ContainsAny('\u0085', '\u2028', '\u2029') && !ContainsLoneCarriageReturn(fragment);
    }

    private static bool ContainsLoneCarriageReturn(ReadOnlySpan<char> text)
    {
        for (var i = text.IndexOf('\r'); i >= 0; i = text[(i + 1)..].IndexOf('\r') is var next and >= 0 ? i + 1 + next : -1)
            if (i + 1 >= text.Length || text[i + 1] != '\n') return true;
        return false;
    }

    private static bool OnlyCommentsAndBlanks(ReadOnlySpan<char> text)
    {
        foreach (var line in text.EnumerateLines())
        {
            var rest = line.TrimStart(' ');
            if (!rest.IsEmpty && rest[0] != '#' && !(rest.Length == 1 && rest[0] == '\r')) return false;
        }
        return !text.ContainsAny('\u0085', '\u2028', '\u2029') && !text.Contains('\t') && !ContainsLoneCarriageReturn(text);
    }

    private static int CountLines(ReadOnlySpan<char> text) => text.Count('\n');

    private static int CommonSuffixLength(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        var max = Math.Min(a.Length, b.Length);
        var matched = 0;
        // Whole chunks first (vectorised compares), then the chunk that differs character by character.
        const int Chunk = 4096;
        while (matched + Chunk <= max && a.Slice(a.Length - matched - Chunk, Chunk).SequenceEqual(b.Slice(b.Length - matched - Chunk, Chunk)))
            matched += Chunk;
        while (matched < max && a[a.Length - matched - 1] == b[b.Length - matched - 1])
            matched++;
        return matched;
    }
}
