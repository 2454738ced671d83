using ScheduleSync.Yaml;

namespace ScheduleSync.Sync;

public enum SyncStatus
{
    /// <summary>Neither the file nor the database changed since the last run: nothing was touched.</summary>
    NoOp,
    Completed,
    /// <summary>The file is invalid: nothing was applied in either direction.</summary>
    InvalidFile,
    /// <summary>The mass-deletion guard refused the run: nothing was applied.</summary>
    Refused,
}

/// <summary>The summary of one sync run.</summary>
internal sealed record SyncResult
{
    public required SyncStatus Status { get; init; }
    public long? RunId { get; init; }
    public int Inserts { get; init; }
    public int Updates { get; init; }
    public int Deletes { get; init; }
    public int Exports { get; init; }
    public int NewConflicts { get; init; }
    public int OpenConflicts { get; init; }
    public string? ChecksumBefore { get; init; }
    public string? ChecksumAfter { get; init; }
    public string? Error { get; init; }
    public IReadOnlyList<YamlProblem> Problems { get; init; } = [];

    /// <summary>What the write-back could not do as asked (a layout re-rendered, an export skipped); logged and announced.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    public SyncPlan? Plan { get; init; }
    public TimeSpan Duration { get; init; }

    /// <summary>Valid tasks in the file after a completed run (for the metrics); null when the run did not count them.</summary>
    public int? FileTasks { get; init; }

    /// <summary>The file's <c>defaults.timezone</c> (UTC when none) as read by this run; null when the run did not parse the file.</summary>
    public string? DefaultTimezone { get; init; }

    /// <summary>Ids of database rows that break a rule (plain SQL): not exported, reported until fixed.</summary>
    public IReadOnlyList<string> InvalidRows => Plan is null ? [] : [.. Plan.InvalidInDatabase.Select(a => a.Id)];

    /// <summary>Ids whose content changed on either side in this run.</summary>
    public IReadOnlyList<string> ChangedTaskIds => Plan is null ? [] : [.. Plan.Actions.Where(a => a.ChangesDatabase || a.ChangesFile).Select(a => a.Id)];
}
