using System.Text;
using CsCheck;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// Field-by-field write-back by property (SPEC §2 step 5): random files written in random styles (plain, single- and
/// double-quoted, literal and folded scalars, block and flow args and tags, trailing and full-line comments, explicit
/// default values, LF or CRLF) get random single- and multi-field edits. The result parses to exactly the intended
/// tasks, needs no fallback, and every line outside the edited fields is unchanged and in order.
/// </summary>
public class FieldWriteBackPropertyTests
{
    private const string Path = "schedule_config.yml";

    private static readonly Gen<(TaskDefinition[] Tasks, int[] Choices, TaskDefinition[] Edited)> Scenario =
        Gen.Select(TaskGenerators.Tasks(1, 5), Gen.Int[0, 1_000_000].Array[600], Gen.Int[1, 31])
            .SelectMany((tasks, choices, mask) => TaskGenerators.All([.. tasks.Select((t, i) =>
                    (mask & (1 << i)) != 0 || i == tasks.Length - 1 && (mask & ((1 << tasks.Length) - 1)) == 0
                        ? TaskGenerators.Changed(t, maxFields: 1 + choices[i] % 4)
                        : Gen.Const(t))])
                .Select(edited => (tasks, choices, edited)));

    [Fact]
    public void Random_field_edits_to_files_in_random_styles_change_only_the_edited_fields()
    {
        Scenario.Sample((tasks, choices, edited) =>
        {
            var styles = new Choices(choices);
            var zone = styles.Pick("UTC", "UTC", "Europe/Berlin");
            var crlf = styles.Next(4) == 0;
            var text = StyledFile(tasks, zone, styles, crlf);
            var document = ScheduleLoader.Parse(text, Path);
            Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()) + "\n" + text);
            Assert.Equal(Model(tasks), Model(document.ValidTasks));

            var changed = edited.Where((t, i) => t.ContentHash != tasks[i].ContentHash).ToList();
            var written = ScheduleWriter.Write(document, changed, []);
            var log = $"--- before:\n{text}\n--- after:\n{written.Text}\n--- changed: {string.Join(", ", changed.Select(t => t.Id))}";

            Assert.True(written.Warnings.Count == 0 && written.Failed.Count == 0, string.Join("\n", written.Warnings) + "\n" + log);
            var after = ScheduleLoader.Parse(written.Text, Path);
            Assert.True(after.IsValid, string.Join("\n", after.FormatProblems()) + "\n" + log);
            Assert.True(Model(edited).SequenceEqual(Model(after.ValidTasks)), "the file does not hold the intended tasks\n" + log);
            if (crlf) Assert.DoesNotMatch("[^\r]\n", written.Text);

            // Outside the edited fields, every line is kept, in order.
            var oldLines = text.Split('\n');
            var newLines = written.Text.Split('\n');
            var oldEdited = EditedLines(text, document, changed, tasks, removedFrom: after);
            var newEdited = EditedLines(written.Text, after, changed, tasks, removedFrom: null);
            var keptBefore = oldLines.Where((_, i) => !oldEdited.Contains(i)).ToList();
            var keptAfter = newLines.Where((_, i) => !newEdited.Contains(i)).ToList();
            Assert.True(keptBefore.SequenceEqual(keptAfter),
                "lines outside the edited fields changed\n--- kept before:\n" + string.Join('\n', keptBefore) + "\n--- kept after:\n" + string.Join('\n', keptAfter) + "\n" + log);

            // The document derived from the edits (what the next sync starts from) is the one parsing gives.
            Assert.Equal(Shape(after), Shape(written.Document));
        }, iter: 400);
    }

    private static List<(string, int, int, int, int, string?, string)> Shape(ScheduleDocument document) =>
        [.. document.Entries.Select(e => (e.Id, e.KeyIndex, e.EndIndex, e.Line, e.Column, e.Task?.ContentHash, Describe(e.Layout)))];

    private static string Describe(TaskLayout? layout) => layout is null ? "-" :
        $"{layout.IsFlow}/{layout.HasExplicitKey}: " + string.Join("; ", layout.Fields.Select(f =>
            $"{f.Name} {f.KeyStart}-{f.KeyEnd} {f.ValueStart}-{f.ValueEnd} {f.Style} [{string.Join(",", f.Items)}]"));

    private static List<KeyValuePair<string, string>> Model(IEnumerable<TaskDefinition> tasks) =>
        [.. tasks.Select(t => KeyValuePair.Create(t.Id, t.ContentHash)).OrderBy(kv => kv.Key, StringComparer.Ordinal)];

    /// <summary>The lines of the fields whose values changed (for removed fields in the old text, with their comment lines above).</summary>
    private static HashSet<int> EditedLines(string text, ScheduleDocument document, List<TaskDefinition> changed, TaskDefinition[] before, ScheduleDocument? removedFrom)
    {
        var lines = new HashSet<int>();
        var all = text.Split('\n');
        foreach (var task in changed)
        {
            var old = before.Single(t => t.Id == task.Id);
            var entry = document.Entries.Single(e => e.Id == task.Id);
            foreach (var field in entry.Layout!.Fields)
            {
                if (TaskFields.Value(old, field.Name) == TaskFields.Value(task, field.Name)) continue;
                var first = LineOf(text, entry.KeyIndex + field.KeyStart);
                var last = LineOf(text, entry.KeyIndex + Math.Max(field.ValueStart, field.ValueEnd - 1));
                for (var line = first; line <= last; line++) lines.Add(line);
                if (removedFrom?.Entries.Single(e => e.Id == task.Id).Layout!.Find(field.Name) is null && removedFrom is not null)
                {
                    // Comment lines above the removed field go with it — not the lines of the value before it (a folded
                    // scalar's line may start with '#').
                    var floor = entry.Layout.Fields.Where(f => f.KeyStart < field.KeyStart)
                        .Select(f => LineOf(text, entry.KeyIndex + Math.Max(f.ValueStart, f.ValueEnd - 1)))
                        .DefaultIfEmpty(LineOf(text, entry.KeyIndex)).Max();
                    for (var line = first - 1; line > floor && all[line].TrimStart().StartsWith('#'); line--) lines.Add(line);
                }
            }
        }
        return lines;
    }

    private static int LineOf(string text, int index) => text.AsSpan(0, Math.Clamp(index, 0, text.Length)).Count('\n');

    private sealed class Choices(int[] values)
    {
        private int _next;
        public int Next(int count) => values[_next++ % values.Length] % count;
        public bool Chance(int inEvery) => Next(inEvery) == 0;
        public T Pick<T>(params T[] options) => options[Next(options.Length)];
    }

    private static readonly string[] Comments = ["# note", "# key: value", "#", "# é 日本", "#   schedule: \"0 0 * * *\""];

    /// <summary>A valid file holding the tasks, each field written in a randomly chosen style.</summary>
    private static string StyledFile(TaskDefinition[] tasks, string zone, Choices styles, bool crlf)
    {
        var text = new StringBuilder("# generated in random styles\nversion: 1\n");
        if (zone != "UTC") text.Append("defaults:\n  timezone: ").Append(zone).Append('\n');
        text.Append("tasks:\n");
        string Trailing() => styles.Chance(2) ? new string(' ', 1 + styles.Next(6)) + styles.Pick(Comments) : "";
        foreach (var task in tasks)
        {
            if (styles.Chance(3)) text.Append("  ").Append(styles.Pick(Comments)).Append('\n');
            text.Append("  ").Append(ScheduleWriter.Key(task.Id)).Append(':').Append(Trailing()).Append('\n');
            foreach (var taskField in TaskFields.All)
            {
                var field = taskField.Name;
                var isDefault = taskField.IsDefault(task, zone);
                if (isDefault && (field is "description" or "timeout_seconds" || !styles.Chance(6))) continue;
                if (styles.Chance(5)) text.Append("    ").Append(styles.Pick(Comments)).Append('\n');
                text.Append("    ").Append(field).Append(':');
                switch (field)
                {
                    case "args":
                        if (task.Args.Count > 0 && styles.Chance(2))
                        {
                            text.Append(Trailing()).Append('\n');
                            foreach (var (key, value) in task.Args)
                                text.Append("      ").Append(ScheduleWriter.Key(key)).Append(": ").Append(Arg(value, styles, flow: false)).Append(Trailing()).Append('\n');
                        }
                        else
                        {
                            text.Append(task.Args.Count == 0 ? " {}" : " { " + string.Join(", ", task.Args.Select(a => ScheduleWriter.Key(a.Key, flow: true) + ": " + Arg(a.Value, styles, flow: true))) + " }")
                                .Append(Trailing()).Append('\n');
                        }
                        break;
                    case "tags":
                        if (task.Tags.Length > 0 && styles.Chance(2))
                        {
                            text.Append(Trailing()).Append('\n');
                            foreach (var tag in task.Tags) text.Append("      - ").Append(ScheduleWriter.Scalar(tag)).Append(Trailing()).Append('\n');
                        }
                        else
                        {
                            text.Append(" [").Append(string.Join(", ", task.Tags.Select(t => ScheduleWriter.Scalar(t, flow: true)))).Append(']').Append(Trailing()).Append('\n');
                        }
                        break;
                    case "name" or "description" or "schedule" or "timezone" or "command":
                        var text1 = TaskFields.Value(task, field) is { } json ? System.Text.Json.JsonSerializer.Deserialize<string>(json)! : "";
                        var style = styles.Next(4);
                        if (style == 3 && FieldWriter.RenderBlock(text1, styles.Chance(2), "      ") is var (header, lines))
                        {
                            text.Append(' ').Append(header).Append(Trailing()).Append('\n');
                            foreach (var line in lines) text.Append(line).Append('\n');
                            break;
                        }
                        text.Append(' ').Append(Text(text1, style, flow: false)).Append(Trailing()).Append('\n');
                        break;
                    default:
                        text.Append(' ').Append(ScheduleWriter.CanonicalValue(task, taskField)).Append(Trailing()).Append('\n');
                        break;
                }
            }
            if (styles.Chance(3)) text.Append('\n');
        }
        text.Append("# end\n");
        return crlf ? text.ToString().Replace("\n", "\r\n", StringComparison.Ordinal) : text.ToString();
    }

    private static string Arg(ArgValue value, Choices styles, bool flow) =>
        value.Kind == ArgKind.String ? Text(value.Text, styles.Next(3), flow) : value.Text;

    private static string Text(string value, int style, bool flow) => style switch
    {
        1 when FieldWriter.CanSingleQuote(value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'",
        2 => ScheduleWriter.Quoted(value),
        _ => ScheduleWriter.Scalar(value, flow),
    };
}
