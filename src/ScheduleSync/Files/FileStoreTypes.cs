using System.Text;

namespace ScheduleSync.Files;

/// <summary>Settings of <see cref="ConfigFileStore"/>; defaults in code, bindable from configuration.</summary>
internal sealed class FileStoreOptions
{
    /// <summary>How long to wait for the sidecar lock before <see cref="FileLockTimeoutException"/>.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many previous versions the rotation folder keeps (0: only the <c>.bak</c>).</summary>
    public int BackupCount { get; set; } = 10;

    /// <summary>The largest file that is read (SPEC §1, default 16 MiB); a larger one is refused while reading.</summary>
    public long MaxFileBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>
    /// The rotation folder; when null, <c>&lt;dir&gt;/.schedsync-backups/&lt;file name&gt;/</c> next to the config
    /// file (one folder per config file, so two files in one directory never prune each other's backups).
    /// </summary>
    public string? BackupDirectory { get; set; }
}

/// <summary>What the config file held at one moment.</summary>
internal sealed record FileSnapshot(bool Exists, ReadOnlyMemory<byte> Bytes, string Checksum, DateTime? LastWriteUtc)
{
    /// <summary>The checksum of a missing file: never equal to a SHA-256 of any content (not hex, not 64 chars).</summary>
    public const string AbsentChecksum = "absent";

    public static FileSnapshot Absent { get; } = new(false, ReadOnlyMemory<byte>.Empty, AbsentChecksum, null);

    /// <summary>The content decoded as UTF-8 (invalid sequences become U+FFFD; <see cref="Bytes"/> keeps the original).</summary>
    public string Text => _text ??= Encoding.UTF8.GetString(Bytes.Span);

    // Decoded on first use only: a no-op sync hashes the bytes and never needs the text.
    private string? _text;
}

internal abstract record WriteResult
{
    private WriteResult()
    {
    }

    /// <summary>The file now holds the new content. <paramref name="Replaced"/> is false when it already did, and
    /// nothing was touched.</summary>
    public sealed record Written(string Checksum, bool Replaced) : WriteResult;

    /// <summary>The file no longer has the expected checksum: someone changed it since it was read. Nothing was written.</summary>
    public sealed record ChangedMeanwhile(FileSnapshot Current) : WriteResult;
}

/// <summary>One version in the rotation folder.</summary>
internal sealed record BackupInfo(string Path, DateTime TimeUtc, string ChecksumPrefix, long Size);
