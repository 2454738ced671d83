using System.Runtime.Versioning;
using ScheduleSync.Files;

namespace ScheduleSync.Tests.Files;

/// <summary>Failures in the middle of a safe write: injected at every step, and real ones (ENOSPC, EROFS, EACCES, EBUSY).</summary>
[SupportedOSPlatform("linux")]
public sealed class ConfigFileStoreFaultTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Failure_at_any_step_leaves_the_old_or_the_new_file_and_no_temp_file()
    {
        var failedSteps = new List<string>();
        for (int n = 1; ; n++)
        {
            string dir = Directory.CreateDirectory(_folder.File($"n{n}")).FullName;
            string file = Path.Combine(dir, "schedule_config.yml");
            var store = new ConfigFileStore(file, new FileStoreOptions { BackupCount = 2 });
            foreach (string version in new[] { "v: 0\n", "v: 1\n", "v: 2\n" }) store.Update(_ => version);

            int calls = 0;
            string? failedStep = null;
            store.FaultInjector = step =>
            {
                if (++calls != n) return false;
                failedStep = step;
                return true;
            };
            FileStoreException? error = null;
            try
            {
                store.Update(_ => "v: 3\n");
            }
            catch (FileStoreException e)
            {
                error = e;
            }

            if (failedStep is null)
            {
                // n went past the last step: the write ran to the end.
                Assert.Null(error);
                Assert.Equal("v: 3\n", File.ReadAllText(file));
                break;
            }
            failedSteps.Add(failedStep);
            if (error is null)
            {
                // Only keeping the new version in the rotation is best effort: the write itself went through.
                Assert.Equal("v: 3\n", File.ReadAllText(file));
                Assert.Empty(_folder.TempFiles());
                continue;
            }
            Assert.Equal(failedStep, error.Step);
            Assert.Contains(file, error.Message, StringComparison.Ordinal);
            Assert.Contains(failedStep, error.Message, StringComparison.Ordinal);
            Assert.Equal(error.TargetUnchanged ? "v: 2\n" : "v: 3\n", File.ReadAllText(file));
            Assert.Contains(File.ReadAllText(store.BakPath), new[] { "v: 1\n", "v: 2\n" });
            Assert.All(store.ListBackups(), b => Assert.Contains(File.ReadAllText(b.Path), new[] { "v: 0\n", "v: 1\n", "v: 2\n", "v: 3\n" }));
            Assert.Empty(_folder.TempFiles());

            // and the next write goes through
            store.FaultInjector = null;
            store.Update(_ => "v: 4\n");
            Assert.Equal("v: 4\n", File.ReadAllText(file));
        }

        // Sanity: the walk covered the whole protocol, including failures after the rename.
        Assert.True(failedSteps.Count >= 30, string.Join(", ", failedSteps));
        foreach (string step in new[] { "create temp file", "write temp file", "fsync temp file", "rename temp file over target", "fsync directory", "verify written file: read" })
        {
            Assert.Contains(step, failedSteps);
        }
    }

    [MountFact]
    public void Disk_full_midway_fails_naming_the_step_keeps_the_file_and_removes_the_temp_file()
    {
        using var tmpfs = new Tmpfs(_folder, "size=64k");
        string file = Path.Combine(tmpfs.Path, "schedule_config.yml");
        var store = new ConfigFileStore(file);
        store.Update(_ => "small: true\n");

        string big = "big: |\n" + string.Concat(Enumerable.Repeat("  0123456789abcdef0123456789abcdef\n", 4000));
        var error = Assert.Throws<FileStoreException>(() => store.Update(_ => big));

        Assert.Equal("write temp file", error.Step);
        Assert.Equal(Posix.ENoSpc, error.Errno);
        Assert.Contains("ENOSPC", error.Message, StringComparison.Ordinal);
        Assert.Contains(file, error.Message, StringComparison.Ordinal);
        Assert.Contains("The file is unchanged", error.Message, StringComparison.Ordinal);
        Assert.True(error.TargetUnchanged);
        Assert.Equal("small: true\n", File.ReadAllText(file));
        Assert.Empty(Directory.GetFiles(tmpfs.Path, "*.tmp-*", SearchOption.AllDirectories));

        store.Update(_ => "small: again\n"); // space came back with the temp file gone
        Assert.Equal("small: again\n", File.ReadAllText(file));
    }

    [MountFact]
    public void Read_only_file_system_fails_clearly_and_keeps_the_file()
    {
        using var tmpfs = new Tmpfs(_folder, "size=64k");
        string file = Path.Combine(tmpfs.Path, "schedule_config.yml");
        var store = new ConfigFileStore(file);
        store.Update(_ => "a: 1\n");
        tmpfs.RemountReadOnly();

        var error = Assert.Throws<FileStoreException>(() => store.Update(_ => "a: 2\n"));

        Assert.Equal(Posix.ERofs, error.Errno);
        Assert.Equal("create temp file", error.Step);
        Assert.Contains("EROFS", error.Message, StringComparison.Ordinal);
        Assert.Contains(file, error.Message, StringComparison.Ordinal);
        Assert.Equal("a: 1\n", File.ReadAllText(file));
        Assert.Equal("a: 1\n", store.Read().Text);
    }

    [MountFact]
    public void Single_file_bind_mount_is_refused_instead_of_copied()
    {
        string source = _folder.File("source.yml");
        File.WriteAllText(source, "a: 1\n");
        string dir = Directory.CreateDirectory(_folder.File("app")).FullName;
        string file = Path.Combine(dir, "schedule_config.yml");
        File.WriteAllText(file, "");
        Assert.Equal(0, Processes.Run("mount", "--bind", source, file).ExitCode);
        try
        {
            var error = Assert.Throws<FileStoreException>(() => new ConfigFileStore(file).Update(_ => "a: 2\n"));

            Assert.Equal("rename temp file over target", error.Step);
            Assert.Contains(error.Errno, new int?[] { Posix.EBusy, Posix.EXDev });
            Assert.Contains("refuses to fall back to copying", error.Message, StringComparison.Ordinal);
            Assert.Equal("a: 1\n", File.ReadAllText(file));
            Assert.Equal("a: 1\n", File.ReadAllText(source));
            Assert.Empty(_folder.TempFiles());
        }
        finally
        {
            Processes.Run("umount", file);
        }
    }

    [RootFact]
    public void Permission_denied_for_another_user_fails_clearly_and_keeps_the_file()
    {
        // Root ignores permissions, so the write runs in a child process as 'nobody'.
        File.SetUnixFileMode(_folder.Path, (UnixFileMode)0b111_101_101); // 0755: nobody may enter, not create
        string file = _folder.File("schedule_config.yml");
        var store = new ConfigFileStore(file);
        store.Update(_ => "a: 1\n");
        File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100);
        File.SetUnixFileMode(store.LockPath, (UnixFileMode)0b110_100_100); // so the failure is the write, not the lock

        var result = Processes.Run("runuser", "-u", "nobody", "--", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp",
            Processes.Dotnet, Processes.WorkerDll, "write-once", file, "a: 2\n");

        Assert.True(result.ExitCode == 3, $"exit {result.ExitCode}: {result.Output}{result.Error}");
        Assert.Contains("FileStoreException", result.Output, StringComparison.Ordinal);
        Assert.Contains("EACCES", result.Output, StringComparison.Ordinal);
        Assert.Contains(file, result.Output, StringComparison.Ordinal);
        Assert.Contains("The file is unchanged", result.Output, StringComparison.Ordinal);
        Assert.Equal("a: 1\n", File.ReadAllText(file));
        Assert.Empty(_folder.TempFiles());
    }
}
