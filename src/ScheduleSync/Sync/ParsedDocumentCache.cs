using ScheduleSync.Files;
using ScheduleSync.Yaml;

namespace ScheduleSync.Sync;

/// <summary>
/// The last document read or written, by checksum: when the file has not changed since, the next sync (an API write's
/// export, say) does not parse it again; when it has, only the task blocks the change touches are parsed again
/// (<see cref="ScheduleLoader.Reload"/>), so a one-task edit costs about the same in a file of any size.
/// </summary>
internal sealed class ParsedDocumentCache(string configPath)
{
    private sealed record Entry(string Checksum, ScheduleDocument Document);
    private volatile Entry? _last;

    /// <summary>The parsed file for a snapshot, from the cache when the content is the same.</summary>
    /// <param name="parsing">Called before a real parse (not for a cache hit): a large file's progress line.</param>
    public ScheduleDocument Load(FileSnapshot snapshot, Action<int, int>? validating = null, Action? parsing = null)
    {
        var last = _last;
        if (last is not null && last.Checksum == snapshot.Checksum && snapshot.Exists)
            return last.Document;
        if (!snapshot.Exists) return ScheduleLoader.Parse("", configPath);
        parsing?.Invoke();
        var document = ScheduleLoader.Reload(last?.Document, snapshot.Bytes.Span, configPath, validating: validating);
        Remember(snapshot.Checksum, document);
        return document;
    }

    public void Remember(string checksum, ScheduleDocument document) => _last = new Entry(checksum, document);
}
