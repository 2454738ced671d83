using System.Runtime.Versioning;
using ScheduleSync.Files;

namespace ScheduleSync.Tests.Files;

[SupportedOSPlatform("linux")]
public sealed class ConfigFileStoreTests : IDisposable
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0640 = Mode0600 | UnixFileMode.GroupRead;

    private readonly TempFolder _folder = new();
    private readonly string _file;

    public ConfigFileStoreTests()
    {
        _file = _folder.File("schedule_config.yml");
    }

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Read_of_a_missing_file_is_absent_with_the_sentinel_checksum()
    {
        var snapshot = new ConfigFileStore(_file).Read();

        Assert.False(snapshot.Exists);
        Assert.Equal(FileSnapshot.AbsentChecksum, snapshot.Checksum);
        Assert.Equal("", snapshot.Text);
        Assert.Null(snapshot.LastWriteUtc);
    }

    [Fact]
    public void Read_returns_bytes_text_sha256_and_mtime()
    {
        File.WriteAllText(_file, "tasks: {}  # ü\n");
        var snapshot = new ConfigFileStore(_file).Read();

        Assert.True(snapshot.Exists);
        Assert.Equal("tasks: {}  # ü\n", snapshot.Text);
        Assert.Equal(File.ReadAllBytes(_file), snapshot.Bytes.ToArray());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(_file))),
            snapshot.Checksum);
        Assert.Equal(File.GetLastWriteTimeUtc(_file), snapshot.LastWriteUtc!.Value, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public void Write_with_a_stale_checksum_returns_changed_meanwhile_and_changes_nothing()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "a: 0\n");
        store.Update(_ => "a: 1\n");
        var stale = store.Read();
        File.WriteAllText(_file, "a: 2  # a person edited this meanwhile\n");
        var bakBefore = File.ReadAllBytes(store.BakPath);
        var backupsBefore = store.ListBackups();

        WriteResult result;
        using (store.Lock())
        {
            result = store.WriteLocked(stale.Checksum, "a: 3\n");
        }

        var changed = Assert.IsType<WriteResult.ChangedMeanwhile>(result);
        Assert.Equal("a: 2  # a person edited this meanwhile\n", changed.Current.Text);
        Assert.Equal("a: 2  # a person edited this meanwhile\n", File.ReadAllText(_file));
        Assert.Equal(bakBefore, File.ReadAllBytes(store.BakPath));
        Assert.Equal(backupsBefore, store.ListBackups());
    }

    [Fact]
    public void Write_expecting_an_absent_file_fails_when_someone_created_it()
    {
        var store = new ConfigFileStore(_file);
        File.WriteAllText(_file, "created: elsewhere\n");

        using var held = store.Lock();
        var result = store.WriteLocked(FileSnapshot.AbsentChecksum, "mine: true\n");

        Assert.IsType<WriteResult.ChangedMeanwhile>(result);
        Assert.Equal("created: elsewhere\n", File.ReadAllText(_file));
    }

    [Fact]
    public void WriteLocked_without_the_lock_is_refused()
    {
        var store = new ConfigFileStore(_file);
        var error = Assert.Throws<InvalidOperationException>(() => store.WriteLocked(null, "a: 1\n"));
        Assert.Contains(store.LockPath, error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_file));

        store.Lock().Dispose();
        Assert.Throws<InvalidOperationException>(() => store.WriteLocked(null, "a: 1\n"));
    }

    [Fact]
    public void Update_starts_over_when_a_writer_ignoring_the_lock_changed_the_file_in_between()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "n: 1\n");
        int calls = 0;

        store.Update(snapshot =>
        {
            calls++;
            if (calls == 1) File.WriteAllText(_file, "n: 10\n"); // vim saving while we compute
            return snapshot.Text.Replace("n: 10", "n: 11", StringComparison.Ordinal);
        });

        Assert.Equal(2, calls);
        Assert.Equal("n: 11\n", File.ReadAllText(_file));
    }

    [Fact]
    public void Writing_the_same_content_again_touches_nothing()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "a: 1\n");
        store.Update(_ => "a: 2\n");
        var mtime = File.GetLastWriteTimeUtc(_file);
        var backups = store.ListBackups();

        WriteResult result;
        using (store.Lock())
        {
            result = store.WriteLocked(store.Read().Checksum, "a: 2\n");
        }

        Assert.Equal(new WriteResult.Written(ConfigFileStore.Checksum(Bytes.Utf8("a: 2\n")), Replaced: false), result);
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(_file));
        Assert.Equal("a: 1\n", File.ReadAllText(store.BakPath));
        Assert.Equal(backups, store.ListBackups());
    }

    [Fact]
    public void Bak_holds_the_previous_content_and_rotation_keeps_exactly_the_newest_n()
    {
        var store = new ConfigFileStore(_file, new FileStoreOptions { BackupCount = 3 });
        string[] versions = [.. Enumerable.Range(1, 6).Select(i => $"version: {i}\n")];

        foreach (string version in versions) store.Update(_ => version);

        Assert.Equal(versions[5], File.ReadAllText(_file));
        Assert.Equal(versions[4], File.ReadAllText(store.BakPath));
        var backups = store.ListBackups();
        // The rotation keeps every version written, the current one included (so it can be restored after
        // someone breaks the file); the .bak is the one before.
        Assert.Equal(
            [Prefix(versions[5]), Prefix(versions[4]), Prefix(versions[3])],
            backups.Select(b => b.ChecksumPrefix));
        Assert.Equal([versions[5], versions[4], versions[3]], backups.Select(b => File.ReadAllText(b.Path)));
        Assert.True(backups[0].TimeUtc > backups[1].TimeUtc && backups[1].TimeUtc > backups[2].TimeUtc);
        Assert.All(backups, b => Assert.Equal(new FileInfo(b.Path).Length, b.Size));
        // The three backups, and the .gitignore that keeps the folder out of git (issue 14).
        Assert.Equal(3, Directory.GetFiles(store.BackupDirectory).Count(f => Path.GetFileName(f) != ".gitignore"));
        Assert.Equal("*", File.ReadAllLines(Path.Combine(store.BackupDirectory, ".gitignore")).Last());
        Assert.Equal(Path.Combine(_folder.Path, ".schedsync-backups", "schedule_config.yml"), store.BackupDirectory);
    }

    [Fact]
    public void Restore_brings_a_version_back_and_is_itself_backed_up()
    {
        var store = new ConfigFileStore(_file, new FileStoreOptions { BackupCount = 3 });
        foreach (string version in new[] { "v: 1\n", "v: 2\n", "v: 3\n", "v: 4\n" }) store.Update(_ => version);
        var oldest = store.ListBackups()[^1];
        Assert.Equal("v: 2\n", File.ReadAllText(oldest.Path));

        string checksum = store.Restore(oldest);

        Assert.Equal("v: 2\n", File.ReadAllText(_file));
        Assert.Equal(ConfigFileStore.Checksum(Bytes.Utf8("v: 2\n")), checksum);
        Assert.Equal("v: 4\n", File.ReadAllText(store.BakPath));
        var backups = store.ListBackups();
        Assert.Equal(Prefix("v: 2\n"), backups[0].ChecksumPrefix);
        Assert.Equal(["v: 2\n", "v: 4\n", "v: 3\n"], backups.Select(b => File.ReadAllText(b.Path)));
    }

    [Fact]
    public void Restore_from_the_bak_file_works_too()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "good: true\n");
        store.Update(_ => "broken: [\n");

        store.Restore(store.BakPath);

        Assert.Equal("good: true\n", File.ReadAllText(_file));
        Assert.Equal("broken: [\n", File.ReadAllText(store.BakPath));
    }

    [Fact]
    public void Restore_refuses_a_damaged_backup_and_leaves_the_file_alone()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "v: 1\n");
        store.Update(_ => "v: 2\n");
        var backup = store.ListBackups()[0];
        File.WriteAllText(backup.Path, "v: 1 but bit-rotted\n");

        var error = Assert.Throws<InvalidDataException>(() => store.Restore(backup));

        Assert.Contains(backup.Path, error.Message, StringComparison.Ordinal);
        Assert.Equal("v: 2\n", File.ReadAllText(_file));
    }

    [Fact]
    public void Mode_and_owner_of_the_existing_file_are_kept()
    {
        File.WriteAllText(_file, "a: 1\n");
        File.SetUnixFileMode(_file, Mode0600);
        if (Processes.IsRoot) Assert.Equal(0, Processes.Run("chown", "65534:65534", _file).ExitCode);
        Posix.Stat(_file, out var before);

        new ConfigFileStore(_file).Update(_ => "a: 2\n");

        Assert.Equal("a: 2\n", File.ReadAllText(_file));
        Assert.Equal(Mode0600, File.GetUnixFileMode(_file));
        Assert.Equal(0, Posix.Stat(_file, out var after));
        Assert.Equal((before.Uid, before.Gid), (after.Uid, after.Gid));
        Assert.Equal(Mode0600, File.GetUnixFileMode(_file + ".bak"));
    }

    [Fact]
    public void New_file_gets_mode_0640_whatever_the_umask()
    {
        new ConfigFileStore(_file).Update(_ => "a: 1\n");

        Assert.Equal(Mode0640, File.GetUnixFileMode(_file));
        Assert.False(File.Exists(_file + ".bak"));
    }

    [Fact]
    public void Symlinked_target_is_replaced_and_the_link_kept()
    {
        string realDir = Directory.CreateDirectory(_folder.File("real")).FullName;
        string real = Path.Combine(realDir, "actual.yml");
        File.WriteAllText(real, "a: 1\n");
        File.CreateSymbolicLink(_file, "real/actual.yml");

        var store = new ConfigFileStore(_file);
        store.Update(_ => "a: 2\n");

        Assert.Equal("real/actual.yml", new FileInfo(_file).LinkTarget);
        Assert.Equal("a: 2\n", File.ReadAllText(real));
        Assert.Equal("a: 1\n", File.ReadAllText(store.BakPath));
        Assert.Null(new FileInfo(store.BakPath).LinkTarget);
        Assert.Empty(_folder.TempFiles());
    }

    [Fact]
    public void Dangling_symlink_target_is_created_with_mode_0640()
    {
        Directory.CreateDirectory(_folder.File("real"));
        File.CreateSymbolicLink(_file, "real/new.yml");

        new ConfigFileStore(_file).Update(_ => "a: 1\n");

        Assert.Equal("real/new.yml", new FileInfo(_file).LinkTarget);
        Assert.Equal("a: 1\n", File.ReadAllText(_folder.File("real/new.yml")));
        Assert.Equal(Mode0640, File.GetUnixFileMode(_folder.File("real/new.yml")));
    }

    [Fact]
    public void A_directory_in_place_of_the_file_is_refused_clearly()
    {
        Directory.CreateDirectory(_file);
        var error = Assert.Throws<FileStoreException>(() => new ConfigFileStore(_file).Update(_ => "a: 1\n"));
        Assert.Contains(_file, error.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(_file));
    }

    [Fact]
    public void Open_removes_stale_temp_files_of_this_file_only()
    {
        var store = new ConfigFileStore(_file);
        store.Update(_ => "a: 1\n");
        store.Update(_ => "a: 2\n");
        string[] stale =
        [
            _folder.File(".schedule_config.yml.tmp-0123456789abcdef"),
            _folder.File(".schedule_config.yml.bak.tmp-0123456789abcdef"),
            Path.Combine(store.BackupDirectory, ".schedule_config.yml.20250101T0000000000000Z.0123456789ab.tmp-fedcba9876543210"),
        ];
        string[] foreign = [_folder.File(".other.yml.tmp-0123456789abcdef"), _folder.File("schedule_config.yml.tmp-notours")];
        foreach (string path in stale.Concat(foreign)) File.WriteAllText(path, "half-writ");

        ConfigFileStore.Open(_file);

        Assert.All(stale, path => Assert.False(File.Exists(path), path));
        Assert.All(foreign, path => Assert.True(File.Exists(path), path));
        Assert.Equal(0, ConfigFileStore.CleanStaleTempFiles(_file));
        Assert.Equal("a: 2\n", File.ReadAllText(_file));
    }

    private static string Prefix(string content) => ConfigFileStore.Checksum(Bytes.Utf8(content))[..12];
}
