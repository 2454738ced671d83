using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace ScheduleSync.Files;

/// <summary>
/// Reads and safely writes the config file (SPEC §2): sidecar flock, checksum compare-and-swap, <c>.bak</c> plus a
/// rotation of previous versions, and an atomic, durable replace (temp file in the same directory, fsync, rename,
/// fsync of the directory) that keeps the target's mode and owner and follows a symlinked target.
/// Readers take no lock: rename is atomic, so a reader sees the old or the new file, never a torn one.
/// </summary>
/// <remarks>
/// Open the store with <see cref="Open"/>, which first removes temp files a crashed writer left behind; the
/// constructor itself does no I/O. One instance is meant for one logical writer; writers in other threads or
/// processes are excluded by <see cref="Lock"/>, not by the instance.
/// </remarks>
internal sealed partial class ConfigFileStore
{
    private const uint NewFileMode = 0b110_100_000; // 0640
    private const uint TempCreateMode = 0b110_000_000; // 0600 until the final mode is set
    private const uint BackupDirectoryMode = 0b111_101_000; // 0750
    private const int MaxUpdateAttempts = 10;

    private readonly FileStoreOptions _options;
    private FileLock? _heldLock;

    public ConfigFileStore(string configPath, FileStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(configPath);
        _options = options ?? new FileStoreOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(_options.BackupCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.LockTimeout, TimeSpan.Zero);
        ConfigPath = Path.GetFullPath(configPath);
        LockPath = ConfigPath + ".lock";
        BakPath = ConfigPath + ".bak";
        BackupDirectory = DefaultBackupDirectory(ConfigPath, _options);
    }

    /// <summary>The configured path (possibly a symlink; it is kept, and the file it points to is replaced).</summary>
    public string ConfigPath { get; }

    /// <summary>The sidecar lock file, <c>&lt;file&gt;.lock</c>, next to the configured path.</summary>
    public string LockPath { get; }

    /// <summary>The latest previous version, <c>&lt;file&gt;.bak</c>, next to the configured path.</summary>
    public string BakPath { get; }

    /// <summary>The rotation folder of the last <see cref="FileStoreOptions.BackupCount"/> versions.</summary>
    public string BackupDirectory { get; }

    /// <summary>
    /// Test hook: called with the name of each I/O step of a read or write just before it runs; returning true makes
    /// that step fail as if the system call had (EIO). Per instance, so parallel tests do not see each other's faults.
    /// </summary>
    internal Func<string, bool>? FaultInjector { get; set; }

    /// <summary>Removes temp files a crashed writer left behind, then returns a store for the file.</summary>
    public static ConfigFileStore Open(string configPath, FileStoreOptions? options = null)
    {
        _ = CleanStaleTempFiles(configPath, options);
        return new ConfigFileStore(configPath, options);
    }

    /// <summary>
    /// Deletes leftover temp files (<c>.&lt;file&gt;.tmp-*</c>) of the config file, its <c>.bak</c>, its real target
    /// when it is a symlink, and the rotation folder. When there are any, it deletes them under the lock, so a temp
    /// file of a writer that is alive is never removed. Returns how many it deleted.
    /// </summary>
    public static int CleanStaleTempFiles(string configPath, FileStoreOptions? options = null)
    {
        var store = new ConfigFileStore(configPath, options);
        if (store.FindTempFiles().Count == 0) return 0;
        using var held = store.Lock();
        int deleted = 0;
        foreach (string temp in store.FindTempFiles())
        {
            if (Posix.Unlink(temp) == 0) deleted++;
        }
        return deleted;
    }

    /// <summary>Reads the file without a lock; a missing file gives <see cref="FileSnapshot.Absent"/>.</summary>
    public FileSnapshot Read() => ReadFile(ConfigPath, "read").Snapshot;

    /// <summary>Takes the exclusive sidecar lock (waiting up to <paramref name="timeout"/>, default from options).</summary>
    /// <exception cref="FileLockTimeoutException">Another process held it for the whole timeout.</exception>
    public FileLock Lock(TimeSpan? timeout = null)
    {
        var fileLock = FileLock.Acquire(LockPath, timeout ?? _options.LockTimeout);
        // Remembered so that WriteLocked can refuse to run without it.
        _heldLock = fileLock;
        fileLock.Released = () => Interlocked.CompareExchange(ref _heldLock, null, fileLock);
        return fileLock;
    }

