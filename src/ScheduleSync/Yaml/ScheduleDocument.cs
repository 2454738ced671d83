using ScheduleSync.Tasks;

namespace ScheduleSync.Yaml;

/// <summary>One problem found in a schedule file; line and column are 1-based.</summary>
public sealed record YamlProblem(int Line, int Column, string Message, string? TaskId = null)
{
    public string Format(string path) => $"{path}:{Line}:{Column}: {Message}";
}

/// <summary>Where one task sits in the text: what minimal write-back needs to replace or remove it.</summary>
/// <param name="KeyIndex">Character index of the task's key.</param>
/// <param name="EndIndex">Character index just past the last character of the task's value.</param>
/// <param name="Layout">Where each field sits, for field-by-field write-back; null when the task is not a mapping.</param>
internal sealed record TaskEntry(string Id, TaskDefinition? Task, int KeyIndex, int EndIndex, int Line, int Column, TaskLayout? Layout = null);

/// <summary>How a value is written in the file: write-back keeps the style of what it edits.</summary>
internal enum ValueStyle { Empty, Plain, SingleQuoted, DoubleQuoted, Literal, Folded, BlockMapping, FlowMapping, BlockSequence, FlowSequence, Other }

/// <summary>
/// One field of a task in the text. Every index is relative to the task's key (<see cref="TaskEntry.KeyIndex"/>), so a
/// layout stays right when text before the task changes length. The value ends at its last content character (a block
/// scalar's trailing line breaks and a trailing comment are not part of it).
/// </summary>
internal sealed record FieldLayout(string Name, int KeyStart, int KeyEnd, int ValueStart, int ValueEnd, ValueStyle Style, IReadOnlyList<ItemLayout> Items);

/// <summary>One <c>args</c> entry (with its key) or one <c>tags</c> item (no key), indices relative to the task's key.</summary>
internal sealed record ItemLayout(string? Key, int KeyStart, int ValueStart, int ValueEnd, ValueStyle Style);

/// <summary>The fields of one task as written; <paramref name="IsFlow"/> when the task is a flow mapping (<c>a: { … }</c>).</summary>
internal sealed record TaskLayout(bool IsFlow, bool HasExplicitKey, IReadOnlyList<FieldLayout> Fields)
{
    public FieldLayout? Find(string name)
    {
        foreach (var field in Fields)
            if (field.Name == name) return field;
        return null;
    }
}

/// <summary>How the <c>tasks:</c> section is written, so new tasks can be appended in the person's layout.</summary>
/// <param name="KeyIndex">Index of the <c>tasks</c> key, -1 when the file has none.</param>
/// <param name="ValueEndIndex">Index just past the section's last character (its last task, or the key's value).</param>
/// <param name="IsBlockMapping">True when the tasks are a block mapping that entries can be appended to.</param>
/// <param name="EntryIndent">Column (0-based) of the task keys; 2 when there is no task yet.</param>
internal sealed record TasksSection(int KeyIndex, int ValueStartIndex, int ValueEndIndex, bool IsBlockMapping, int EntryIndent);

/// <summary>
/// A loaded <c>schedule_config.yml</c>: every task (valid or not) with its place in the text, the defaults, and every
/// problem. A file is accepted only as a whole: <see cref="IsValid"/> is false when any problem was found.
/// </summary>
internal sealed class ScheduleDocument
{
    public required string Path { get; init; }
    public required string Text { get; init; }
    public string? DefaultTimezone { get; init; }
    public required IReadOnlyList<TaskEntry> Entries { get; init; }
    public required IReadOnlyList<YamlProblem> Problems { get; init; }
    public TasksSection? Tasks { get; init; }

    /// <summary>The file's top level is a flow mapping (a JSON-style document): it cannot be edited line by line.</summary>
    public bool IsFlowRoot { get; init; }

    /// <summary>The file's line break: CRLF when its first line ends so, else LF. Write-back uses it for every line it adds.</summary>
    public string LineBreak => Text.IndexOf('\n') is var i and > 0 && Text[i - 1] == '\r' ? "\r\n" : "\n";

    /// <summary>True when a problem concerns the file as a whole (syntax, structure, size, encoding) rather than one task.</summary>
    public bool HasFileProblems => Problems.Any(p => p.TaskId is null);

    public bool IsValid => Problems.Count == 0;

    public string EffectiveDefaultTimezone => DefaultTimezone ?? "UTC";

    /// <summary>The valid tasks, by id.</summary>
    public IEnumerable<TaskDefinition> ValidTasks => Entries.Where(e => e.Task is not null).Select(e => e.Task!);

    /// <summary>Ids of tasks that are present but invalid.</summary>
    public IEnumerable<string> InvalidTaskIds => Entries.Where(e => e.Task is null).Select(e => e.Id);

    public IEnumerable<string> FormatProblems() => Problems.Select(p => p.Format(Path));
}
