using System.Diagnostics;
using System.Runtime.Versioning;
using ScheduleSync.Files;

namespace ScheduleSync.Tests.Files;

/// <summary>The sidecar lock against other programs that follow the protocol: flock(1) and Python's fcntl.flock.</summary>
[SupportedOSPlatform("linux")]
public sealed class FileLockTests : IDisposable
{
    private const string PythonHolder = """
        import fcntl, sys, time
        f = open(sys.argv[1], 'a')
        fcntl.flock(f, fcntl.LOCK_EX)
        print('locked', flush=True)
        time.sleep(float(sys.argv[2]))
        open(sys.argv[3], 'w').close()
        fcntl.flock(f, fcntl.LOCK_UN)
        """;

    private const string PythonTryLock = """
        import fcntl, sys
        f = open(sys.argv[1])
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(1)
        """;

    private readonly TempFolder _folder = new();
    private readonly string _file;

    public FileLockTests()
    {
        _file = _folder.File("schedule_config.yml");
        File.WriteAllText(_file, "version: 1\ntasks: {}\n");
    }

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Write_waits_for_a_flock1_holder_and_then_succeeds()
    {
        // The holder creates a marker file just before it lets go of the lock: seeing the marker from inside our
        // locked section proves the write waited, with no timing involved.
        string released = _folder.File("released");
        var store = new ConfigFileStore(_file);
        using var holder = Processes.Start("flock", _file + ".lock", "-c", $"echo locked; sleep 2; touch '{released}'");
        Assert.Equal("locked", Processes.WaitForLine(holder));
        Assert.False(File.Exists(released), "the machine is too slow for this test: the holder already finished");

        bool sawRelease = false;
        store.Update(_ =>
        {
            sawRelease = File.Exists(released);
            return "version: 1\ntasks: {}\n# written after the wait\n";
        });

        Assert.True(sawRelease, "the write ran while flock(1) held the lock");
        Assert.EndsWith("# written after the wait\n", File.ReadAllText(_file), StringComparison.Ordinal);
    }

    [Fact]
    public void Write_times_out_with_a_clear_error_while_flock1_holds_the_lock_and_leaves_the_file_untouched()
    {
        byte[] before = File.ReadAllBytes(_file);
        var store = new ConfigFileStore(_file, new FileStoreOptions { LockTimeout = TimeSpan.FromMilliseconds(300) });
        using var holder = Processes.Start("flock", _file + ".lock", "-c", "echo locked; exec sleep 10");
        try
        {
            Assert.Equal("locked", Processes.WaitForLine(holder));

            var clock = Stopwatch.StartNew();
            var error = Assert.Throws<FileLockTimeoutException>(() => store.Update(_ => "changed: true\n"));

            Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(290), TimeSpan.FromSeconds(3));
            Assert.Equal(_file + ".lock", error.LockPath);
            Assert.Contains(_file + ".lock", error.Message, StringComparison.Ordinal);
            Assert.Contains("0.3 s", error.Message, StringComparison.Ordinal);
            Assert.Contains("Another process holds it", error.Message, StringComparison.Ordinal);
            Assert.Equal(before, File.ReadAllBytes(_file));
            Assert.False(File.Exists(_file + ".bak"));
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
        }
    }

    [PythonFact]
    public void Write_waits_for_a_python_fcntl_flock_holder_and_then_succeeds()
    {
        string released = _folder.File("released");
        var store = new ConfigFileStore(_file);
        using var holder = Processes.Start("python3", "-c", PythonHolder, _file + ".lock", "2", released);
        Assert.Equal("locked", Processes.WaitForLine(holder));
        Assert.False(File.Exists(released), "the machine is too slow for this test: the holder already finished");

        bool sawRelease = false;
        store.Update(_ =>
        {
            sawRelease = File.Exists(released);
            return "after: python\n";
        });

        Assert.True(sawRelease, "the write ran while Python held the lock");
        Assert.Equal("after: python\n", File.ReadAllText(_file));
    }

    [PythonFact]
    public void Lock_held_by_the_store_excludes_python_fcntl_flock_and_flock1_until_released()
    {
        var store = new ConfigFileStore(_file);
        using (store.Lock())
        {
            Assert.Equal(1, Processes.Run("python3", "-c", PythonTryLock, _file + ".lock").ExitCode);
            Assert.Equal(1, Processes.Run("flock", "-n", _file + ".lock", "true").ExitCode);
        }
        Assert.Equal(0, Processes.Run("python3", "-c", PythonTryLock, _file + ".lock").ExitCode);
        Assert.Equal(0, Processes.Run("flock", "-n", _file + ".lock", "true").ExitCode);
    }

    [Fact]
    public void Lock_file_is_created_with_mode_0640_and_never_deleted()
    {
        var store = new ConfigFileStore(_file);
        string lockPath = _file + ".lock";
        Assert.False(File.Exists(lockPath));

        store.Update(_ => "a: 1\n");
        store.Update(_ => "a: 2\n");

        Assert.True(File.Exists(lockPath));
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(lockPath));
        Assert.Equal(0, new FileInfo(lockPath).Length);
    }

    [Fact]
    public void Second_lock_in_the_same_process_waits_for_the_first()
    {
        using var first = FileLock.Acquire(_file + ".lock", TimeSpan.Zero);
        Assert.Null(FileLock.TryAcquire(_file + ".lock"));
        first.Dispose();
        using var second = FileLock.TryAcquire(_file + ".lock");
        Assert.NotNull(second);
    }

    [Fact]
    public void Read_succeeds_while_another_program_holds_a_flock_on_the_data_file_itself()
    {
        // A script that (wrongly) locks the data file must not break readers: FileStream would refuse to open it.
        var store = new ConfigFileStore(_file);
        using var holder = Processes.Start("flock", _file, "-c", "echo locked; exec sleep 10");
        try
        {
            Assert.Equal("locked", Processes.WaitForLine(holder));
            var snapshot = store.Read();
            Assert.Equal("version: 1\ntasks: {}\n", snapshot.Text);
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void Schedsync_runtimeconfig_turns_off_the_flock_that_FileStream_takes()
    {
        string config = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "schedsync.runtimeconfig.json"));
        Assert.Contains("\"System.IO.DisableFileLocking\": true", config, StringComparison.Ordinal);
    }
}
