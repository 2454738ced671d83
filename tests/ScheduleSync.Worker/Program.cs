using System.Globalization;
using System.Text;
using ScheduleSync.Files;
using YamlDotNet.RepresentationModel;

namespace ScheduleSync.Worker;

/// <summary>
/// write-loop FILE WRITER COUNT    COUNT read-modify-write updates of counters.WRITER through ConfigFileStore.Update
/// read-loop FILE STOPFILE         parse FILE with YamlDotNet until STOPFILE exists; prints "reads=N failures=M"
/// write-forever FILE LOGFILE      rewrite FILE with version after version; logs each version's checksum before writing
/// write-once FILE TEXT            one Update; exit 3 on FileStoreException, 4 on FileLockTimeoutException
/// measure DIR                     lock overhead and write times for ~40 KB and ~4 MB files
/// read-peak FILE                  one ConfigFileStore.Read; prints "read N bytes" or "refused: MESSAGE", then
///                                 "VmHWM=KB", this process's peak resident memory
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["write-loop", var file, var writer, var count] => WriteLoop(file, writer, int.Parse(count, CultureInfo.InvariantCulture)),
                ["read-loop", var file, var stopFile] => ReadLoop(file, stopFile),
                ["write-forever", var file, var log] => WriteForever(file, log),
                ["write-once", var file, var text] => WriteOnce(file, text),
                ["measure", var dir] => Measurement.Run(dir),
                ["read-peak", var file] => ReadPeak(file),
                _ => Usage(),
            };
        }
        catch (FileStoreException e)
        {
            Console.WriteLine($"FileStoreException: {e.Message}");
            return 3;
        }
        catch (FileLockTimeoutException e)
        {
            Console.WriteLine($"FileLockTimeoutException: {e.Message}");
            return 4;
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: write-loop FILE WRITER COUNT | read-loop FILE STOPFILE | write-forever FILE LOGFILE | write-once FILE TEXT | measure DIR | read-peak FILE");
        return 64;
    }

    private static int ReadPeak(string file)
    {
        try
        {
            var snapshot = ConfigFileStore.Open(file).Read();
            Console.WriteLine($"read {snapshot.Bytes.Length} bytes");
        }
        catch (FileStoreException e)
        {
            Console.WriteLine($"refused: {e.Message}");
        }
        string peak = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        Console.WriteLine("VmHWM=" + peak["VmHWM:".Length..].Trim().Split(' ')[0]);
        return 0;
    }

    private static int WriteLoop(string file, string writer, int count)
    {
        var store = ConfigFileStore.Open(file, new FileStoreOptions { BackupCount = 3, LockTimeout = TimeSpan.FromSeconds(30) });
        for (int i = 0; i < count; i++)
        {
            store.Update(snapshot => Counters.Increment(snapshot.Text, writer));
        }
        return 0;
    }

    private static int ReadLoop(string file, string stopFile)
    {
        int reads = 0, failures = 0;
        while (!File.Exists(stopFile))
        {
            // A plain reader that knows nothing of the lock: File.ReadAllText, as any tool would.
            string text = File.ReadAllText(file);
            reads++;
            try
            {
                var stream = new YamlStream();
                stream.Load(new StringReader(text));
                var root = (YamlMappingNode)stream.Documents[0].RootNode;
                _ = (YamlMappingNode)root.Children[new YamlScalarNode("counters")];
            }
            catch (Exception e) when (e is YamlDotNet.Core.YamlException or InvalidCastException or KeyNotFoundException or ArgumentOutOfRangeException)
            {
                failures++;
                Console.Error.WriteLine($"parse failure: {e.Message}");
            }
        }
        Console.WriteLine($"reads={reads} failures={failures}");
        return 0;
    }

    private static int WriteForever(string file, string logFile)
    {
        var store = ConfigFileStore.Open(file, new FileStoreOptions { BackupCount = 3 });
        using var log = new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        Console.WriteLine("writing");
        for (long seq = 1; ; seq++)
        {
            store.Update(_ =>
            {
                string next = Versions.Content(Environment.ProcessId, seq);
                // Logged before the write starts, so a kill in the middle of it still leaves the version on record.
                byte[] line = Encoding.ASCII.GetBytes(ConfigFileStore.Checksum(Encoding.UTF8.GetBytes(next)) + "\n");
                log.Write(line);
                log.Flush();
                return next;
            });
        }
    }

    private static int WriteOnce(string file, string text)
    {
        string checksum = ConfigFileStore.Open(file).Update(_ => text);
        Console.WriteLine(checksum);
        return 0;
    }
}

/// <summary>A YAML mapping <c>counters:</c> with one line per writer, edited in place like a minimal write-back.</summary>
internal static class Counters
{
    public static string Increment(string text, string writer)
    {
        var counters = Parse(text);
        long next = counters.GetValueOrDefault(writer) + 1;
        var lines = text.Length == 0 ? ["counters:"] : text.TrimEnd('\n').Split('\n').ToList();
        int index = lines.FindIndex(l => l.StartsWith($"  {writer}:", StringComparison.Ordinal));
        string line = $"  {writer}: {next.ToString(CultureInfo.InvariantCulture)}";
        if (index >= 0) lines[index] = line;
        else lines.Add(line);
        return string.Join('\n', lines) + "\n";
    }

    public static Dictionary<string, long> Parse(string text)
    {
        var result = new Dictionary<string, long>();
        if (text.Length == 0) return result;
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        if (root.Children.TryGetValue(new YamlScalarNode("counters"), out var node) && node is YamlMappingNode counters)
        {
            foreach (var (key, value) in counters.Children)
            {
                result[((YamlScalarNode)key).Value!] = long.Parse(((YamlScalarNode)value).Value!, CultureInfo.InvariantCulture);
            }
        }
        return result;
    }
}

/// <summary>Versions big enough (~200 KB) that a kill often lands inside the write or the fsync.</summary>
internal static class Versions
{
    public static string Content(int pid, long seq)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"writer: {pid}\nseq: {seq}\nitems:\n");
        for (int i = 0; i < 2500; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"  - item {i} of version {seq} written by process {pid}\n");
        }
        return text.ToString();
    }
}
