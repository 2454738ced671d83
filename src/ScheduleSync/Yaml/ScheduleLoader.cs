using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using ScheduleSync.Files;
using ScheduleSync.Tasks;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace ScheduleSync.Yaml;

/// <summary>Bounds on what the loader accepts, so hostile input fails fast and small.</summary>
internal sealed record LoaderLimits
{
    public long MaxFileBytes { get; init; } = 16 * 1024 * 1024;
    public int MaxDepth { get; init; } = 32;
    public int MaxProblems { get; init; } = 500;
    public static LoaderLimits Default { get; } = new();
}

/// <summary>
/// Loads <c>schedule_config.yml</c> strictly by walking the YAML event stream: that gives a position for every problem
/// and the start/end of every task for minimal write-back. Anchors, aliases and tags are refused (no expansion can
/// happen, so alias bombs cost nothing); unknown and duplicate keys, YAML 1.1 booleans and non-decimal integers are
/// errors. Every problem in the file is reported, not just the first.
/// </summary>
internal static partial class ScheduleLoader
{
    public static ScheduleDocument LoadFile(string path, LoaderLimits? limits = null)
    {
        limits ??= LoaderLimits.Default;
        // Through the store: only a regular file is read (a FIFO would block), and no more than the limit.
        FileSnapshot snapshot;
        try
        {
            snapshot = new ConfigFileStore(path, new FileStoreOptions { MaxFileBytes = limits.MaxFileBytes }).Read();
        }
        catch (FileStoreException e)
        {
            return Failed(path, "", new YamlProblem(1, 1, e.Cause));
        }
        if (!snapshot.Exists) throw new FileNotFoundException($"{path}: no such file", path);
        return Load(snapshot.Bytes.Span, path, limits);
    }

    /// <param name="validating">Progress of the validation (tasks done, tasks in all): called before the first task and
    /// every few thousand; null (the default) when nobody watches.</param>
    public static ScheduleDocument Load(ReadOnlySpan<byte> bytes, string path, LoaderLimits? limits = null, Action<int, int>? validating = null)
    {
        limits ??= LoaderLimits.Default;
        if (bytes.Length > limits.MaxFileBytes)
            return Failed(path, "", new YamlProblem(1, 1, $"the file is {bytes.Length:N0} bytes; the limit is {limits.MaxFileBytes:N0} bytes"));
        // YAML allows a byte order mark at the start of the stream; left in, the parser reads it as part of the first key.
        if (bytes.StartsWith("\uFEFF"u8))
            bytes = bytes[3..];
        if (!TryDecodeUtf8(bytes, out var text, out var problem))
            return Failed(path, "", problem!);
        return Parse(text, path, limits, validating);
    }

    public static ScheduleDocument Parse(string text, string path, LoaderLimits? limits = null, Action<int, int>? validating = null) =>
        new Walker(text, path, limits ?? LoaderLimits.Default, validating).Run();

    private static ScheduleDocument Failed(string path, string text, YamlProblem problem) =>
        new() { Path = path, Text = text, Entries = [], Problems = [problem] };

    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static bool TryDecodeUtf8(ReadOnlySpan<byte> bytes, out string text, out YamlProblem? problem)
    {
        problem = null;
        if (System.Text.Unicode.Utf8.IsValid(bytes))
        {
            text = StrictUtf8.GetString(bytes);
            return true;
        }
        text = "";
        var offset = 0;
        while (offset < bytes.Length)
        {
            var status = Rune.DecodeFromUtf8(bytes[offset..], out _, out var consumed);
            if (status != System.Buffers.OperationStatus.Done) break;
            offset += consumed;
        }
        var before = bytes[..offset];
        var line = before.Count((byte)'\n') + 1;
        var lineStart = before.LastIndexOf((byte)'\n') + 1;
        var column = Encoding.UTF8.GetCharCount(before[lineStart..]) + 1;
        problem = new YamlProblem(line, column, $"the file is not valid UTF-8 (bad byte 0x{bytes[offset]:X2} at byte offset {offset})");
        return false;
    }

