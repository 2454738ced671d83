using System.Text;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// SPEC §1, rule by rule: for each rule a value that passes and one that fails, the failure with its line, column and
/// the key phrase of its message.
/// </summary>
public class ScheduleLoaderTests
{
    private const string FilePath = "schedule_config.yml";

    private static ScheduleDocument Parse(string yaml) => ScheduleLoader.Parse(yaml, FilePath);

    /// <summary>
    /// A file with one task <c>t</c> whose line 3 is <paramref name="field"/> (written with its 4-space indentation, so
    /// the columns in the tables below can be counted on it); schedule and command are added unless it is one of them.
    /// </summary>
    internal static string TaskWith(string field)
    {
        var key = field.TrimStart()[..field.TrimStart().IndexOf(':', StringComparison.Ordinal)];
        var lines = new List<string> { "tasks:", "  t:", field };
        if (key != "schedule") lines.Add("    schedule: \"0 3 * * *\"");
        if (key != "command") lines.Add("    command: run");
        return string.Join('\n', lines) + "\n";
    }

    private static string Repeat(char c, int count) => new(c, count);

    // ---------------------------------------------------------------------------------------------------------------
    // One field of a task, passing: the field on line 3 of TaskWith, and a fragment of the task's canonical JSON.
    // ---------------------------------------------------------------------------------------------------------------
    public static TheoryData<string, string> AcceptedFields => new()
    {
        // name: optional, at most 200 characters
        { "    name: Nightly backup", "\"name\":\"Nightly backup\"" },
        { "    name: 'single quoted'", "\"name\":\"single quoted\"" },
        { "    name: " + Repeat('n', 200), "\"name\":\"" + Repeat('n', 200) + "\"" },
        // description: optional, at most 2,000 characters
        { "    description: " + Repeat('d', 2000), "\"description\":\"" + Repeat('d', 2000) + "\"" },
        { "    description: |\n      two\n      lines", "\"description\":\"two\\nlines\\n\"" },
        // schedule: 5 fields, 6 with seconds first, or a macro
        { "    schedule: \"0 3 * * *\"", "\"schedule\":\"0 3 * * *\"" },
        { "    schedule: \"0 8 * * MON-FRI\"", "\"schedule\":\"0 8 * * MON-FRI\"" },
        { "    schedule: \"*/30 * * * * *\"", "\"schedule\":\"*/30 * * * * *\"" },
        { "    schedule: \"@hourly\"", "\"schedule\":\"@hourly\"" },
        { "    schedule: \"@daily\"", "\"schedule\":\"@daily\"" },
        { "    schedule: \"@weekly\"", "\"schedule\":\"@weekly\"" },
        { "    schedule: \"@monthly\"", "\"schedule\":\"@monthly\"" },
        { "    schedule: \"@yearly\"", "\"schedule\":\"@yearly\"" },
        { "    schedule: \"  0   3 * * *  \"", "\"schedule\":\"0 3 * * *\"" },
        // timezone: an IANA id
        { "    timezone: UTC", "\"timezone\":\"UTC\"" },
        { "    timezone: Europe/Berlin", "\"timezone\":\"Europe/Berlin\"" },
        { "    timezone: America/New_York", "\"timezone\":\"America/New_York\"" },
        // command: required, non-empty, at most 4,000 characters
        { "    command: /usr/local/bin/backup.sh --full", "\"command\":\"/usr/local/bin/backup.sh --full\"" },
        { "    command: " + Repeat('c', 4000), "\"command\":\"" + Repeat('c', 4000) + "\"" },
        // args: a map of text, integer, float and boolean values; "on" in quotes is the text
        { "    args: { s: text, i: 7, f: 1.5, b: true }", "\"args\":{\"b\":true,\"f\":1.5,\"i\":7,\"s\":\"text\"}" },
        { "    args:\n      batch_size: 500\n      dry_run: false", "\"args\":{\"batch_size\":500,\"dry_run\":false}" },
        { "    args: { mode: \"on\" }", "\"args\":{\"mode\":\"on\"}" },
        { "    args: { keep: \"7\" }", "\"args\":{\"keep\":\"7\"}" },
        { "    args: {}", "\"args\":{}" },
        // enabled: true or false
        { "    enabled: true", "\"enabled\":true" },
        { "    enabled: false", "\"enabled\":false" },
        // timeout_seconds: a positive decimal integer
        { "    timeout_seconds: 1", "\"timeout_seconds\":1" },
        { "    timeout_seconds: 3600", "\"timeout_seconds\":3600" },
        // max_retries: 0 to 100
        { "    max_retries: 0", "\"max_retries\":0" },
        { "    max_retries: 100", "\"max_retries\":100" },
        // tags: a list of strings matching the id pattern, flow or block
        { "    tags: [ops, a.b_c-d, \"2024\"]", "\"tags\":[\"ops\",\"a.b_c-d\",\"2024\"]" },
        { "    tags:\n      - ops\n      - backup", "\"tags\":[\"ops\",\"backup\"]" },
        { "    tags: []", "\"tags\":[]" },
    };

