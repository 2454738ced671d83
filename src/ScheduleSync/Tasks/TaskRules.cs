using System.Text.RegularExpressions;
using Cronos;

namespace ScheduleSync.Tasks;

/// <summary>
/// The SPEC §1 rules for one field's value, shared by the YAML loader (which adds file positions) and the API
/// (which names the field). Each check returns null when the value is fine, else the message.
/// </summary>
internal static partial class TaskRules
{
    public const int MaxNameLength = 200;
    public const int MaxDescriptionLength = 2_000;
    public const int MaxCommandLength = 4_000;
    public const int MaxRetriesLimit = 100;
    public const string IdPatternText = "^[a-z0-9][a-z0-9._-]{0,127}$";

    [GeneratedRegex(IdPatternText, RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    public static bool IsValidId(string id) => IdPattern().IsMatch(id);

    public static string? CheckId(string id) =>
        IsValidId(id) ? null : $"task id '{Shorten(id)}' must match {IdPatternText} (lowercase letters, digits, '.', '_', '-')";

    public static string? CheckName(string name) =>
        name.Length == 0 ? "name must not be empty (leave it out to default to the id)"
        : name.Length > MaxNameLength ? $"name is {name.Length} characters long; the limit is {MaxNameLength}"
        : null;

    public static string? CheckDescription(string description) =>
        description.Length > MaxDescriptionLength
            ? $"description is {description.Length} characters long; the limit is {MaxDescriptionLength}"
            : null;

    public static string? CheckCommand(string command) =>
        string.IsNullOrWhiteSpace(command) ? "command must not be empty"
        : command.Length > MaxCommandLength ? $"command is {command.Length} characters long; the limit is {MaxCommandLength}"
        : null;

    // Many tasks share a schedule or a zone, and a sync validates every task of both sides: remember the verdicts.
    private static readonly VerdictCache ScheduleVerdicts = new(CheckScheduleUncached);
    private static readonly VerdictCache TimezoneVerdicts = new(CheckTimezoneUncached);

    public static string? CheckSchedule(string schedule) => ScheduleVerdicts.Check(schedule);

    public static string? CheckTimezone(string timezone) => TimezoneVerdicts.Check(timezone);

    private static string? CheckScheduleUncached(string schedule)
    {
        try
        {
            ParseSchedule(schedule);
            return null;
        }
        catch (CronFormatException e)
        {
            return $"schedule '{Shorten(schedule)}' is not a valid cron expression: {e.Message}";
        }
    }

    /// <summary>5 fields (minute precision), 6 fields (with seconds first), or a macro such as <c>@daily</c>.</summary>
    public static CronExpression ParseSchedule(string schedule)
    {
        var trimmed = schedule.Trim();
        if (trimmed.Length == 0)
            throw new CronFormatException("the expression is empty");
        if (trimmed.StartsWith('@'))
            return CronExpression.Parse(trimmed, CronFormat.Standard);
        var fields = trimmed.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
        return fields switch
        {
            5 => CronExpression.Parse(trimmed, CronFormat.Standard),
            6 => CronExpression.Parse(trimmed, CronFormat.IncludeSeconds),
            _ => throw new CronFormatException($"it has {fields} fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)"),
        };
    }

    private static string? CheckTimezoneUncached(string timezone) =>
        TryFindTimeZone(timezone, out _) ? null : $"timezone '{Shorten(timezone)}' is not a known IANA time zone id (e.g. UTC, Europe/Berlin)";

    public static bool TryFindTimeZone(string id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        if (id.Length == 0 || id.Length > 64 || id.Contains("..", StringComparison.Ordinal))
            return false;
        // The id must match exactly: TimeZoneInfo caches zones case-insensitively, so without the ordinal compare
        // "Europe/berlin" was refused or accepted depending on whether "Europe/Berlin" had been looked up before.
        if (!TimeZoneInfo.TryFindSystemTimeZoneById(id, out var found) || !found.HasIanaId
            || !string.Equals(found.Id, id, StringComparison.Ordinal))
            return false;
        zone = found;
        return true;
    }

    public static string? CheckTimeoutSeconds(long value) =>
        value > 0 && value <= int.MaxValue ? null : $"timeout_seconds must be a positive whole number of seconds (at most {int.MaxValue}); got {value}";

    public static string? CheckMaxRetries(long value) =>
        value is >= 0 and <= MaxRetriesLimit ? null : $"max_retries must be between 0 and {MaxRetriesLimit}; got {value}";

    public static string? CheckTag(string tag) =>
        IsValidId(tag) ? null : $"tag '{Shorten(tag)}' must match {IdPatternText}";

    public static string? CheckArgKey(string key) =>
        key.Length is > 0 and <= 128 ? null : "args keys must be non-empty strings of at most 128 characters";

    public static string Shorten(string value) =>
        value.Length <= 60 ? value : string.Concat(value.AsSpan(0, 57), "...");

    /// <summary>A bounded memo of a pure check: value → message (null when valid).</summary>
    private sealed class VerdictCache(Func<string, string?> check)
    {
        private const int Capacity = 10_000;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string?> _verdicts = new(StringComparer.Ordinal);

        public string? Check(string value)
        {
            if (_verdicts.TryGetValue(value, out var verdict)) return verdict;
            verdict = check(value);
            if (_verdicts.Count >= Capacity) _verdicts.Clear();
            _verdicts[value] = verdict;
            return verdict;
        }
    }
}