    // YAML 1.2 core schema resolution of plain scalars, plus the YAML 1.1 forms we refuse with a hint.
    [GeneratedRegex("^[-+]?[0-9]+$", RegexOptions.CultureInvariant)]
    private static partial Regex DecimalInt();
    [GeneratedRegex("^(0o[0-7]+|0x[0-9a-fA-F]+|[-+]?0[0-9]+|[-+]?0b[01]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+)$", RegexOptions.CultureInvariant)]
    private static partial Regex NonDecimalInt();
    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Float();
    [GeneratedRegex(@"^([-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$", RegexOptions.CultureInvariant)]
    private static partial Regex SpecialFloat();
    [GeneratedRegex("^(yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$", RegexOptions.CultureInvariant)]
    private static partial Regex Yaml11Bool();

    internal enum PlainKind { Null, Bool, Int, NonDecimalInt, Float, SpecialFloat, Yaml11Bool, String }

    internal static PlainKind Resolve(Scalar scalar)
    {
        if (scalar.Style is not ScalarStyle.Plain) return PlainKind.String;
        var v = scalar.Value;
        // Fast path for ordinary text: every special form is a number (digit, sign or dot first) or a word of at most 5 letters.
        if (v.Length > 5 && char.IsAsciiLetter(v[0])) return PlainKind.String;
        // … and none starts with anything but a letter, a digit, a sign, a dot or '~' (a path, say, is text at once).
        if (v.Length > 0 && !char.IsAsciiLetterOrDigit(v[0]) && v[0] is not ('+' or '-' or '.' or '~')) return PlainKind.String;
        if (v is "" or "~" or "null" or "Null" or "NULL") return PlainKind.Null;
        if (v is "true" or "false" or "True" or "False" or "TRUE" or "FALSE") return PlainKind.Bool;
        if (DecimalInt().IsMatch(v)) return v.TrimStart('-', '+').Length > 1 && v.TrimStart('-', '+')[0] == '0' ? PlainKind.NonDecimalInt : PlainKind.Int;
        if (NonDecimalInt().IsMatch(v)) return PlainKind.NonDecimalInt;
        if (Float().IsMatch(v)) return PlainKind.Float;
        if (SpecialFloat().IsMatch(v)) return PlainKind.SpecialFloat;
        if (Yaml11Bool().IsMatch(v)) return PlainKind.Yaml11Bool;
        return PlainKind.String;
    }

    private static string Describe(PlainKind kind, Scalar scalar) => kind switch
    {
        PlainKind.Null => "nothing (null)",
        PlainKind.Bool => $"the boolean {scalar.Value}",
        PlainKind.Int or PlainKind.NonDecimalInt => $"the number {scalar.Value}",
        PlainKind.Float or PlainKind.SpecialFloat => $"the number {scalar.Value}",
        PlainKind.Yaml11Bool => $"'{scalar.Value}'",
        _ => $"the text \"{TaskRules.Shorten(scalar.Value)}\"",
    };

    private sealed class AbortException : Exception;

    /// <summary>What a value is, for a message ("task 'x': args.keep"); built only when a problem is reported.</summary>
    private readonly record struct Subject(string? TaskId, string? Field, string? Key = null)
    {
        public static implicit operator Subject(string field) => new(null, field);

        public override string ToString()
        {
            var text = TaskId is null ? Field ?? "" : Field is null ? $"task '{TaskId}'" : $"task '{TaskId}': {Field}";
            return Key is null ? text : $"{text}.{Key}";
        }
    }

    private sealed class Walker(string text, string path, LoaderLimits limits, Action<int, int>? validating = null)
    {
        private const int ProgressEvery = 5_000;

        private readonly List<YamlProblem> _problems = [];
        private readonly List<(TaskDraft Draft, int KeyIndex, int EndIndex, int Line, int Column, TaskLayout? Layout, int MarksFrom)> _drafts = [];
        // Where each field's value starts, task after task (a draft's start in it is MarksFrom): only a problem needs them.
        private readonly List<(string Field, int Line, int Column)> _fieldMarks = [];
        private readonly HashSet<string> _invalidTaskIds = new(StringComparer.Ordinal);
        private readonly Parser _parser = new(new StringReader(text));
        private ParsingEvent _current = null!;
        private int _lastEnd;
        private string? _defaultTimezone;
        private TasksSection? _tasks;
        private string? _taskId;
        private bool _flowRoot;

        /// <summary>The default time zone when the text has no <c>defaults</c> (a fragment re-parsed on its own).</summary>
        public string? InheritedTimezone { get; init; }

