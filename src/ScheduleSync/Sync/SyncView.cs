namespace ScheduleSync.Sync;

/// <summary>
/// A runner's last view of the database side (issue 15): every task's stored content hash and this replica's base
/// hashes, current up to event <see cref="EventSeq"/>. The next run reads only what changed since — the tasks named by
/// <c>task_changed</c> events (every change of a row has one, whoever made it) and the bases of conflicts resolved
/// meanwhile — instead of every row and base entry. It reads everything again whenever it cannot be sure the view is
/// whole: on its first run, when events in the range were pruned, when another process ran a sync of this replica
/// (<see cref="LastRun"/> moved), when the replica was forgotten and made again (<see cref="ReplicaCreated"/>), after a
/// run that failed, or when so much changed that reading it all costs no more.
/// </summary>
internal sealed class SyncView
{
    /// <summary>Below this many events since the view, read only the changes; above it (or an eighth of the tasks), everything.</summary>
    public const int MaxEventsRead = 2_000;

    public required Dictionary<string, string?> Database { get; init; }
    public required Dictionary<string, string> Base { get; init; }
    public long EventSeq { get; set; }
    public DateTime? ReplicaCreated { get; init; }
    public long? LastRun { get; set; }

    /// <summary>Whether the changes since this view can be read instead of everything.</summary>
    public bool CanFollow(SyncTables.RunState state) =>
        ReplicaCreated == state.ReplicaCreated && LastRun == state.LastRun && EventSeq <= state.EventSeq
        && state.EventSeq - EventSeq <= Math.Max(MaxEventsRead, Database.Count / 8);

    /// <summary>Applies what changed; false (the view is unusable) when the log no longer holds every event of the range.</summary>
    public bool Follow(SyncTables.Changes changes, long upTo)
    {
        if (changes.EventsHeld != upTo - EventSeq) return false;
        foreach (var (id, hash, exists) in changes.Tasks)
        {
            if (exists) Database[id] = hash;
            else Database.Remove(id);
        }
        foreach (var (id, hash) in changes.Bases)
        {
            if (hash is null) Base.Remove(id);
            else Base[id] = hash;
        }
        EventSeq = upTo;
        return true;
    }

    /// <summary>A committed run's base writes, in the order they were made.</summary>
    public void Apply(IEnumerable<(IReadOnlyList<Tasks.TaskDefinition> Upserts, IReadOnlyList<string> Deletes)> writes)
    {
        foreach (var (upserts, deletes) in writes)
        {
            foreach (var task in upserts) Base[task.Id] = task.ContentHash;
            foreach (var id in deletes) Base.Remove(id);
        }
    }
}