    [Theory]
    [MemberData(nameof(AcceptedFields))]
    public void Field_value_that_follows_the_rules_is_accepted(string field, string canonicalFragment)
    {
        var document = Parse(TaskWith(field));

        Assert.Empty(document.Problems);
        var task = Assert.Single(document.ValidTasks);
        Assert.Contains(canonicalFragment, Encoding.UTF8.GetString(task.CanonicalJson()), StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // One field of a task, failing: the field is on line 3; the column of the problem and a key phrase of its message.
    // ---------------------------------------------------------------------------------------------------------------
    public static TheoryData<string, int, string> RejectedFields => new()
    {
        // name: at most 200 characters, not empty, text
        { "    name: " + Repeat('n', 201), 11, "name is 201 characters long; the limit is 200" },
        { "    name: \"\"", 11, "name must not be empty" },
        { "    name:", 10, "name has no value" },
        { "    name: no", 11, "name must be text, got 'no'; put it in quotes" },
        // description: at most 2,000 characters
        { "    description: " + Repeat('d', 2001), 18, "description is 2001 characters long; the limit is 2000" },
        // schedule: a valid cron expression with 5 or 6 fields, or a known macro
        { "    schedule: \"99 3 * * *\"", 15, "is not a valid cron expression" },
        { "    schedule: \"0 0 * * 8\"", 15, "Days of week" },
        { "    schedule: \"* * * *\"", 15, "it has 4 fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)" },
        { "    schedule: \"* * * * * * *\"", 15, "it has 7 fields" },
        { "    schedule: \"@fortnightly\"", 15, "schedule '@fortnightly' is not a valid cron expression" },
        { "    schedule: \"\"", 15, "the expression is empty" },
        // timezone: an IANA id
        { "    timezone: Mars/Olympus", 15, "timezone 'Mars/Olympus' is not a known IANA time zone id" },
        { "    timezone: Europe/berlin", 15, "is not a known IANA time zone id" },
        { "    timezone: utc", 15, "is not a known IANA time zone id" },
        { "    timezone: W. Europe Standard Time", 15, "is not a known IANA time zone id" },
        { "    timezone: \"\"", 15, "is not a known IANA time zone id" },
        // command: non-empty, at most 4,000 characters
        { "    command: \"\"", 14, "command must not be empty" },
        { "    command: \"   \"", 14, "command must not be empty" },
        { "    command: " + Repeat('c', 4001), 14, "command is 4001 characters long; the limit is 4000" },
        // args: a map of scalars; null, nested lists and maps, YAML 1.1 booleans and non-text keys are refused
        { "    args: { n: ~ }", 16, "args.n: nothing (null) is not accepted as an argument value" },
        { "    args: { n: [1, 2] }", 16, "args.n must be a single value, not a list" },
        { "    args: { n: { a: 1 } }", 16, "args.n must be a single value, not a mapping" },
        { "    args: { mode: on }", 19, "args.mode: 'on' is not accepted as an argument value; put it in quotes if you mean the text" },
        { "    args: { n: 007 }", 16, "put it in quotes if you mean the text" },
        { "    args: { 1: x }", 13, "key the number 1 must be text; put it in quotes" },
        { "    args: { \"\": x }", 11, "args keys must be non-empty" },
        { "    args: [a, b]", 11, "args must be a mapping of names to text, numbers or booleans; got a list" },
        { "    args: { n: 1, n: 2 }", 19, "duplicate key 'n' (first defined at line 3, column 13)" },
        // enabled: only true and false; YAML 1.1 forms, quotes and capitals are refused with a hint
        { "    enabled: yes", 14, "'yes' is not a boolean here; write true or false (YAML 1.1 yes/no/on/off are not accepted)" },
        { "    enabled: no", 14, "(YAML 1.1 yes/no/on/off are not accepted)" },
        { "    enabled: on", 14, "(YAML 1.1 yes/no/on/off are not accepted)" },
        { "    enabled: off", 14, "(YAML 1.1 yes/no/on/off are not accepted)" },
        { "    enabled: Yes", 14, "(YAML 1.1 yes/no/on/off are not accepted)" },
        { "    enabled: \"false\"", 14, "got the text \"false\"; remove the quotes" },
        { "    enabled: True", 14, "write 'true' in lowercase" },
        { "    enabled: 1", 14, "must be true or false, got the number 1" },
        // timeout_seconds: a positive decimal integer
        { "    timeout_seconds: 0", 22, "timeout_seconds must be a positive whole number of seconds" },
        { "    timeout_seconds: -1", 22, "timeout_seconds must be a positive whole number of seconds" },
        { "    timeout_seconds: 3000000000", 22, "(at most 2147483647); got 3000000000" },
        { "    timeout_seconds: 1.5", 22, "must be a whole number, got 1.5" },
        { "    timeout_seconds: \"30\"", 22, "got the text \"30\"; remove the quotes" },
        { "    timeout_seconds: 0x10", 22, "'0x10' is not a plain decimal number" },
        { "    timeout_seconds: 0o17", 22, "'0o17' is not a plain decimal number" },
        { "    timeout_seconds: 017", 22, "'017' is not a plain decimal number" },
        { "    timeout_seconds: 99999999999999999999", 22, "99999999999999999999 is too large" },
        // max_retries: 0 to 100
        { "    max_retries: 101", 18, "max_retries must be between 0 and 100; got 101" },
        { "    max_retries: -1", 18, "max_retries must be between 0 and 100; got -1" },
        // tags: a list of unique strings matching the id pattern
        { "    tags: [ops, Ops]", 11, "tag 'Ops' must match ^[a-z0-9][a-z0-9._-]{0,127}$" },
        { "    tags: [ops, ops]", 11, "tag 'ops' is listed twice" },
        { "    tags: ops", 11, "tags must be a list of tags, such as [ops, backup]" },
        { "    tags: [1]", 12, "must be text, got the number 1" },
        { "    tags: [x, on]", 15, "tags must be text, got 'on'; put it in quotes" },
        // unknown field, with a did-you-mean hint for a typo
        { "    shedule: \"0 3 * * *\"", 5, "unknown field 'shedule' (did you mean 'schedule'?)" },
        { "    enable: true", 5, "unknown field 'enable' (did you mean 'enabled'?)" },
        { "    owner: ops-team", 5, "unknown field 'owner'" },
        // custom tags, anchors and aliases are refused
        { "    name: !custom x", 11, "explicit tags (!custom) are not allowed" },
        { "    name: !!python/object:os.system x", 11, "explicit tags (tag:yaml.org,2002:python/object:os.system) are not allowed" },
        { "    name: &n x", 11, "anchors (&n) are not allowed" },
        { "    description: *n", 18, "aliases (*n) are not allowed" },
        { "    enabled: *n", 14, "aliases (*n) are not allowed" },
        { "    tags: *n", 11, "aliases (*n) are not allowed" },
    };

    [Theory]
    [MemberData(nameof(RejectedFields))]
    public void Field_value_that_breaks_a_rule_is_reported_at_its_line_and_column(string field, int column, string phrase)
    {
        var document = Parse(TaskWith(field));

        var problem = Assert.Single(document.Problems);
        Assert.Equal((3, column), (problem.Line, problem.Column));
        Assert.Contains(phrase, problem.Message, StringComparison.Ordinal);
        Assert.Equal("t", problem.TaskId);
        Assert.False(document.IsValid);
        // The task is present but invalid: no default may stand in for the refused value.
        var entry = Assert.Single(document.Entries);
        Assert.Null(entry.Task);
        Assert.Empty(document.ValidTasks);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Whole files, passing: how many tasks they hold.
    // ---------------------------------------------------------------------------------------------------------------
    public static TheoryData<string, int> AcceptedFiles => new()
    {
        // empty, comments only, no tasks
        { "", 0 },
        { "# only a comment\n# and another\n", 0 },
        { "tasks:\n", 0 },
        { "tasks:", 0 },
        { "tasks: {}\n", 0 },
        { "version: 1\n", 0 },
        { "version: 1\ndefaults:\ntasks:\n", 0 },
        // version 1, an explicit document start and end
        { "version: 1\ntasks:\n  t: { schedule: \"@daily\", command: run }\n", 1 },
        { "---\ntasks:\n  t: { schedule: \"@daily\", command: run }\n...\n", 1 },
        // id pattern: lowercase letters, digits, '.', '_', '-', at most 128 characters, not starting with a symbol
        { "tasks:\n  a.b_c-d: { schedule: \"@daily\", command: run }\n", 1 },
        { "tasks:\n  0day: { schedule: \"@daily\", command: run }\n", 1 },
        { "tasks:\n  " + Repeat('a', 128) + ": { schedule: \"@daily\", command: run }\n", 1 },
        // several tasks, block and flow
        {
            """
            tasks:
              one:
                schedule: "0 3 * * *"
                command: run
              two: { schedule: "@hourly", command: run }
            """,
            2
        },
        { "{ version: 1, tasks: { one: { schedule: \"@daily\", command: run } } }", 1 },
    };

    [Theory]
    [MemberData(nameof(AcceptedFiles))]
    public void File_that_follows_the_rules_is_accepted(string yaml, int taskCount)
    {
        var document = Parse(yaml);

        Assert.Empty(document.Problems);
        Assert.True(document.IsValid);
        Assert.Equal(taskCount, document.ValidTasks.Count());
        Assert.Equal(taskCount, document.Entries.Count);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Whole files, failing: the line and column of the one problem, and a key phrase of its message.
    // ---------------------------------------------------------------------------------------------------------------
    public static TheoryData<string, int, int, string> RejectedFiles => new()
    {
        // id pattern: uppercase, a leading symbol, 129 characters, a space
        { "tasks:\n  Upper: { schedule: \"@daily\", command: run }\n", 2, 3, "task id 'Upper' must match ^[a-z0-9][a-z0-9._-]{0,127}$" },
        { "tasks:\n  -lead: { schedule: \"@daily\", command: run }\n", 2, 3, "task id '-lead' must match" },
        { "tasks:\n  .lead: { schedule: \"@daily\", command: run }\n", 2, 3, "task id '.lead' must match" },
        { "tasks:\n  _lead: { schedule: \"@daily\", command: run }\n", 2, 3, "task id '_lead' must match" },
        { "tasks:\n  " + Repeat('a', 129) + ": { schedule: \"@daily\", command: run }\n", 2, 3, "must match ^[a-z0-9][a-z0-9._-]{0,127}$" },
        { "tasks:\n  \"two words\": { schedule: \"@daily\", command: run }\n", 2, 3, "task id 'two words' must match" },
        // duplicate task ids
        {
            """
            tasks:
              t: { schedule: "@daily", command: run }
              t: { schedule: "@hourly", command: run }
            """,
            3, 3, "duplicate key 't' (first defined at line 2, column 3)"
        },
        // duplicate field keys
        {
            """
            tasks:
              t:
                schedule: "@daily"
                command: run
                command: again
            """,
            5, 5, "duplicate key 'command' (first defined at line 4, column 5)"
        },
        // duplicate top-level keys
        { "version: 1\nversion: 1\n", 2, 1, "duplicate key 'version' (first defined at line 1, column 1)" },
        // unknown top-level key
        { "version: 1\ntask:\n", 2, 1, "unknown top-level key 'task' (did you mean 'tasks'?)" },
        { "owner: ops\ntasks:\n", 1, 1, "unknown top-level key 'owner'; expected version, defaults or tasks" },
        // unknown key in defaults, and an invalid default time zone
        { "defaults:\n  timzone: UTC\n", 2, 3, "unknown key 'timzone' in defaults (did you mean 'timezone'?)" },
        { "defaults:\n  max_retries: 3\n", 2, 3, "unknown key 'max_retries' in defaults; the only default is timezone" },
        { "defaults:\n  timezone: Mars/Olympus\n", 2, 13, "defaults: timezone 'Mars/Olympus' is not a known IANA time zone id" },
        { "defaults: 5\n", 1, 11, "defaults must be a mapping such as { timezone: Europe/Berlin }; got the number 5" },
        // schedule is required (an unquoted cron expression: see Unquoted_cron_expression_is_reported_with_a_hint_to_quote_it)
        { "tasks:\n  t:\n    command: run\n", 2, 3, "schedule is required" },
        // command is required
        { "tasks:\n  t:\n    schedule: \"@daily\"\n", 2, 3, "command is required" },
        // tasks must be a mapping, not a list or a scalar
        { "tasks:\n  - t:\n      schedule: \"@daily\"\n      command: run\n", 2, 3, "tasks must be a mapping from task id to task (write 'my-task:' rather than '- my-task'), not a list" },
        { "tasks: [a, b]\n", 1, 8, "not a list" },
        { "tasks: 5\n", 1, 8, "tasks must be a mapping from task id to task; got the number 5" },
        // the file must be a mapping
        { "[1, 2]\n", 1, 1, "the file must be a mapping with the keys version, defaults and tasks; got a list" },
        { "just text\n", 1, 1, "the file must be a mapping" },
        // version must be 1
        { "version: 2\ntasks:\n", 1, 10, "version must be 1; got the number 2" },
        { "version: \"1\"\ntasks:\n", 1, 10, "version must be 1; got the text \"1\"" },
        { "version: 1.0\ntasks:\n", 1, 10, "version must be 1; got the number 1.0" },
        // only one document
        {
            """
            tasks:
              t: { schedule: "@daily", command: run }
            ---
            tasks:
              u: { schedule: "@daily", command: run }
            """,
            3, 1, "only one YAML document is allowed; found a second one (a '---' separator)"
        },
        { "---\n---\n", 2, 1, "only one YAML document is allowed" },
        // custom tags (type instantiation) are refused
        { "!!python/object:os.system\ntasks:\n", 1, 1, "explicit tags (tag:yaml.org,2002:python/object:os.system) are not allowed" },
        { "tasks: !custom\n  t: { schedule: \"@daily\", command: run }\n", 1, 8, "explicit tags (!custom) are not allowed" },
        // anchors and aliases are refused wherever they are
        { "tasks: &all\n  t: { schedule: \"@daily\", command: run }\n", 1, 8, "anchors (&all) are not allowed" },
        { "tasks: *all\n", 1, 8, "aliases (*all) are not allowed" },
        { "*doc\n", 1, 1, "aliases (*doc) are not allowed" },
        { "defaults:\n  timezone: *zone\n", 2, 13, "aliases (*zone) are not allowed" },
        // other syntax errors
        { "tasks:\n  t:\n    schedule: \"@daily\"\n    command: run\n   bad: indent\n", 5, 4, "YAML syntax error" },
        { "tasks:\n  t:\n    schedule: \"@daily\"\n    command: \"unterminated\n", 4, 14, "YAML syntax error: While scanning a quoted scalar, found unexpected end of stream" },
    };

    [Theory]
    [MemberData(nameof(RejectedFiles))]
    public void File_that_breaks_a_rule_is_reported_at_its_line_and_column(string yaml, int line, int column, string phrase)
    {
        var document = Parse(yaml);

        var problem = Assert.Single(document.Problems);
        Assert.Equal((line, column), (problem.Line, problem.Column));
        Assert.Contains(phrase, problem.Message, StringComparison.Ordinal);
        Assert.False(document.IsValid);
        Assert.Equal($"{FilePath}:{line}:{column}: {problem.Message}", Assert.Single(document.FormatProblems()));
    }

    [Fact]
    public void Unquoted_cron_expression_is_reported_with_a_hint_to_quote_it()
    {
        // YamlDotNet reads "*/5" as an alias named "/5" (refused, with the hint) and then fails at the next bare '*'.
        var document = Parse("tasks:\n  t:\n    schedule: */5 * * * *\n    command: run\n");

        Assert.Collection(
            document.Problems,
            alias =>
            {
                Assert.Equal((3, 15), (alias.Line, alias.Column));
                Assert.Contains("aliases (*/5) are not allowed; if this is a value that starts with '*' (such as a cron expression), put it in quotes", alias.Message, StringComparison.Ordinal);
            },
            syntax =>
            {
                Assert.Equal((3, 19), (syntax.Line, syntax.Column));
                Assert.Contains("YAML syntax error", syntax.Message, StringComparison.Ordinal);
                Assert.Contains("(a value that starts with '*' or '&', such as a cron expression, must be quoted)", syntax.Message, StringComparison.Ordinal);
            });
    }

    // Regression: TimeZoneInfo caches zones case-insensitively, so "Europe/berlin" used to pass once "Europe/Berlin"
    // had been looked up anywhere in the process.
    [Fact]
    public void Timezone_id_is_case_sensitive_whatever_was_looked_up_before()
    {
        Assert.Null(TaskRules.CheckTimezone("Europe/Berlin"));

        var problem = Assert.Single(Parse(TaskWith("    timezone: Europe/berlin")).Problems);

        Assert.Contains("timezone 'Europe/berlin' is not a known IANA time zone id", problem.Message, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Defaults
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void Default_timezone_applies_to_tasks_that_name_none()
    {
        var document = Parse("""
            defaults:
              timezone: Europe/Berlin
            tasks:
              inherits: { schedule: "@daily", command: run }
              own: { schedule: "@daily", command: run, timezone: Asia/Tokyo }
            """);

        Assert.Empty(document.Problems);
        var tasks = document.ValidTasks.ToDictionary(t => t.Id);
        Assert.Equal("Europe/Berlin", tasks["inherits"].Timezone);
        Assert.Equal("Asia/Tokyo", tasks["own"].Timezone);
        Assert.Equal("Europe/Berlin", document.EffectiveDefaultTimezone);
    }

    [Theory]
    [InlineData("tasks:\n  t: { schedule: \"@daily\", command: run }\n")]
    [InlineData("defaults:\ntasks:\n  t: { schedule: \"@daily\", command: run }\n")]
    [InlineData("defaults: {}\ntasks:\n  t: { schedule: \"@daily\", command: run }\n")]
    public void Timezone_is_UTC_when_neither_the_task_nor_the_defaults_name_one(string yaml)
    {
        var document = Parse(yaml);

        Assert.Empty(document.Problems);
        Assert.Equal("UTC", Assert.Single(document.ValidTasks).Timezone);
        Assert.Null(document.DefaultTimezone);
    }

    [Fact]
    public void Omitted_optional_fields_get_their_defaults()
    {
        var task = Assert.Single(Parse("tasks:\n  my-task: { schedule: \"@daily\", command: run }\n").ValidTasks);

        Assert.Equal("my-task", task.Name);
        Assert.Null(task.Description);
        Assert.True(task.Enabled);
        Assert.Equal(0, task.MaxRetries);
        Assert.Null(task.TimeoutSeconds);
        Assert.Empty(task.Args);
        Assert.Empty(task.Tags);
    }

    [Fact]
    public void Args_keep_the_kind_of_each_value()
    {
        var task = Assert.Single(Parse(TaskWith("    args: { s: text, q: \"7\", i: -7, f: 1.5, b: false, o: \"on\" }")).ValidTasks);

        Assert.Equal(ArgValue.Of("text"), task.Args["s"]);
        Assert.Equal(ArgValue.Of("7"), task.Args["q"]);
        Assert.Equal(ArgValue.Of(-7L), task.Args["i"]);
        Assert.Equal(ArgValue.Of(1.5), task.Args["f"]);
        Assert.Equal(ArgValue.Of(false), task.Args["b"]);
        Assert.Equal(ArgValue.Of("on"), task.Args["o"]);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Every problem, in every task, sorted by line
    // ---------------------------------------------------------------------------------------------------------------

    [Fact]
    public void File_with_several_errors_in_several_tasks_reports_all_of_them_sorted_by_line()
    {
        var document = Parse("""
            version: 2
            defaults:
              timezone: Mars/Olympus
            tasks:
              backup:
                schedule: "0 3 * * *"
                command: run
                enabled: no
                max_retries: 101
              Cache:
                schedule: "61 * * * *"
                command: warm
                shedule: x
              report:
                schedule: "@daily"
                command: ""
                tags: [ops, ops]
              cleanup:
                schedule: "@hourly"
                timeout_seconds: 0x10
              fine:
                schedule: "@daily"
                command: run
            """);

        var expected = new (int Line, int Column, string? TaskId, string Phrase)[]
        {
            (1, 10, null, "version must be 1"),
            (3, 13, null, "defaults: timezone 'Mars/Olympus'"),
            (8, 14, "backup", "'no' is not a boolean here"),
            (9, 18, "backup", "max_retries must be between 0 and 100"),
            (10, 3, "Cache", "task id 'Cache' must match"),
            (11, 15, "Cache", "schedule '61 * * * *' is not a valid cron expression"),
            (13, 5, "Cache", "unknown field 'shedule'"),
            (16, 14, "report", "command must not be empty"),
            (17, 11, "report", "tag 'ops' is listed twice"),
            (18, 3, "cleanup", "command is required"),
            (20, 22, "cleanup", "'0x10' is not a plain decimal number"),
        };
        Assert.Equal(expected.Length, document.Problems.Count);
        Assert.All(expected.Zip(document.Problems), pair =>
        {
            var (want, got) = pair;
            Assert.Equal((want.Line, want.Column, want.TaskId), (got.Line, got.Column, got.TaskId));
            Assert.Contains(want.Phrase, got.Message, StringComparison.Ordinal);
        });
        Assert.Equal(["backup", "Cache", "report", "cleanup"], document.InvalidTaskIds);
        Assert.Equal("fine", Assert.Single(document.ValidTasks).Id);
    }

    // Regression: List.Sort is unstable, so with more than 16 problems those sharing a position came out shuffled.
    [Fact]
    public void Problems_at_the_same_position_keep_the_order_they_were_found_in()
    {
        var yaml = "tasks:\n" + string.Concat(Enumerable.Range(0, 30).Select(i => $"  t{i}: {{}}\n"));

        var document = Parse(yaml);

        Assert.Equal(60, document.Problems.Count);
        Assert.All(document.Problems.Chunk(2), pair =>
        {
            Assert.Equal((pair[0].Line, pair[0].Column), (pair[1].Line, pair[1].Column));
            Assert.Contains("schedule is required", pair[0].Message, StringComparison.Ordinal);
            Assert.Contains("command is required", pair[1].Message, StringComparison.Ordinal);
        });
    }

    // Regression: the walker used to leave the default in place of a refused value and still build the task, so
    // `enabled: no` produced a "valid" task with Enabled = true that on_invalid: skip_task would have synced.
    [Fact]
    public void Task_with_a_refused_value_is_invalid_rather_than_built_with_the_default()
    {
        var document = Parse(TaskWith("    enabled: no"));

        Assert.Single(document.Problems);
        Assert.Equal(["t"], document.InvalidTaskIds);
        Assert.Empty(document.ValidTasks);
    }

    // Regression: an alias used as a value was skipped without a problem, so `tasks: *x` loaded as a valid, empty file.
    [Fact]
    public void Alias_in_place_of_the_tasks_is_refused_rather_than_read_as_no_tasks()
    {
        var document = Parse("version: 1\ntasks: *everything\n");

        Assert.False(document.IsValid);
        Assert.Contains("aliases (*everything) are not allowed", Assert.Single(document.Problems).Message, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Encoding details
    // ---------------------------------------------------------------------------------------------------------------

    // Regression: the byte order mark was read as part of the first key ("unknown top-level key '\uFEFFtasks'").
    [Fact]
    public void Utf8_byte_order_mark_at_the_start_is_allowed()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(TaskWith("    enabled: false"))).ToArray();

        var document = ScheduleLoader.Load(bytes, FilePath);

        Assert.Empty(document.Problems);
        Assert.False(Assert.Single(document.ValidTasks).Enabled);
    }

    [Fact]
    public void Crlf_line_endings_give_the_same_positions()
    {
        var document = Parse(TaskWith("    enabled: no").Replace("\n", "\r\n", StringComparison.Ordinal));

        var problem = Assert.Single(document.Problems);
        Assert.Equal((3, 14), (problem.Line, problem.Column));
    }

    [Fact]
    public void Column_counts_characters_not_bytes()
    {
        // "größe" is 5 characters and 7 bytes; the null value is the 26th character of its line.
        var document = ScheduleLoader.Load(Encoding.UTF8.GetBytes(TaskWith("    args: { größe: 1, n: ~ }")), FilePath);

        var problem = Assert.Single(document.Problems);
        Assert.Equal((3, 26), (problem.Line, problem.Column));
    }

    // YamlDotNet places "invalid tab as indentation" at the enclosing mapping (1:1); the loader points at the tab.
    [Fact]
    public void Tab_used_as_indentation_is_reported_at_the_tab()
    {
        var document = Parse("tasks:\n  t:\n    schedule: \"@daily\"\n\tcommand: run\n");

        var problem = Assert.Single(document.Problems);
        Assert.Equal((4, 1), (problem.Line, problem.Column));
        Assert.Contains("tab", problem.Message, StringComparison.Ordinal);
    }

    // PostgreSQL text cannot hold U+0000: it is refused in the file, with its position, not later at the database.
    [Fact]
    public void Nul_character_in_a_text_field_is_reported_at_the_value()
    {
        var document = Parse(TaskWith("    name: \"a\\0b\""));

        var problem = Assert.Single(document.Problems);
        Assert.Equal((3, 11), (problem.Line, problem.Column));
    }
}
