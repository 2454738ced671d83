using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// BenchmarkDotNet micro-benchmarks of the pure parts at N = 1,000. Short runs, in process (the generated-project
/// toolchain would build under this repository's Directory.Build.props, whose analyzers reject generated code).
/// </summary>
internal static class Micro
{
    public static ManualConfig Config() => (ManualConfig)ManualConfig.Create(DefaultConfig.Instance)
        .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(5).WithIterationCount(10)
            .WithMinIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(250)).WithId("Short-InProcess"))
        .AddDiagnoser(BenchmarkDotNet.Diagnosers.MemoryDiagnoser.Default)
        .WithOptions(ConfigOptions.DisableLogFile);
}

[MemoryDiagnoser]
public class PureParts
{
    private const int N = 1000;
    private byte[] _bytes = [];
    private ScheduleDocument _document = null!;
    private List<TaskDefinition> _tasks = [];
    private SyncInputs _inputs = null!;
    private TaskDefinition _changed = null!;
    private TaskDefinition _added = null!;

    [GlobalSetup]
    public void Setup()
    {
        _bytes = System.Text.Encoding.UTF8.GetBytes(TaskFiles.Generate(N));
        _document = ScheduleLoader.Load(_bytes, "bench.yml");
        _tasks = [.. _document.ValidTasks];
        var yaml = _tasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
        var database = new Dictionary<string, TaskDefinition>(yaml, StringComparer.Ordinal);
        var bases = new Dictionary<string, TaskDefinition>(yaml, StringComparer.Ordinal);
        // Steady state plus a little of everything: one change each side, one merge, one conflict, one new task.
        yaml[_tasks[10].Id] = _tasks[10] with { Command = "changed-in-file" };
        database[_tasks[20].Id] = _tasks[20] with { Command = "changed-in-db" };
        yaml[_tasks[30].Id] = _tasks[30] with { MaxRetries = 5 };
        database[_tasks[30].Id] = _tasks[30] with { Enabled = false };
        yaml[_tasks[40].Id] = _tasks[40] with { Command = "a" };
        database[_tasks[40].Id] = _tasks[40] with { Command = "b" };
        var added = _tasks[0] with { Id = "added-in-db" };
        database[added.Id] = added;
        _inputs = new SyncInputs(yaml, database, bases, new HashSet<string>(), new HashSet<string>(), new HashSet<string>());
        _changed = _tasks[N / 2] with { Command = "/opt/jobs/run --changed" };
        _added = added;
    }

    [Benchmark(Description = "parse + validate (ScheduleLoader.Load, 1,000 tasks)")]
    public int ParseValidate() => ScheduleLoader.Load(_bytes, "bench.yml").Entries.Count;

    [Benchmark(Description = "normalise + hash (1,000 × canonical JSON + SHA-256)")]
    public int NormaliseHash()
    {
        var total = 0;
        foreach (var task in _tasks)
            total += (task with { }).ContentHash.Length; // a `with` copy drops the cached hash
        return total;
    }

    [Benchmark(Description = "plan (SyncPlanner.Plan, three-way, 1,000 tasks)")]
    public int Plan() => SyncPlanner.Plan(_inputs, new SyncOptions()).Actions.Count;

    [Benchmark(Description = "minimal write-back (ScheduleWriter.Apply: 1 changed, 1 added; includes its verify re-parse)")]
    public int Apply() => ScheduleWriter.Apply(_document, [_changed, _added], []).Length;
}

[MemoryDiagnoser]
public class YamlParsers
{
    private string _text = "";

    [Params(1000, 10000)]
    public int Tasks { get; set; }

    [GlobalSetup]
    public void Setup() => _text = TaskFiles.Generate(Tasks);

    [Benchmark(Baseline = true, Description = "YamlDotNet event walk")]
    public int YamlDotNet() => YamlWalk.YamlDotNetEvents(_text);

    [Benchmark(Description = "SharpYaml 3 event walk")]
    public int SharpYamlEvents() => YamlWalk.SharpYamlEvents(_text);

    [Benchmark(Description = "SharpYaml 3 YamlReader walk")]
    public int SharpYamlReader() => YamlWalk.SharpYamlReader(_text);
}
