using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using ScheduleSync.Files;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace ScheduleSync.Tests.Files;

/// <summary>Real processes: concurrent writers and a reader, writers killed with SIGKILL mid-write, strace.</summary>
[SupportedOSPlatform("linux")]
public sealed partial class ConfigFileStoreProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Concurrent_writer_processes_lose_no_update_and_a_reader_never_sees_a_torn_file()
    {
        const int writers = 3;
        const int updates = 200;
        string file = _folder.File("schedule_config.yml");
        string stop = _folder.File("stop");
        File.WriteAllText(file, "# one counter per writer\ncounters:\n  w0: 0\n");

        var clock = Stopwatch.StartNew();
        using var reader = Processes.StartWorker("read-loop", file, stop);
        var readerOutput = reader.StandardOutput.ReadToEndAsync();
        var readerErrors = reader.StandardError.ReadToEndAsync();
        var writerProcesses = Enumerable.Range(1, writers)
            .Select(i => Processes.StartWorker("write-loop", file, $"w{i}", updates.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        foreach (var writer in writerProcesses)
        {
            string errors = writer.StandardError.ReadToEnd();
            Assert.True(writer.WaitForExit(TimeSpan.FromSeconds(60)), "a writer hung");
            Assert.True(writer.ExitCode == 0, $"writer failed ({writer.ExitCode}): {writer.StandardOutput.ReadToEnd()}{errors}");
            writer.Dispose();
        }
        File.WriteAllText(stop, "");
        Assert.True(reader.WaitForExit(TimeSpan.FromSeconds(20)), "the reader hung");
        string readerSummary = (await readerOutput).Trim();
        output.WriteLine($"{writers} x {updates} updates in {clock.Elapsed.TotalSeconds:0.0} s; reader: {readerSummary}");

        Assert.Matches(@"^reads=[1-9]\d* failures=0$", readerSummary);
        Assert.Equal("", await readerErrors);
        var counters = (YamlMappingNode)ParseYaml(File.ReadAllText(file)).Children[new YamlScalarNode("counters")];
        for (int i = 1; i <= writers; i++)
        {
            Assert.Equal($"{updates}", ((YamlScalarNode)counters.Children[new YamlScalarNode($"w{i}")]).Value);
        }
        Assert.Empty(_folder.TempFiles());
    }

    [Fact]
    public void Writer_killed_at_random_moments_leaves_a_file_that_is_one_of_its_versions()
    {
        const int trials = 50;
        string file = _folder.File("schedule_config.yml");
        string log = _folder.File("versions.log");
        string initial = "writer: none\nseq: 0\nitems: []\n";
        File.WriteAllText(file, initial);
        int seed = Environment.TickCount;
        var random = new Random(seed);
        int killedWithTempFile = 0;

        var clock = Stopwatch.StartNew();
        for (int trial = 0; trial < trials; trial++)
        {
            using (var writer = Processes.StartWorker("write-forever", file, log))
            {
                Assert.Equal("writing", Processes.WaitForLine(writer));
                Thread.Sleep(random.Next(0, 51));
                writer.Kill();
                Assert.True(writer.WaitForExit(TimeSpan.FromSeconds(10)));
            }

            var written = File.ReadAllLines(log).ToHashSet();
            written.Add(ConfigFileStore.Checksum(Bytes.Utf8(initial)));
            string text = File.ReadAllText(file);
            Assert.Contains(ConfigFileStore.Checksum(File.ReadAllBytes(file)), written);
            _ = ParseYaml(text);
            if (File.Exists(file + ".bak"))
            {
                Assert.Contains(ConfigFileStore.Checksum(File.ReadAllBytes(file + ".bak")), written);
                _ = ParseYaml(File.ReadAllText(file + ".bak"));
            }
            if (_folder.TempFiles().Count > 0) killedWithTempFile++;
        }
        output.WriteLine($"seed {seed}: {trials} kills in {clock.Elapsed.TotalSeconds:0.0} s, " +
                         $"{killedWithTempFile} left a temp file, {File.ReadAllLines(log).Length} versions started");

        // The lock died with the process, and the leftovers are cleaned at the next start.
        using (var free = FileLock.TryAcquire(file + ".lock"))
        {
            Assert.NotNull(free);
        }
        ConfigFileStore.Open(file);
        Assert.Empty(_folder.TempFiles());
    }

    [StraceFact]
    public void Syscalls_run_in_the_order_create_temp_write_fsync_rename_fsync_directory()
    {
        string file = _folder.File("schedule_config.yml");
        File.WriteAllText(file, "a: 1\n");
        string trace = _folder.File("strace.out");

        var result = Processes.Run("strace", "-f", "-o", trace, "-e", "trace=openat,write,fsync,close,rename,renameat,renameat2",
            Processes.Dotnet, Processes.WorkerDll, "write-once", file, "a: 2\n");
        Assert.True(result.ExitCode == 0, result.Output + result.Error);
        Assert.Equal("a: 2\n", File.ReadAllText(file));

        var calls = ReadTrace(trace);
        string tempPrefix = _folder.File(".schedule_config.yml.tmp-");
        int create = calls.FindIndex(c => c.Name == "openat" && c.Args.Contains($"\"{tempPrefix}", StringComparison.Ordinal)
                                          && c.Args.Contains("O_CREAT|O_EXCL", StringComparison.Ordinal));
        Assert.True(create >= 0, "no exclusive create of the temp file");
        string tempFd = calls[create].Result;
        int thread = calls[create].Pid;
        int write = Next(calls, create, c => c.Name == "write" && c.Args.StartsWith(tempFd + ",", StringComparison.Ordinal));
        int fsync = Next(calls, write, c => c.Name == "fsync" && c.Args == tempFd);
        int close = Next(calls, fsync, c => c.Name == "close" && c.Args == tempFd);
        int rename = Next(calls, close, c => c.Name.StartsWith("rename", StringComparison.Ordinal)
                                             && c.Args.Contains(tempPrefix, StringComparison.Ordinal)
                                             && c.Args.Contains($"\"{file}\"", StringComparison.Ordinal));
        int openDir = Next(calls, rename, c => c.Name == "openat" && c.Args.Contains($"\"{_folder.Path}\"", StringComparison.Ordinal)
                                               && c.Args.Contains("O_DIRECTORY", StringComparison.Ordinal));
        int fsyncDir = Next(calls, openDir, c => c.Name == "fsync" && c.Args == calls[openDir].Result);
        Assert.All(new[] { write, fsync, close, rename, openDir, fsyncDir }, i => Assert.Equal(thread, calls[i].Pid));
        Assert.All(new[] { create, write, fsync, close, rename, openDir, fsyncDir }, i => Assert.False(calls[i].Result.StartsWith('-'), calls[i].ToString()));
        // Nothing but our temp file is written between the create and the rename (e.g. no write to the target).
        Assert.DoesNotContain(calls.Skip(create).Take(rename - create),
            c => c.Name == "openat" && c.Args.Contains($"\"{file}\"", StringComparison.Ordinal) && c.Args.Contains("O_WRONLY", StringComparison.Ordinal));
    }

    private static int Next(List<Syscall> calls, int after, Func<Syscall, bool> match)
    {
        int index = calls.FindIndex(after + 1, c => match(c));
        Assert.True(index > after, $"expected syscall not found after {calls[after]}");
        return index;
    }

    private sealed record Syscall(int Pid, string Name, string Args, string Result);

    [GeneratedRegex(@"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(.*)$")]
    private static partial Regex CompleteCall();

    [GeneratedRegex(@"^(\d+)\s+(\w+)\((.*?)\s*<unfinished \.\.\.>$")]
    private static partial Regex UnfinishedCall();

    [GeneratedRegex(@"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(.*)$")]
    private static partial Regex ResumedCall();

    /// <summary>Parses strace -f output, joining the calls that other threads interrupted ("unfinished"/"resumed").</summary>
    private static List<Syscall> ReadTrace(string path)
    {
        var calls = new List<Syscall>();
        var pending = new Dictionary<int, (string Name, string Args)>();
        foreach (string line in File.ReadLines(path))
        {
            if (CompleteCall().Match(line) is { Success: true } complete)
            {
                calls.Add(new Syscall(int.Parse(complete.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
                    complete.Groups[2].Value, complete.Groups[3].Value, complete.Groups[4].Value.Trim()));
            }
            else if (UnfinishedCall().Match(line) is { Success: true } unfinished)
            {
                pending[int.Parse(unfinished.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)] =
                    (unfinished.Groups[2].Value, unfinished.Groups[3].Value);
            }
            else if (ResumedCall().Match(line) is { Success: true } resumed)
            {
                int pid = int.Parse(resumed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                if (pending.Remove(pid, out var start))
                {
                    calls.Add(new Syscall(pid, start.Name, start.Args + resumed.Groups[3].Value, resumed.Groups[4].Value.Trim()));
                }
            }
        }
        return calls;
    }

    private static YamlMappingNode ParseYaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }
}