    /// <summary>
    /// Replaces the file with <paramref name="newText"/> if it still has <paramref name="expectedChecksum"/>
    /// (<see cref="FileSnapshot.AbsentChecksum"/>: if it still does not exist; null: whatever it holds).
    /// The caller must hold <see cref="Lock"/>.
    /// </summary>
    public WriteResult WriteLocked(string? expectedChecksum, string newText) =>
        WriteLocked(expectedChecksum, Encoding.UTF8.GetBytes(newText));

    public WriteResult WriteLocked(string? expectedChecksum, ReadOnlyMemory<byte> newBytes)
    {
        if (_heldLock is not { IsHeld: true })
        {
            throw new InvalidOperationException($"WriteLocked needs the lock on '{LockPath}': call Lock() first.");
        }

        string target = ResolveTarget();
        var (current, status) = ReadFile(target, "re-read current file");
        if (expectedChecksum is not null && current.Checksum != expectedChecksum)
        {
            return new WriteResult.ChangedMeanwhile(current);
        }

        string newChecksum = Checksum(newBytes.Span);
        if (current.Exists && current.Checksum == newChecksum)
        {
            return new WriteResult.Written(newChecksum, Replaced: false);
        }

        if (status is { } existing)
        {
            if (!existing.IsRegularFile)
            {
                throw Failure("check target", target, "it is not a regular file", null, unchanged: true);
            }
            // Backups get the file's permissions (they hold the same content) and, where we may, its owner.
            var backupMeta = new TargetMeta(existing.Permissions, existing.Uid, existing.Gid, OwnerRequired: false);
            // Backups are not fsynced: they do not protect the target (which is), and each fsync costs milliseconds
            // on every save. A backup torn by a power loss is refused by Restore (its checksum no longer matches).
            WriteAtomic(BakPath, current.Bytes.Span, backupMeta, isTarget: false, durable: false);
            WriteRotationBackup(current, backupMeta);
        }

        var meta = status is { } s
            ? new TargetMeta(s.Permissions, s.Uid, s.Gid, OwnerRequired: true)
            : new TargetMeta(NewFileMode, null, null, OwnerRequired: false);
        WriteAtomic(target, newBytes.Span, meta, isTarget: true);

        // Guards against a file system that acknowledged the write but does not return it (and tells a caller
        // whose file was replaced again by a non-cooperating writer in this instant).
        var written = ReadFile(target, "verify written file", unchangedOnFailure: false).Snapshot;
        if (written.Checksum != newChecksum)
        {
            throw Failure("verify written file", target,
                $"the file on disk hashes to {written.Checksum}, not to the {newChecksum} that was written", null,
                unchanged: false);
        }
        // Every version written is kept too, so the last good one can be restored after someone breaks the file.
        // Not fsynced: the file itself is durable; a backup torn by a crash is refused by Restore (checksum in its name).
        // Best effort: the write itself has succeeded; the next write tries again (the replaced content goes in then).
        try
        {
            AddToRotation(newChecksum, path => WriteAtomic(path, newBytes.Span, meta with { OwnerRequired = false }, isTarget: false, durable: false));
        }
        catch (IOException)
        {
        }
        return new WriteResult.Written(newChecksum, Replaced: true);
    }

    /// <summary>
    /// Lock, read, transform, write; starts over when a writer that ignores the lock changed the file in between.
    /// Returns the checksum of the file as left.
    /// </summary>
    public string Update(Func<FileSnapshot, string> transform)
    {
        ArgumentNullException.ThrowIfNull(transform);
        using var held = Lock();
        for (int attempt = 1; attempt <= MaxUpdateAttempts; attempt++)
        {
            var snapshot = Read();
            string newText = transform(snapshot);
            switch (WriteLocked(snapshot.Checksum, newText))
            {
                case WriteResult.Written w:
                    return w.Checksum;
                case WriteResult.ChangedMeanwhile:
                    continue;
            }
        }
        throw new IOException(
            $"'{ConfigPath}' kept changing under the update ({MaxUpdateAttempts} attempts): a writer that does not " +
            $"take '{LockPath}' is rewriting it.");
    }

