using ScheduleSync.Yaml;

namespace ScheduleSync.Benchmarks;

/// <summary>The YAML parser comparison: the same generated files, each parser's event stream walked by the same code.</summary>
internal static class ParserBench
{
    public static void Run(Report report, IEnumerable<int> sizes)
    {
        foreach (var n in sizes)
        {
            var text = TaskFiles.Generate(n);
            var runs = n >= 10_000 ? 9 : 21;
            var census = new[] { "YamlDotNet", "SharpYaml events", "SharpYaml reader" }.Select(w => (w, YamlWalk.Census(text, w))).ToList();
            var walks = new (string Name, Func<string, int> Walk)[]
            {
                ("YamlDotNet 18.1 event stream (Parser.MoveNext)", YamlWalk.YamlDotNetEvents),
                ("SharpYaml 3.17 event stream (Parser.CreateParser → IParser.MoveNext)", YamlWalk.SharpYamlEvents),
                ("SharpYaml 3.17 token reader (Serialization.YamlReader.Read)", YamlWalk.SharpYamlReader),
            };
            double? baseline = null;
            foreach (var (name, walk) in walks)
            {
                var samples = Floors.Sample(3, runs, () => walk(text));
                var median = Stats.Median(samples);
                baseline ??= median;
                report.Add(Stats.Row("YAML parser choice (event walk only, same files)", n, name, samples) with
                {
                    Floor = "YamlDotNet walk",
                    RatioOverride = median / baseline.Value,
                });
            }
            var loader = Floors.Sample(2, runs, () => ScheduleLoader.Parse(text, "bench.yml"));
            report.Add(Stats.Row("YAML parser choice (event walk only, same files)", n, "for scale: ScheduleLoader.Parse (YamlDotNet walk + every rule + normalise + hash)", loader) with
            {
                Floor = "YamlDotNet walk",
                RatioOverride = Stats.Median(loader) / baseline!.Value,
                Note = "events seen: " + string.Join("; ", census.Select(c => $"{c.w} {c.Item2.Events} events, {c.Item2.Scalars} scalars, {c.Item2.ScalarChars} chars")),
            });
        }
    }
}
