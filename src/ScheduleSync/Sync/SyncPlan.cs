using ScheduleSync.Tasks;

namespace ScheduleSync.Sync;

/// <summary>What a sync does with one task.</summary>
public enum SyncActionKind
{
    /// <summary>Both sides and the base agree.</summary>
    InSync,
    /// <summary>Both sides agree but the base differs or is missing: the base is set.</summary>
    SetBase,
    /// <summary>The task is gone from both sides: its base is dropped.</summary>
    DropBase,
    /// <summary>The file changed: the task is inserted into the database.</summary>
    ImportInsert,
    /// <summary>The file changed: the database row is updated.</summary>
    ImportUpdate,
    /// <summary>The task was removed from the file: it is deleted from the database.</summary>
    ImportDelete,
    /// <summary>The database changed: the task is added to the file.</summary>
    ExportAdd,
    /// <summary>The database changed: the task is replaced in the file.</summary>
    ExportUpdate,
    /// <summary>The task was deleted from the database: it is removed from the file.</summary>
    ExportRemove,
    /// <summary>Both sides changed different fields: both get the merged task.</summary>
    Merge,
    /// <summary>Both sides changed the task incompatibly: a conflict is stored and neither side is touched.</summary>
    Conflict,
    /// <summary>An open conflict freezes the task until it is resolved.</summary>
    Frozen,
    /// <summary>An open conflict whose two sides have become equal closes itself.</summary>
    CloseConflict,
    /// <summary>The task is invalid on one side: it keeps its last good state on both.</summary>
    SkipInvalid,
}

/// <summary>One task's decision, with the three versions it was made from and what both sides get.</summary>
public sealed record SyncAction(
    string Id,
    SyncActionKind Kind,
    TaskDefinition? Yaml,
    TaskDefinition? Database,
    TaskDefinition? Base,
    TaskDefinition? Result,
    IReadOnlyList<string> ConflictingFields,
    string? Reason = null)
{
    public bool ChangesDatabase => Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.ImportDelete or SyncActionKind.Merge;
    public bool ChangesFile => Kind is SyncActionKind.ExportAdd or SyncActionKind.ExportUpdate or SyncActionKind.ExportRemove or SyncActionKind.Merge;

    /// <summary>A <see cref="SyncActionKind.SkipInvalid"/> because the database row breaks a rule (plain SQL): reported until fixed.</summary>
    public bool InvalidInDatabase { get; init; }

    public bool Deletes => Kind is SyncActionKind.ImportDelete or SyncActionKind.ExportRemove;
}

/// <summary>The plan of a sync: one action per task id, sorted by id; or a refusal that stops the whole run.</summary>
public sealed record SyncPlan(IReadOnlyList<SyncAction> Actions, string? Refusal)
{
    public bool IsRefused => Refusal is not null;
    public int Count(SyncActionKind kind) => Actions.Count(a => a.Kind == kind);
    public IEnumerable<SyncAction> Changes => Actions.Where(a => a.Kind is not (SyncActionKind.InSync or SyncActionKind.Frozen));

    /// <summary>Rows that break a rule in the database: not exported, reported by every run, status and plan.</summary>
    public IEnumerable<SyncAction> InvalidInDatabase => Actions.Where(a => a.InvalidInDatabase);

    /// <summary>The error a completed run reports for rows that break a rule in the database; null when there are none.</summary>
    public string? InvalidRowsError()
    {
        var invalid = InvalidInDatabase.ToList();
        if (invalid.Count == 0) return null;
        return $"{invalid.Count} task(s) in the database break the rules and are not exported until fixed: "
            + string.Join(" | ", invalid.Select(a => $"'{a.Id}' {a.Reason}"));
    }
}

public enum InvalidTaskPolicy { RejectFile, SkipTask }

/// <summary>How a run weighs the two sides (SPEC §4, restore).</summary>
public enum SyncMode
{
    /// <summary>The three-way rules.</summary>
    Normal,
    /// <summary><c>restore</c>: the file was brought back from a backup; every difference is exported from the database.</summary>
    PreferDatabase,
    /// <summary><c>restore --revert-database</c>: the backup is applied to the database.</summary>
    PreferFile,
}