        public ScheduleDocument Run()
        {
            try
            {
                WalkStream();
            }
            catch (AbortException)
            {
                // A fatal problem (syntax, too deep, too many problems) was recorded; what was read so far is kept.
            }

            var entries = new List<TaskEntry>(_drafts.Count);
            var timezone = _defaultTimezone ?? InheritedTimezone ?? "UTC";
            for (var d = 0; d < _drafts.Count; d++)
            {
                var (draft, keyIndex, endIndex, line, column, layout, marksFrom) = _drafts[d];
                var marksTo = d + 1 < _drafts.Count ? _drafts[d + 1].MarksFrom : _fieldMarks.Count;
                if (validating is not null && entries.Count % ProgressEvery == 0)
                    validating(entries.Count, _drafts.Count);
                var task = draft.Build(timezone, (field, message) =>
                {
                    var (l, c) = (line, column);
                    for (var m = marksFrom; m < marksTo; m++)
                        if (_fieldMarks[m].Field == field) (l, c) = (_fieldMarks[m].Line, _fieldMarks[m].Column);
                    Report(l, c, $"task '{draft.Id}': {message}", draft.Id, abortWhenFull: false);
                });
                // A field the walker refused (wrong type, unknown, duplicate, tagged) left the draft with a default
                // in its place: such a task must not pass as valid (on_invalid: skip_task would sync the default).
                if (_invalidTaskIds.Contains(draft.Id)) task = null;
                entries.Add(new TaskEntry(draft.Id, task, keyIndex, endIndex, line, column, layout));
            }
            // OrderBy is stable: problems at one position keep the order they were found in (List.Sort is not, and
            // moved e.g. the "stopped after N problems" note before the problem it follows).
            var problems = _problems.OrderBy(p => p.Line).ThenBy(p => p.Column).ToList();
            return new ScheduleDocument
            {
                Path = path,
                Text = text,
                DefaultTimezone = _defaultTimezone,
                Entries = entries,
                Problems = problems,
                Tasks = _tasks,
                IsFlowRoot = _flowRoot,
            };
        }

        private void Report(Mark mark, string message) => Report((int)mark.Line, (int)mark.Column, message, _taskId);

        private void Report(int line, int column, string message, string? taskId, bool abortWhenFull = true)
        {
            // Recorded even when the problem list is full and the message itself is dropped.
            if (taskId is not null) _invalidTaskIds.Add(taskId);
            if (_problems.Count >= limits.MaxProblems)
            {
                if (abortWhenFull) throw new AbortException();
                return;
            }
            _problems.Add(new YamlProblem(line, column, message, taskId));
            if (_problems.Count == limits.MaxProblems)
            {
                _problems.Add(new YamlProblem(line, column, $"stopped after {limits.MaxProblems} problems"));
                if (abortWhenFull) throw new AbortException();
            }
        }

        private void Next()
        {
            try
            {
                // Every event passed over marks where content ends (for the task spans write-back replaces).
                if (_current is not null) Track(_current);
                if (!_parser.MoveNext())
                    throw new AbortException();
                _current = _parser.Current!;
            }
            catch (InvalidOperationException)
            {
                // YamlDotNet throws this (not a YamlException) for some unfinished flow collections, e.g. "a: [b\nc: d".
                _taskId = null;
                var at = _current?.End ?? Mark.Empty;
                Report((int)Math.Max(1, at.Line), (int)Math.Max(1, at.Column), "YAML syntax error: an unfinished flow collection ('[' or '{' without its closing bracket)", null);
                throw new AbortException();
            }
            catch (YamlException e)
            {
                _taskId = null;
                var message = "YAML syntax error: " + CleanMessage(e.Message);
                // The parser places a tab-indentation error at the enclosing mapping; point at the first tab that indents a line instead.
                if (e.Message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FirstIndentingTab() is { } tab)
                    Report(tab.Line, tab.Column, message + "; indent with spaces, not tabs", null);
                else
                    Report(e.Start, message);
                throw new AbortException();
            }
        }

        private (int Line, int Column)? FirstIndentingTab()
        {
            var line = 1;
            foreach (var content in text.AsSpan().EnumerateLines())
            {
                var indent = content.Length - content.TrimStart().Length;
                var at = content[..indent].IndexOf('\t');
                if (at >= 0 && indent < content.Length) return (line, at + 1);
                line++;
            }
            return null;
        }

