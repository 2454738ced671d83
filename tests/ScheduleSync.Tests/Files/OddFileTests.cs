using System.Globalization;
using System.Net.Sockets;
using System.Runtime.Versioning;
using ScheduleSync.Files;
using ScheduleSync.Tests.Infrastructure;

namespace ScheduleSync.Tests.Files;

/// <summary>
/// Only regular files are read, without blocking, and never more than the size limit (SPEC §4, issue 10 items 4 and
/// 5): a FIFO in the file's place used to block open() forever; a 1 GB file or a symlink to /dev/zero used to be
/// read whole (RSS in gigabytes, then an overflow).
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class OddFileTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly string _file;

    public OddFileTests() => _file = _folder.File("schedule_config.yml");

    public void Dispose() => _folder.Dispose();

    /// <summary>Runs a read on another thread so that a read that blocks fails the test instead of hanging it.</summary>
    private static async Task<FileStoreException> RefusedAsync(Func<object> operation)
    {
        var run = Task.Run(operation);
        var first = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(first == run, "the operation blocked (it opened something that is not a regular file)");
        return await Assert.ThrowsAsync<FileStoreException>(() => run);
    }

    private static Task<FileStoreException> ReadRefusedAsync(ConfigFileStore store) => RefusedAsync(store.Read);

    [Fact]
    public async Task Read_refuses_a_fifo_without_blocking_and_names_it()
    {
        Assert.Equal(0, Processes.Run("mkfifo", _file).ExitCode);

        var error = await ReadRefusedAsync(new ConfigFileStore(_file));

        Assert.Contains($"'{_file}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("it is a FIFO (named pipe), not a regular file", error.Message, StringComparison.Ordinal);
        Assert.True(error.TargetUnchanged);
    }

    [Fact]
    public async Task Read_refuses_a_directory_a_socket_and_a_symlink_to_a_device_naming_what_each_is()
    {
        Directory.CreateDirectory(_file);
        Assert.Contains("it is a directory, not a regular file", (await ReadRefusedAsync(new ConfigFileStore(_file))).Message, StringComparison.Ordinal);
        Directory.Delete(_file);

        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            socket.Bind(new UnixDomainSocketEndPoint(_file));
            Assert.Contains("it is a socket, not a regular file", (await ReadRefusedAsync(new ConfigFileStore(_file))).Message, StringComparison.Ordinal);
        }
        File.Delete(_file);

        File.CreateSymbolicLink(_file, "/dev/null");
        var error = await ReadRefusedAsync(new ConfigFileStore(_file));
        Assert.Contains("it is a character device (a symlink to '/dev/null'), not a regular file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Safe_write_over_a_fifo_is_refused_without_blocking_and_leaves_it_in_place()
    {
        Assert.Equal(0, Processes.Run("mkfifo", _file).ExitCode);
        var store = new ConfigFileStore(_file);

        var error = await RefusedAsync(() => store.Update(_ => "version: 1\ntasks: {}\n"));

        Assert.Contains("FIFO", error.Message, StringComparison.Ordinal);
        Assert.True(Posix.Lstat(_file, out var status) == 0 && (status.Mode & Posix.SIfMt) == Posix.SIfIfo, "the FIFO was replaced");
    }

    [Fact]
    public void Read_refuses_a_file_over_the_limit_naming_both_sizes_and_reads_one_at_the_limit()
    {
        var store = new ConfigFileStore(_file, new FileStoreOptions { MaxFileBytes = 1024 });
        File.WriteAllBytes(_file, new byte[1024]);
        Assert.Equal(1024, store.Read().Bytes.Length);

        File.WriteAllBytes(_file, new byte[1025]);
        var error = Assert.Throws<FileStoreException>(() => store.Read());

        Assert.Contains("the file is 1,025 bytes; the limit is 1,024 bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{_file}'", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The size from stat is only a hint (a file may grow while it is read; /proc files say 0): the read itself stops
    /// one byte past the limit. /dev/zero never ends, so only a bounded read returns.
    /// </summary>
    [Fact]
    public void Bounded_read_stops_one_byte_past_the_limit_whatever_the_size_hint()
    {
        int fd = Posix.Open("/dev/zero", Posix.ORdOnly);
        Assert.True(fd >= 0);
        using var handle = Posix.OwnHandle(fd);

        Assert.Equal(0, Posix.ReadAll(fd, sizeHint: 0, maxBytes: 100_000, out var data));

        Assert.Equal(100_001, data.Length);
    }

    public static TheoryData<string> HugeFiles => new() { "sparse 1 GB file", "symlink to /dev/zero" };

    /// <summary>
    /// In a process of its own (the worker), so its peak resident memory (VmHWM) is the read's alone: it must stay far
    /// below the 1 GB a whole read would cost (the limit is 16 MiB; the runtime itself takes ~30–60 MB).
    /// </summary>
    [Theory]
    [MemberData(nameof(HugeFiles))]
    public void Reading_a_huge_file_or_dev_zero_is_refused_with_memory_bounded_by_the_limit(string what)
    {
        if (what.StartsWith("sparse", StringComparison.Ordinal))
        {
            using var stream = new FileStream(_file, FileMode.CreateNew);
            stream.SetLength(1L << 30); // sparse: costs no disk, reads as a gigabyte of zeros
        }
        else
        {
            File.CreateSymbolicLink(_file, "/dev/zero");
        }

        var result = Processes.RunWorker("read-peak", _file);

        Assert.True(result.ExitCode == 0, $"worker exited {result.ExitCode}: {result.Output}{result.Error}");
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var refused = Assert.Single(lines, l => l.StartsWith("refused: ", StringComparison.Ordinal));
        Assert.Contains($"'{_file}'", refused, StringComparison.Ordinal);
        Assert.Contains(what.StartsWith("sparse", StringComparison.Ordinal)
            ? "the file is 1,073,741,824 bytes; the limit is 16,777,216 bytes"
            : "it is a character device (a symlink to '/dev/zero'), not a regular file", refused, StringComparison.Ordinal);
        var peakKb = long.Parse(Assert.Single(lines, l => l.StartsWith("VmHWM=", StringComparison.Ordinal))["VmHWM=".Length..], CultureInfo.InvariantCulture);
        Assert.True(peakKb < 200 * 1024, $"{what}: peak RSS {peakKb / 1024} MB");
    }

    [Fact]
    public async Task Validate_refuses_a_fifo_at_once_with_exit_3_and_the_reason()
    {
        Assert.Equal(0, Processes.Run("mkfifo", _file).ExitCode);

        var outcome = await SchedSyncProcess.RunAsync(["validate", "--config", _file], _folder.Path, timeout: TimeSpan.FromSeconds(60));

        Assert.False(outcome.TimedOut, "validate blocked on the FIFO");
        Assert.Equal(3, outcome.ExitCode);
        Assert.Contains("it is a FIFO (named pipe), not a regular file", outcome.Stdout, StringComparison.Ordinal);
    }
}
