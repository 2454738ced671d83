using System.Collections.Immutable;

namespace ScheduleSync.Tasks;

/// <summary>
/// A task as given by a source, before defaults: every field optional. The YAML loader and the API fill it with
/// values of the right type; <see cref="Build"/> applies the SPEC §1 rules and defaults.
/// </summary>
internal sealed class TaskDraft
{
    public required string Id { get; init; }
    public string? Name { get; set; }
    public string? Description { get; set; }
    public string? Schedule { get; set; }
    public string? Timezone { get; set; }
    public string? Command { get; set; }
    public Dictionary<string, ArgValue>? Args { get; set; }
    public bool? Enabled { get; set; }
    public long? TimeoutSeconds { get; set; }
    public long? MaxRetries { get; set; }
    public List<string>? Tags { get; set; }

    /// <summary>Fields the source gave but could not read (wrong type): not reported again as missing.</summary>
    public HashSet<string> Unreadable { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Checks every rule and reports each problem as (field, message); field is "" for the task as a whole.
    /// Returns the normalised task, or null when anything was reported.
    /// </summary>
    public TaskDefinition? Build(string defaultTimezone, Action<string, string> report)
    {
        var ok = true;
        void Check(string field, string? message)
        {
            if (message is null) return;
            ok = false;
            report(field, message);
        }

        void CheckNoNul(string field, string? text)
        {
            if (text is not null && text.Contains('\0', StringComparison.Ordinal)) Check(field, $"{field} must not contain the NUL character (\\0)");
        }

        Check("id", TaskRules.CheckId(Id));
        if (Name is not null) Check("name", TaskRules.CheckName(Name));
        if (Description is not null) Check("description", TaskRules.CheckDescription(Description));
        // Five calls rather than a loop over an array of pairs: a large file builds tens of thousands of drafts.
        CheckNoNul("name", Name);
        CheckNoNul("description", Description);
        CheckNoNul("schedule", Schedule);
        CheckNoNul("timezone", Timezone);
        CheckNoNul("command", Command);
        if (Args is not null)
            foreach (var (key, value) in Args)
                if (key.Contains('\0', StringComparison.Ordinal) || value.Text.Contains('\0', StringComparison.Ordinal)) Check("args", $"args.{key.Replace("\0", "\\0", StringComparison.Ordinal)} must not contain the NUL character (\\0)");
        if (Schedule is not null) Check("schedule", TaskRules.CheckSchedule(Schedule));
        else if (!Unreadable.Contains("schedule")) Check("schedule", "schedule is required (a cron expression such as \"0 3 * * *\" or a macro such as @daily)");
        if (Timezone is not null) Check("timezone", TaskRules.CheckTimezone(Timezone));
        if (Command is not null) Check("command", TaskRules.CheckCommand(Command));
        else if (!Unreadable.Contains("command")) Check("command", "command is required");
        if (Args is not null)
            foreach (var key in Args.Keys)
                Check("args", TaskRules.CheckArgKey(key));
        if (TimeoutSeconds is { } timeout) Check("timeout_seconds", TaskRules.CheckTimeoutSeconds(timeout));
        if (MaxRetries is { } retries) Check("max_retries", TaskRules.CheckMaxRetries(retries));
        if (Tags is not null)
        {
            // Tasks have a few tags: a set only for a long list.
            var seen = Tags.Count > 8 ? new HashSet<string>(StringComparer.Ordinal) : null;
            for (var i = 0; i < Tags.Count; i++)
            {
                var tag = Tags[i];
                Check("tags", TaskRules.CheckTag(tag));
                if (seen is not null ? !seen.Add(tag) : Tags.IndexOf(tag, 0, i) >= 0) Check("tags", $"tag '{TaskRules.Shorten(tag)}' is listed twice");
            }
        }

        if (!ok || Unreadable.Count > 0) return null;
        return Normalised(defaultTimezone);
    }

    /// <summary>Fields separated by one space, nothing around them; most schedules are written so already.</summary>
    private static string NormaliseSchedule(string schedule)
    {
        var normal = schedule.Length > 0 && schedule[0] != ' ' && schedule[^1] != ' ';
        for (var i = 0; normal && i < schedule.Length; i++)
            normal = schedule[i] == ' ' ? schedule[i - 1] != ' ' : !char.IsWhiteSpace(schedule[i]);
        return normal ? schedule : string.Join(' ', schedule.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    private TaskDefinition Normalised(string defaultTimezone)
    {
        return new TaskDefinition
        {
            Id = Id,
            Name = Name ?? Id,
            Description = Description,
            Schedule = NormaliseSchedule(Schedule!),
            Timezone = Timezone ?? defaultTimezone,
            Command = Command!,
            Args = Args is null
                ? ImmutableSortedDictionary.Create<string, ArgValue>(StringComparer.Ordinal)
                : Args.ToImmutableSortedDictionary(StringComparer.Ordinal),
            Enabled = Enabled ?? true,
            TimeoutSeconds = TimeoutSeconds is { } t ? (int)t : null,
            MaxRetries = (int)(MaxRetries ?? 0),
            Tags = Tags is null ? [] : [.. Tags],
        };
    }
}