        private static string CleanMessage(string message)
        {
            message = Regex.Replace(message, @"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ", "");
            return message.Contains("anchor or alias", StringComparison.Ordinal)
                ? message + " (a value that starts with '*' or '&', such as a cron expression, must be quoted)"
                : message;
        }

        private void WalkStream()
        {
            Next(); // StreamStart
            Next();
            if (_current is StreamEnd) return; // an empty file (or only comments): no tasks
            var documents = 0;
            while (_current is DocumentStart start)
            {
                if (++documents > 1)
                {
                    Report(start.Start, "only one YAML document is allowed; found a second one (a '---' separator)");
                    return;
                }
                Next();
                WalkRoot();
                if (_current is not DocumentEnd) throw new AbortException();
                Next();
            }
        }

        private void WalkRoot()
        {
            if (_current is Scalar s && Resolve(s) == PlainKind.Null && s.Tag.IsEmpty && s.Anchor.IsEmpty)
            {
                Next();
                return;
            }
            if (!ExpectMapping("the file", "a mapping with the keys version, defaults and tasks")) return;
            _flowRoot = ((MappingStart)_current).Style == MappingStyle.Flow;
            var seen = new Dictionary<string, Mark>(StringComparer.Ordinal);
            Next();
            while (_current is not MappingEnd)
            {
                if (!ReadKey(seen, "top-level key", out var key, out var keyEvent)) continue;
                switch (key)
                {
                    case "version": ReadVersion(); break;
                    case "defaults": ReadDefaults(); break;
                    case "tasks": ReadTasks(keyEvent!); break;
                    default:
                        Report(keyEvent!.Start, $"unknown top-level key '{TaskRules.Shorten(key)}'{Suggest(key, ["version", "defaults", "tasks"])}; expected version, defaults or tasks");
                        SkipNode();
                        break;
                }
            }
            Next();
        }

        /// <summary>Reads a mapping key; reports and skips the pair when the key is not a plain string or repeats.</summary>
        private bool ReadKey(Dictionary<string, Mark> seen, string what, out string key, out Scalar? keyEvent)
        {
            key = "";
            keyEvent = _current as Scalar;
            if (keyEvent is null || !CheckNodeProperties(_current))
            {
                if (keyEvent is null) Report(_current.Start, $"a {what} must be a plain text key, not {Kind(_current)}");
                SkipNode();
                SkipNode();
                return false;
            }
            key = keyEvent.Value;
            if (keyEvent.Style == ScalarStyle.Plain && Resolve(keyEvent) == PlainKind.Null)
            {
                Report(keyEvent.Start, $"a {what} is empty");
                Next();
                SkipNode();
                return false;
            }
            if (seen.TryGetValue(key, out var first))
            {
                Report(keyEvent.Start, $"duplicate key '{TaskRules.Shorten(key)}' (first defined at line {first.Line}, column {first.Column})");
                Next();
                SkipNode();
                return false;
            }
            seen.Add(key, keyEvent.Start);
            Next();
            return true;
        }

        private void ReadVersion()
        {
            if (!TryScalar("version", out var s)) return;
            if (s.Style != ScalarStyle.Plain || s.Value != "1")
                Report(s.Start, $"version must be 1; got {Describe(Resolve(s), s)}");
        }

        private void ReadDefaults()
        {
            if (_current is Scalar n && Resolve(n) == PlainKind.Null && CheckNodeProperties(n)) { Next(); return; }
            if (!ExpectMapping("defaults", "a mapping such as { timezone: Europe/Berlin }")) return;
            var seen = new Dictionary<string, Mark>(StringComparer.Ordinal);
            Next();
            while (_current is not MappingEnd)
            {
                if (!ReadKey(seen, "key in defaults", out var key, out var keyEvent)) continue;
                if (key == "timezone")
                {
                    if (TryString("defaults.timezone", out var zone, out var mark))
                    {
                        if (TaskRules.CheckTimezone(zone) is { } message) Report(mark, "defaults: " + message);
                        else _defaultTimezone = zone;
                    }
                }
                else
                {
                    Report(keyEvent!.Start, $"unknown key '{TaskRules.Shorten(key)}' in defaults{Suggest(key, ["timezone"])}; the only default is timezone");
                    SkipNode();
                }
            }
            Next();
        }

