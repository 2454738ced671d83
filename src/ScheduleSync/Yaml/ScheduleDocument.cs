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
internal sealed record TaskEntry(string Id, TaskDefinition? Task, int KeyIndex, int EndIndex, int Line, int Column);

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
