using System.Text;
using ScheduleSync.Files;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Yaml;

/// <summary>
/// Memory while reading the schedule file (issue 15): a file over the limit is refused by its size before anything is
/// read, with the file and the limit named; a file within it is read into one array of its size, not copied.
/// </summary>
public sealed class LargeFileReadTests : IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Loading_a_sparse_gigabyte_file_is_refused_by_its_size_naming_the_file_and_the_limit()
    {
        var path = _folder.File("schedule_config.yml");
        using (var stream = new FileStream(path, FileMode.CreateNew))
            stream.SetLength(1L << 30); // sparse: no disk, but a gigabyte to whoever reads it

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var document = ScheduleLoader.LoadFile(path);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        var problem = Assert.Single(document.FormatProblems());
        Assert.StartsWith(path + ":1:1: ", problem, StringComparison.Ordinal);
        Assert.Contains("the file is 1,073,741,824 bytes; the limit is 16,777,216 bytes", problem, StringComparison.Ordinal);
        Assert.Empty(document.Entries);
        Assert.True(allocated < 1 << 20, $"refusing the file allocated {allocated:N0} bytes");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(4 << 20)]
    public void A_file_within_the_limit_is_read_into_one_array_of_its_size(int size)
    {
        var path = _folder.File("schedule_config.yml");
        var content = new byte[size];
        new Random(size).NextBytes(content);
        File.WriteAllBytes(path, content);
        var store = new ConfigFileStore(path, new FileStoreOptions { MaxFileBytes = 16 << 20 });
        store.Read(); // JIT and the first-use allocations out of the measurement

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var snapshot = store.Read();
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.True(snapshot.Bytes.Span.SequenceEqual(content));
        // The array itself, plus the checksum text and the snapshot (a copy would double it).
        Assert.True(allocated < Math.Max(size, 4096) + 16 * 1024, $"reading {size:N0} bytes allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_file_that_grows_past_its_stat_size_is_read_to_its_end()
    {
        // /proc files report a size of 0 and then have content: the read goes on past the size it was given.
        int fd = Posix.Open("/proc/self/status", Posix.ORdOnly);
        Assert.True(fd >= 0);
        using var handle = Posix.OwnHandle(fd);

        Assert.Equal(0, Posix.ReadAll(fd, sizeHint: 16, maxBytes: 1 << 20, out var data));

        var text = Encoding.UTF8.GetString(data);
        Assert.StartsWith("Name:", text, StringComparison.Ordinal);
        Assert.Contains("VmHWM:", text, StringComparison.Ordinal);
    }
}