        private void ReadTasks(Scalar keyEvent)
        {
            var valueStart = (int)_current.Start.Index;
            if (_current is Scalar n && Resolve(n) == PlainKind.Null && CheckNodeProperties(n))
            {
                _tasks = new TasksSection((int)keyEvent.Start.Index, (int)keyEvent.End.Index, (int)n.End.Index, false, 2);
                Next();
                return;
            }
            if (_current is SequenceStart)
            {
                Report(_current.Start, "tasks must be a mapping from task id to task (write 'my-task:' rather than '- my-task'), not a list");
                SkipNode();
                return;
            }
            if (!ExpectMapping("tasks", "a mapping from task id to task")) return;
            var isBlock = ((MappingStart)_current).Style == MappingStyle.Block;
            var seen = new Dictionary<string, Mark>(StringComparer.Ordinal);
            var indent = -1;
            Next();
            while (_current is not MappingEnd)
            {
                var keyIndex = (int)_current.Start.Index;
                if (indent < 0) indent = LineIndentAt(keyIndex);
                if (!ReadKey(seen, "task id", out var id, out var idEvent)) continue;
                _taskId = id;
                ReadTask(id, idEvent!, keyIndex);
                _taskId = null;
            }
            Next(); // past the end of the tasks mapping, so a flow mapping's '}' counts
            _tasks = new TasksSection((int)keyEvent.Start.Index, valueStart, _lastEnd, isBlock, indent < 0 ? 2 : indent);
        }

        private void ReadTask(string id, Scalar idEvent, int keyIndex)
        {
            var draft = new TaskDraft { Id = id };
            var marksFrom = _fieldMarks.Count;
            var line = (int)idEvent.Start.Line;
            var column = (int)idEvent.Start.Column;
            if (_current is Scalar n && Resolve(n) == PlainKind.Null && CheckNodeProperties(n))
            {
                Report(idEvent.Start, $"task '{id}' has no fields; it needs at least schedule and command");
                Next();
                _drafts.Add((draft, keyIndex, _lastEnd, line, column, null, marksFrom));
                return;
            }
            if (!ExpectMapping(new Subject(id, null), "a mapping of its fields (schedule, command, …)"))
            {
                _drafts.Add((draft, keyIndex, _lastEnd, line, column, null, marksFrom));
                return;
            }
            var isFlow = ((MappingStart)_current).Style == MappingStyle.Flow;
            var explicitKey = IsExplicitKey(keyIndex);
            var fields = new List<FieldLayout>();
            var seen = new Dictionary<string, Mark>(StringComparer.Ordinal);
            Next();
            while (_current is not MappingEnd)
            {
                if (!ReadKey(seen, "field name", out var field, out var fieldEvent)) continue;
                explicitKey |= IsExplicitKey((int)fieldEvent!.Start.Index);
                _fieldMarks.Add((field, (int)_current.Start.Line, (int)_current.Start.Column));
                var valueEvent = _current;
                var known = TaskFields.Find(field);
                List<ItemLayout>? items = known?.Kind is FieldKind.Args or FieldKind.Tags ? [] : null;
                var what = new Subject(id, field);
                object? value = null;
                switch (known?.Kind)
                {
                    case FieldKind.Text or FieldKind.OptionalText: if (TryString(what, out var text, out _)) value = text; break;
                    case FieldKind.Boolean: if (TryBool(what, out var flag)) value = flag; break;
                    case FieldKind.Integer or FieldKind.OptionalInteger: if (TryInt(what, out var number)) value = number; break;
                    case FieldKind.Args: value = ReadArgs(what, items!, keyIndex, ref explicitKey); break;
                    case FieldKind.Tags: value = ReadTags(what, items!, keyIndex); break;
                    default:
                        Report(fieldEvent!.Start, $"task '{id}': unknown field '{TaskRules.Shorten(field)}'{Suggest(field, TaskFields.Names)}");
                        SkipNode();
                        break;
                }
                if (known is not null)
                {
                    if (value is not null) known.Set(draft, value);
                    else if (known.Required) draft.Unreadable.Add(field);
                }
                fields.Add(FieldOf(field, fieldEvent, valueEvent, keyIndex, items));
            }
            Next();
            _drafts.Add((draft, keyIndex, _lastEnd, line, column, new TaskLayout(isFlow, explicitKey, fields), marksFrom));
            // A task that is syntactically fine but breaks a rule is reported when the draft is built.
            _ = draft;
        }