/// <summary>Sync settings (section "Sync").</summary>
public sealed class SyncOptions
{
    /// <summary>Merge field by field when the two sides changed different fields.</summary>
    public bool AutoMerge { get; set; } = true;
    public InvalidTaskPolicy OnInvalid { get; set; } = InvalidTaskPolicy.RejectFile;
    /// <summary>Share of one side's tasks that one run may delete, when that side has more than <see cref="MassDeleteMinimum"/>.</summary>
    public double MassDeleteShare { get; set; } = 0.5;
    public int MassDeleteMinimum { get; set; } = 4;
    public bool AllowMassDelete { get; set; }

    /// <summary>How the refusal message tells the reader to allow it: the CLI flag or the API parameter, by who asked.</summary>
    internal string AllowHint { get; set; } = CliAllowHint;

    internal const string CliAllowHint = "run again with --allow-mass-delete";
    internal const string ApiAllowHint = "allow it with POST /api/sync?allow_mass_delete=true (or schedsync sync --allow-mass-delete)";
}

/// <summary>What the planner is given: each side's valid tasks, ids present but invalid, the base, open conflicts.</summary>
public sealed record SyncInputs(
    IReadOnlyDictionary<string, TaskDefinition> Yaml,
    IReadOnlyDictionary<string, TaskDefinition> Database,
    IReadOnlyDictionary<string, TaskDefinition> Base,
    IReadOnlySet<string> YamlInvalid,
    IReadOnlySet<string> DatabaseInvalid,
    IReadOnlySet<string> OpenConflicts)
{
    /// <summary>How many tasks the file has in all, when <see cref="Yaml"/> holds only those worth planning (mass-delete guard).</summary>
    public int? YamlTotal { get; init; }

    /// <summary>How many tasks the database has in all, when <see cref="Database"/> holds only those worth planning.</summary>
    public int? DatabaseTotal { get; init; }

    /// <summary>
    /// Ids whose deletion an earlier run refused while the file is still the one it refused (SPEC §4): a deletion of any
    /// of them stays refused, whatever share other changes make it.
    /// </summary>
    public IReadOnlySet<string> RefusedDeletions { get; init; } = new HashSet<string>();

    /// <summary>
    /// (id, content hash) pairs an earlier run wrote to the file and may not have committed (a crash between the file
    /// write and the commit): a file version equal to one of them is the system's own export, so it counts as the base.
    /// </summary>
    public IReadOnlySet<(string Id, string Hash)> RecordedExports { get; init; } = new HashSet<(string, string)>();

    /// <summary>What is wrong with each invalid database row (for the report; <see cref="DatabaseInvalid"/> decides).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> DatabaseProblems { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>
    /// Restore: the file was just brought back from a backup and the database is the truth; every task where the two
    /// differ counts as changed in the database only (base := file), so it is exported, never imported.
    /// </summary>
    public SyncInputs PreferDatabase() => this with { Base = WithBase(Yaml), RecordedExports = new HashSet<(string, string)>() };

    /// <summary>
    /// <c>restore --revert-database</c>: the old version is applied to the database; every difference counts as
    /// changed in the file only (base := database), so it is imported.
    /// </summary>
    public SyncInputs PreferFile() => this with { Base = WithBase(Database), RecordedExports = new HashSet<(string, string)>() };

    private Dictionary<string, TaskDefinition> WithBase(IReadOnlyDictionary<string, TaskDefinition> side)
    {
        // Ids not loaded in full (equal on all three sides) keep their base; loaded ones take the chosen side's version.
        var loaded = new HashSet<string>(Yaml.Keys, StringComparer.Ordinal);
        loaded.UnionWith(Database.Keys);
        var bases = Base.Where(b => !loaded.Contains(b.Key) && !YamlInvalid.Contains(b.Key) && !DatabaseInvalid.Contains(b.Key))
            .ToDictionary(StringComparer.Ordinal);
        foreach (var (id, task) in side)
            bases[id] = task;
        // An invalid task keeps its base: it is skipped, both sides keep their last good state.
        foreach (var id in YamlInvalid.Concat(DatabaseInvalid))
            if (Base.TryGetValue(id, out var b)) bases[id] = b;
        return bases;
    }
}