    /// <summary>The rotation folder's versions, newest first.</summary>
    public IReadOnlyList<BackupInfo> ListBackups()
    {
        if (!Directory.Exists(BackupDirectory)) return [];
        var backups = new List<BackupInfo>();
        foreach (string path in Directory.EnumerateFiles(BackupDirectory))
        {
            if (TryParseBackupName(Path.GetFileName(path), out var time, out string prefix))
            {
                backups.Add(new BackupInfo(path, time, prefix, new FileInfo(path).Length));
            }
        }
        backups.Sort((a, b) => b.TimeUtc != a.TimeUtc
            ? b.TimeUtc.CompareTo(a.TimeUtc)
            : string.CompareOrdinal(b.Path, a.Path));
        return backups;
    }

    /// <summary>Brings a version back. A safe write like any other: locked, and the current content backed up.</summary>
    public string Restore(BackupInfo backup)
    {
        ArgumentNullException.ThrowIfNull(backup);
        return Restore(backup.Path);
    }

    /// <inheritdoc cref="Restore(BackupInfo)"/>
    /// <param name="backupPath">A file of the rotation folder, the <c>.bak</c>, or any file with the content to restore.</param>
    /// <summary>A backup's content, checked against the checksum in its name (a torn backup is refused).</summary>
    public FileSnapshot ReadBackup(string backupPath)
    {
        var backup = ReadFile(Path.GetFullPath(backupPath), "read backup").Snapshot;
        if (!backup.Exists) throw new FileNotFoundException($"Backup '{backupPath}' does not exist.", backupPath);
        if (TryParseBackupName(Path.GetFileName(backupPath), out _, out string prefix)
            && !backup.Checksum.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"Backup '{backupPath}' is damaged: its content hashes to {backup.Checksum}, its name says {prefix}…");
        }
        return backup;
    }

    public string Restore(string backupPath)
    {
        var backup = ReadBackup(backupPath);
        using var held = Lock();
        var result = (WriteResult.Written)WriteLocked(null, backup.Bytes);
        return result.Checksum;
    }

    public static string Checksum(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static string DefaultBackupDirectory(string configPath, FileStoreOptions options) =>
        options.BackupDirectory is { } dir
            ? Path.GetFullPath(dir)
            : Path.Combine(Path.GetDirectoryName(configPath)!, ".schedsync-backups", Path.GetFileName(configPath));

    /// <summary>The file a write must replace: the final target of a symlink chain, else the path itself.</summary>
    private string ResolveTarget()
    {
        Fault("resolve symlink", ConfigPath, unchanged: true);
        try
        {
            return File.ResolveLinkTarget(ConfigPath, returnFinalTarget: true)?.FullName ?? ConfigPath;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return ConfigPath;
        }
        catch (IOException e)
        {
            throw Failure("resolve symlink", ConfigPath, e.Message, null, unchanged: true, e);
        }
    }

    /// <summary>
    /// Checks, without reading it, that the file is absent or a regular file that is within the size limit: what a
    /// read would refuse. For readiness probes.
    /// </summary>
    /// <exception cref="FileStoreException">The path is a FIFO, device, directory or socket, or too large.</exception>
    public void CheckReadable()
    {
        int result = Posix.Stat(ConfigPath, out var status);
        if (result == -Posix.ENoEnt) return;
        if (result < 0) throw Failure("stat", ConfigPath, Posix.Describe(-result), -result, unchanged: true);
        if (!status.IsRegularFile) throw NotRegularFile("stat", ConfigPath, status);
        if (status.Size > _options.MaxFileBytes) throw TooLarge("stat", ConfigPath, status.Size);
    }

    /// <summary>
    /// Reads a whole regular file. Anything else in its place (a FIFO, a device, a directory, a socket) is refused
    /// before reading, and opened without blocking (O_NONBLOCK: a FIFO without a writer would otherwise block open()
    /// forever); the size limit is enforced while reading, so memory stays bounded whatever the file claims or does.
    /// </summary>
    private (FileSnapshot Snapshot, Posix.FileStatus? Status) ReadFile(string path, string step,
        bool unchangedOnFailure = true)
    {
        Fault($"{step}: open", path, unchangedOnFailure);
        // Look before opening: opening a device can have side effects of its own.
        int result = Posix.Stat(path, out var before);
        if (result == 0 && !before.IsRegularFile) throw NotRegularFile($"{step}: open", path, before, unchangedOnFailure);
        int fd = Posix.Open(path, Posix.ORdOnly | Posix.ONonBlock);
        if (fd == -Posix.ENoEnt) return (FileSnapshot.Absent, null);
        if (fd < 0) throw Failure($"{step}: open", path, Posix.Describe(-fd), -fd, unchangedOnFailure);
        using var handle = Posix.OwnHandle(fd);

        Fault($"{step}: stat", path, unchangedOnFailure);
        result = Posix.Fstat(fd, out var status);
        if (result < 0) throw Failure($"{step}: stat", path, Posix.Describe(-result), -result, unchangedOnFailure);
        // Checked again on what was opened: the path may have been replaced since the first look.
        if (!status.IsRegularFile) throw NotRegularFile($"{step}: stat", path, status, unchangedOnFailure);
        if (status.Size > _options.MaxFileBytes) throw TooLarge($"{step}: stat", path, status.Size, unchangedOnFailure);

        Fault($"{step}: read", path, unchangedOnFailure);
        result = Posix.ReadAll(fd, status.Size, _options.MaxFileBytes, out byte[] bytes);
        if (result < 0) throw Failure($"{step}: read", path, Posix.Describe(-result), -result, unchangedOnFailure);
        if (bytes.Length > _options.MaxFileBytes) throw TooLarge($"{step}: read", path, null, unchangedOnFailure);

        return (new FileSnapshot(true, bytes, Checksum(bytes), status.LastWriteUtc), status);
    }

    private FileStoreException NotRegularFile(string step, string path, Posix.FileStatus status, bool unchanged = true)
    {
        string link = "";
        try
        {
            if (File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target) link = $" (a symlink to '{target.FullName}')";
        }
        catch (IOException)
        {
        }
        return Failure(step, path,
            $"it is {status.Kind}{link}, not a regular file; only a regular file is read as the config (replace it with one)",
            null, unchanged);
    }

    private FileStoreException TooLarge(string step, string path, long? size, bool unchanged = true)
    {
        string cause = size is { } n
            ? string.Create(CultureInfo.InvariantCulture, $"the file is {n:N0} bytes; the limit is {_options.MaxFileBytes:N0} bytes")
            : string.Create(CultureInfo.InvariantCulture, $"the file is larger than the limit of {_options.MaxFileBytes:N0} bytes (reading stopped there)");
        return Failure(step, path, cause, null, unchanged);
    }

    private readonly record struct TargetMeta(uint Mode, uint? Uid, uint? Gid, bool OwnerRequired);

    /// <summary>
    /// temp file (O_CREAT|O_EXCL, same directory) → write → fchown/fchmod → fsync → close → rename → fsync directory.
    /// Any failure before the rename removes the temp file and leaves <paramref name="path"/> as it was.
    /// </summary>
    private void WriteAtomic(string path, ReadOnlySpan<byte> bytes, TargetMeta meta, bool isTarget, bool durable = true)
    {
        string directory = Path.GetDirectoryName(path)!;
        string temp = "";
        int fd = -1;
        bool created = false;
        try
        {
            for (int attempt = 0; fd < 0; attempt++)
            {
                temp = Path.Combine(directory, TempName(Path.GetFileName(path)));
                Fault("create temp file", temp, unchanged: true);
                fd = Posix.Open(temp, Posix.OWrOnly | Posix.OCreat | Posix.OExcl, TempCreateMode);
                if (fd == -Posix.EExist && attempt < 3) continue; // a 64-bit random name collided: pick another
                if (fd < 0) throw Failure("create temp file", temp, Posix.Describe(-fd), -fd, unchanged: true);
            }
            created = true;

            Fault("write temp file", temp, unchanged: true);
            int result = Posix.WriteAll(fd, bytes);
            if (result < 0) throw Failure("write temp file", temp, Posix.Describe(-result), -result, unchanged: true);

            if (meta.Uid is { } uid && meta.Gid is { } gid)
            {
                // fchown before fchmod: changing the owner clears setuid/setgid bits.
                Fault("chown temp file", temp, unchanged: true);
                result = Posix.Fstat(fd, out var tempStatus);
                if (result == 0 && (tempStatus.Uid != uid || tempStatus.Gid != gid))
                {
                    result = Posix.Fchown(fd, uid, gid);
                }
                if (result < 0 && meta.OwnerRequired)
                {
                    throw Failure("chown temp file", temp,
                        $"cannot give the new file the owner {uid}:{gid} of the current one ({Posix.Describe(-result)}); " +
                        "run as that user or as root", -result, unchanged: true);
                }
            }

            Fault("chmod temp file", temp, unchanged: true);
            result = Posix.Fchmod(fd, meta.Mode);
            if (result < 0) throw Failure("chmod temp file", temp, Posix.Describe(-result), -result, unchanged: true);

            if (durable)
            {
                Fault("fsync temp file", temp, unchanged: true);
                result = Posix.Fsync(fd);
                if (result < 0) throw Failure("fsync temp file", temp, Posix.Describe(-result), -result, unchanged: true);
            }

            Fault("close temp file", temp, unchanged: true);
            result = Posix.Close(fd);
            fd = -1; // closed even when close reports an error
            if (result < 0) throw Failure("close temp file", temp, Posix.Describe(-result), -result, unchanged: true);

            Fault("rename temp file over target", temp, unchanged: true);
            result = Posix.Rename(temp, path);
            if (result == -Posix.EXDev || result == -Posix.EBusy)
            {
                throw Failure("rename temp file over target", path,
                    $"{Posix.Describe(-result)}: the target is on another file system or is a mount point (e.g. a " +
                    "single-file bind mount); an atomic replace is impossible there and the store refuses to fall " +
                    "back to copying. Mount the directory instead of the file", -result, unchanged: true);
            }
            if (result < 0)
            {
                throw Failure("rename temp file over target", path, Posix.Describe(-result), -result, unchanged: true);
            }
            created = false;
        }
        finally
        {
            if (fd >= 0) _ = Posix.Close(fd);
            if (created) _ = Posix.Unlink(temp);
        }

        // From here on the target already has the new content (for the config file itself: not "unchanged").
        if (durable) FsyncDirectory(directory, unchanged: !isTarget);
    }

    private void FsyncDirectory(string directory, bool unchanged)
    {
        Fault("open directory", directory, unchanged);
        int fd = Posix.Open(directory, Posix.ORdOnly | Posix.ODirectory);
        if (fd < 0) throw Failure("open directory", directory, Posix.Describe(-fd), -fd, unchanged);
        using var handle = Posix.OwnHandle(fd);
        Fault("fsync directory", directory, unchanged);
        int result = Posix.Fsync(fd);
        // Some file systems (certain FUSE and network ones) do not support fsync on a directory: EINVAL.
        if (result < 0 && result != -Posix.EInval)
        {
            throw Failure("fsync directory", directory, Posix.Describe(-result), -result, unchanged);
        }
    }

    /// <summary>
    /// Puts the replaced content into the rotation, unless it is already its newest version (it usually is: the
    /// version ScheduleSync wrote last). It was just written durably as the .bak: it gets a second name instead of
    /// being written again; copied when links are not possible there.
    /// </summary>
    private void WriteRotationBackup(FileSnapshot current, TargetMeta meta)
    {
        AddToRotation(current.Checksum, path =>
        {
            Fault("link backup", path, unchanged: true);
            if (Posix.Link(BakPath, path) != 0)
                WriteAtomic(path, current.Bytes.Span, meta, isTarget: false, durable: false);
        });
    }

    /// <summary>Adds a version to the rotation folder (named by time and checksum) and prunes it to the newest N.</summary>
    private void AddToRotation(string checksum, Action<string> create)
    {
        if (_options.BackupCount == 0) return;
        Fault("create backup directory", BackupDirectory, unchanged: true);
        CreateBackupDirectory();

        Fault("list backups", BackupDirectory, unchanged: true);
        var existing = ListBackups();
        if (existing.Count > 0 && checksum.StartsWith(existing[0].ChecksumPrefix, StringComparison.Ordinal)) return;
        // Names sort by time; if the clock went back, still sort after the newest so pruning keeps this one.
        var time = DateTime.UtcNow;
        if (existing.Count > 0 && time <= existing[0].TimeUtc) time = existing[0].TimeUtc.AddTicks(1);
        string name = $"{Path.GetFileName(ConfigPath)}.{time.ToString(BackupTimeFormat, CultureInfo.InvariantCulture)}" +
                      $".{checksum[..ChecksumPrefixLength]}";
        create(Path.Combine(BackupDirectory, name));

        for (int i = _options.BackupCount - 1; i < existing.Count; i++)
        {
            Fault("delete old backup", existing[i].Path, unchanged: true);
            int result = Posix.Unlink(existing[i].Path);
            if (result < 0 && result != -Posix.ENoEnt)
            {
                throw Failure("delete old backup", existing[i].Path, Posix.Describe(-result), -result, unchanged: true);
            }
        }
    }

    private void CreateBackupDirectory()
    {
        var missing = new Stack<string>();
        for (string? dir = BackupDirectory; dir is not null && !Directory.Exists(dir); dir = Path.GetDirectoryName(dir))
        {
            missing.Push(dir);
        }
        // mkdir rather than Directory.CreateDirectory: an explicit 0750 instead of whatever the umask leaves.
        while (missing.TryPop(out string? dir))
        {
            int result = Posix.Mkdir(dir, BackupDirectoryMode);
            if (result < 0 && result != -Posix.EExist)
            {
                throw Failure("create backup directory", dir, Posix.Describe(-result), -result, unchanged: true);
            }
        }

        IgnoreInGit(BackupDirectory);
    }

    /// <summary>
    /// Makes the rotation folder self-ignoring (a <c>.gitignore</c> holding <c>*</c>, as Python's venv does), so a
    /// config folder kept in git never shows the backups as untracked. Best effort: a backup is no worse without it.
    /// </summary>
    private static void IgnoreInGit(string directory)
    {
        var path = Path.Combine(directory, ".gitignore");
        if (File.Exists(path)) return;
        try
        {
            File.WriteAllText(path, "# Written by schedsync: backups of the config file, not for version control.\n*\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private const string BackupTimeFormat = "yyyyMMdd'T'HHmmssfffffff'Z'";
    private const int ChecksumPrefixLength = 12;

    [GeneratedRegex(@"\.(\d{8}T\d{13}Z)\.([0-9a-f]{12})$")]
    private static partial Regex BackupNameSuffix();

    private bool TryParseBackupName(string fileName, out DateTime timeUtc, out string checksumPrefix)
    {
        timeUtc = default;
        checksumPrefix = "";
        string ownPrefix = Path.GetFileName(ConfigPath);
        var match = BackupNameSuffix().Match(fileName);
        if (!match.Success || match.Index != ownPrefix.Length || !fileName.StartsWith(ownPrefix, StringComparison.Ordinal))
        {
            return false;
        }
        checksumPrefix = match.Groups[2].Value;
        return DateTime.TryParseExact(match.Groups[1].Value, BackupTimeFormat, CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out timeUtc);
    }

    private static string TempName(string fileName) =>
        $".{fileName}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";

    [GeneratedRegex(@"^\..+\.tmp-[0-9a-f]{16}$")]
    private static partial Regex TempNamePattern();

    private List<string> FindTempFiles()
    {
        string configName = Path.GetFileName(ConfigPath);
        var found = new List<string>();
        void Scan(string? directory, Func<string, bool> belongs)
        {
            if (directory is null || !Directory.Exists(directory)) return;
            foreach (string path in Directory.EnumerateFiles(directory, ".*.tmp-*"))
            {
                string name = Path.GetFileName(path);
                if (TempNamePattern().IsMatch(name) && belongs(name) && !found.Contains(path)) found.Add(path);
            }
        }

        bool IsTempOf(string name, string fileName) =>
            name.StartsWith($".{fileName}.tmp-", StringComparison.Ordinal);

        Scan(Path.GetDirectoryName(ConfigPath), n => IsTempOf(n, configName) || IsTempOf(n, configName + ".bak"));
        string target = ResolveTarget();
        Scan(Path.GetDirectoryName(target), n => IsTempOf(n, Path.GetFileName(target)));
        Scan(BackupDirectory, n => n.StartsWith($".{configName}.", StringComparison.Ordinal));
        return found;
    }

    private void Fault(string step, string path, bool unchanged)
    {
        if (FaultInjector?.Invoke(step) == true)
        {
            throw Failure(step, path, $"{Posix.Describe(Posix.EIo)} [injected fault]", Posix.EIo, unchanged);
        }
    }

    private FileStoreException Failure(string step, string path, string cause, int? errno, bool unchanged,
        Exception? inner = null) =>
        new(ConfigPath, step, path, cause, errno, unchanged, inner);
}