        private Dictionary<string, ArgValue>? ReadArgs(Subject what, List<ItemLayout> items, int taskKey, ref bool explicitKey)
        {
            if (_current is Scalar n && Resolve(n) == PlainKind.Null && CheckNodeProperties(n)) { Next(); return []; }
            if (!ExpectMapping(what, "a mapping of names to text, numbers or booleans")) return null;
            var args = new Dictionary<string, ArgValue>(StringComparer.Ordinal);
            var seen = new Dictionary<string, Mark>(StringComparer.Ordinal);
            var ok = true;
            Next();
            while (_current is not MappingEnd)
            {
                if (!ReadKey(seen, "args key", out var key, out var keyEvent)) { ok = false; continue; }
                var kind = Resolve(keyEvent!);
                if (kind is not (PlainKind.String or PlainKind.Yaml11Bool))
                {
                    Report(keyEvent!.Start, $"{what}: key {Describe(kind, keyEvent)} must be text; put it in quotes");
                    ok = false;
                }
                if (!TryScalar(what with { Key = key }, out var value)) { ok = false; continue; }
                explicitKey |= IsExplicitKey((int)keyEvent!.Start.Index);
                items.Add(new ItemLayout(key, (int)keyEvent.Start.Index - taskKey, (int)value.Start.Index - taskKey, ScalarEnd(value) - taskKey, StyleOf(value)));
                switch (Resolve(value))
                {
                    case PlainKind.String: args[key] = ArgValue.Of(value.Value); break;
                    case PlainKind.Bool: args[key] = ArgValue.Of(value.Value.Equals("true", StringComparison.OrdinalIgnoreCase)); break;
                    case PlainKind.Int when long.TryParse(value.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l):
                        args[key] = ArgValue.Of(l);
                        break;
                    case PlainKind.Float when double.TryParse(value.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d):
                        args[key] = ArgValue.Of(d);
                        break;
                    case var other:
                        Report(value.Start, $"{what}.{key}: {Describe(other, value)} is not accepted as an argument value; "
                            + (other == PlainKind.Null ? "give a text, number or boolean" : "put it in quotes if you mean the text"));
                        ok = false;
                        break;
                }
            }
            Next();
            return ok ? args : null;
        }

        private List<string>? ReadTags(Subject what, List<ItemLayout> items, int taskKey)
        {
            if (SkippedForProperties()) return null;
            if (_current is Scalar n && Resolve(n) == PlainKind.Null && CheckNodeProperties(n)) { Next(); return []; }
            if (_current is not SequenceStart || !CheckNodeProperties(_current))
            {
                // An alias is reported as one (SkipNode does not look at node properties); before, it vanished silently.
                if (_current is AnchorAlias)
                    CheckNodeProperties(_current);
                else if (_current is not SequenceStart)
                    Report(_current.Start, $"{what} must be a list of tags, such as [ops, backup]; got {Kind(_current)}");
                SkipNode();
                return null;
            }
            var tags = new List<string>();
            var ok = true;
            Next();
            while (_current is not SequenceEnd)
            {
                var item = _current as Scalar;
                if (TryString(what, out var tag, out _))
                {
                    tags.Add(tag);
                    items.Add(new ItemLayout(null, (int)item!.Start.Index - taskKey, (int)item.Start.Index - taskKey, ScalarEnd(item) - taskKey, StyleOf(item)));
                }
                else ok = false;
            }
            Next();
            return ok ? tags : null;
        }

        private bool TryScalar(Subject what, out Scalar scalar)
        {
            scalar = null!;
            if (SkippedForProperties()) return false;
            if (_current is not Scalar s)
            {
                if (_current is AnchorAlias)
                    CheckNodeProperties(_current);
                else
                    Report(_current.Start, $"{what} must be a single value, not {Kind(_current)}");
                SkipNode();
                return false;
            }
            if (!CheckNodeProperties(s)) { SkipNode(); return false; }
            scalar = s;
            Next();
            return true;
        }

        private bool TryString(Subject what, out string value, out Mark mark)
        {
            value = "";
            mark = _current.Start;
            if (!TryScalar(what, out var s)) return false;
            var kind = Resolve(s);
            if (kind == PlainKind.String)
            {
                value = s.Value;
                return true;
            }
            Report(s.Start, kind == PlainKind.Null
                ? $"{what} has no value; give one or remove the key"
                : $"{what} must be text, got {Describe(kind, s)}; put it in quotes if you mean the text");
            return false;
        }

        private bool TryBool(Subject what, out bool value)
        {
            value = false;
            if (!TryScalar(what, out var s)) return false;
            if (s.Style == ScalarStyle.Plain && s.Value is "true" or "false")
            {
                value = s.Value == "true";
                return true;
            }
            var kind = Resolve(s);
            var message = kind switch
            {
                PlainKind.Yaml11Bool => $"'{s.Value}' is not a boolean here; write true or false (YAML 1.1 yes/no/on/off are not accepted)",
                PlainKind.Bool => $"write '{s.Value.ToLowerInvariant()}' in lowercase; only true and false are accepted",
                PlainKind.String when s.Value.Trim().ToLowerInvariant() is "true" or "false" or "yes" or "no" or "on" or "off" =>
                    $"must be true or false, got the text \"{s.Value}\"; remove the quotes",
                _ => $"must be true or false, got {Describe(kind, s)}",
            };
            Report(s.Start, $"{what}: {message}");
            return false;
        }

        private bool TryInt(Subject what, out long value)
        {
            value = 0;
            if (!TryScalar(what, out var s)) return false;
            var kind = Resolve(s);
            if (kind == PlainKind.Int && long.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
                return true;
            var message = kind switch
            {
                PlainKind.Int => $"{s.Value} is too large",
                PlainKind.NonDecimalInt => $"'{s.Value}' is not a plain decimal number; write it in decimal without leading zeros",
                PlainKind.Float or PlainKind.SpecialFloat => $"must be a whole number, got {s.Value}",
                PlainKind.String when DecimalInt().IsMatch(s.Value.Trim()) => $"must be a number, got the text \"{s.Value}\"; remove the quotes",
                _ => $"must be a whole number, got {Describe(kind, s)}",
            };
            Report(s.Start, $"{what}: {message}");
            return false;
        }

        private bool ExpectMapping(Subject what, string expected)
        {
            if (SkippedForProperties()) return false;
            if (_current is MappingStart && CheckNodeProperties(_current)) return true;
            if (_current is AnchorAlias)
            {
                CheckNodeProperties(_current);
            }
            else if (_current is not MappingStart)
            {
                var got = _current is Scalar s ? Describe(Resolve(s), s) : Kind(_current);
                Report(_current.Start, $"{what} must be {expected}; got {got}");
            }
            SkipNode();
            return false;
        }

        /// <summary>
        /// Reports and skips the current node when it carries an anchor or an explicit tag, whatever its type: such a
        /// node is refused for that, before any type error (an anchored list where a mapping belongs is an anchor problem).
        /// </summary>
        private bool SkippedForProperties()
        {
            if (_current is not NodeEvent node || (node.Anchor.IsEmpty && (node.Tag.IsEmpty || node.Tag.IsNonSpecific))) return false;
            CheckNodeProperties(node);
            SkipNode();
            return true;
        }

        /// <summary>Refuses anchors, aliases and explicit tags on a node; reports and returns false when present.</summary>
        private bool CheckNodeProperties(ParsingEvent e)
        {
            switch (e)
            {
                case AnchorAlias alias:
                    Report(alias.Start, $"aliases (*{alias.Value}) are not allowed; if this is a value that starts with '*' (such as a cron expression), put it in quotes");
                    return false;
                case NodeEvent node when !node.Anchor.IsEmpty:
                    Report(node.Start, $"anchors (&{node.Anchor.Value}) are not allowed; write each value out");
                    return false;
                case NodeEvent node when !node.Tag.IsEmpty && !node.Tag.IsNonSpecific:
                    Report(node.Start, $"explicit tags ({node.Tag.Value}) are not allowed");
                    return false;
                default:
                    return true;
            }
        }

        /// <summary>Skips the current node whatever it is, without recursion, refusing nesting beyond the limit.</summary>
        private void SkipNode()
        {
            var depth = 0;
            do
            {
                switch (_current)
                {
                    case MappingStart or SequenceStart:
                        if (++depth > limits.MaxDepth)
                        {
                            Report(_current.Start, $"nesting is deeper than {limits.MaxDepth} levels");
                            throw new AbortException();
                        }
                        break;
                    case MappingEnd or SequenceEnd:
                        depth--;
                        break;
                }
                Next();
            }
            while (depth > 0);
        }

        /// <summary>Where a field's key and value sit, relative to the task's key; the value's end is where its content ends.</summary>
        private FieldLayout FieldOf(string name, Scalar key, ParsingEvent value, int taskKey, List<ItemLayout>? items)
        {
            var keyEnd = (int)key.End.Index;
            // Content read since the value started ends at _lastEnd (tracked as events are passed over).
            int start = (int)value.Start.Index, end = Math.Max(start, _lastEnd);
            var style = value switch
            {
                Scalar { Style: ScalarStyle.Plain, Value.Length: 0 } => ValueStyle.Empty,
                Scalar s => StyleOf(s),
                MappingStart m => m.Style == MappingStyle.Flow ? ValueStyle.FlowMapping : ValueStyle.BlockMapping,
                SequenceStart q => q.Style == SequenceStyle.Flow ? ValueStyle.FlowSequence : ValueStyle.BlockSequence,
                _ => ValueStyle.Other,
            };
            if (style == ValueStyle.Empty)
            {
                // An empty value has no text: it "is" just after the key's ':'.
                var colon = text.IndexOf(':', keyEnd);
                start = end = colon < 0 ? keyEnd : colon + 1;
            }
            return new FieldLayout(name, (int)key.Start.Index - taskKey, keyEnd - taskKey, start - taskKey, end - taskKey, style, (IReadOnlyList<ItemLayout>?)items ?? []);
        }

        private static ValueStyle StyleOf(Scalar s) => s.Style switch
        {
            ScalarStyle.Plain => s.Value.Length == 0 ? ValueStyle.Empty : ValueStyle.Plain,
            ScalarStyle.SingleQuoted => ValueStyle.SingleQuoted,
            ScalarStyle.DoubleQuoted => ValueStyle.DoubleQuoted,
            ScalarStyle.Literal => ValueStyle.Literal,
            ScalarStyle.Folded => ValueStyle.Folded,
            _ => ValueStyle.Other,
        };

        /// <summary>Where a scalar's content ends: a block scalar's trailing line breaks are not content.</summary>
        private int ScalarEnd(Scalar s)
        {
            var end = (int)s.End.Index;
            if (s.Style is ScalarStyle.Literal or ScalarStyle.Folded)
                while (end > (int)s.Start.Index && char.IsWhiteSpace(text[end - 1])) end--;
            return end;
        }

        /// <summary>True when the key at this index is written as an explicit key (<c>? key</c>).</summary>
        private bool IsExplicitKey(int index)
        {
            var i = index - 1;
            while (i >= 0 && text[i] is ' ' or '\t') i--;
            return i >= 0 && text[i] == '?' && (i == 0 || text[i - 1] is ' ' or '\t' or '\n' or '\r' or '{' or ',');
        }

        /// <summary>The number of spaces that start the line holding this index.</summary>
        private int LineIndentAt(int index)
        {
            var start = index == 0 ? 0 : text.LastIndexOf('\n', index - 1) + 1;
            var i = start;
            while (i < text.Length && text[i] == ' ') i++;
            return i - start;
        }

        private void Track(ParsingEvent e)
        {
            // Block collections end where the next token starts, so only scalars and flow ends mark real content.
            // The parser gives a flow end ('}' or ']') an empty span at the bracket: the content ends after it.
            if (e is Scalar { Style: ScalarStyle.Literal or ScalarStyle.Folded })
            {
                // A block scalar ends after the blank lines that follow it; its content ends at its last non-blank character.
                var end = (int)e.End.Index;
                while (end > (int)e.Start.Index && char.IsWhiteSpace(text[end - 1])) end--;
                _lastEnd = Math.Max(_lastEnd, end);
            }
            else if (e is Scalar or AnchorAlias)
                _lastEnd = Math.Max(_lastEnd, (int)e.End.Index);
            else if (e is MappingEnd or SequenceEnd && e.Start.Index < text.Length && text[(int)e.Start.Index] is '}' or ']')
                _lastEnd = Math.Max(_lastEnd, (int)e.Start.Index + 1);
        }

        private static string Kind(ParsingEvent e) => e switch
        {
            MappingStart => "a mapping",
            SequenceStart => "a list",
            Scalar => "a single value",
            AnchorAlias => "an alias",
            _ => e.GetType().Name,
        };
    }

    private static string Suggest(string given, IEnumerable<string> known)
    {
        var best = known.Select(k => (k, d: Distance(given, k))).MinBy(x => x.d);
        return best.d <= 2 ? $" (did you mean '{best.k}'?)" : "";
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
