using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Running;
using ScheduleSync.Benchmarks;

// dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- scenarios [--quick] [--json out.json] [--sizes 100,1000] [--runs 5]
// dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- micro [BenchmarkDotNet options, e.g. --filter *PureParts*]
// dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- yaml
// dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- replicas [--rounds 60] [--seconds 10] [--tasks 100]
// dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- profile load|apply|dbtofile|filetodb N SECONDS (to run under dotnet-trace)
var mode = args.Length > 0 ? args[0] : "scenarios";
var rest = args.Skip(1).ToArray();

switch (mode)
{
    case "profile":
        return await Profile.RunAsync(rest);
    case "micro":
        var filter = rest.Contains("--filter") ? rest : [.. rest, "--filter", "*"];
        BenchmarkSwitcher.FromTypes([typeof(PureParts), typeof(YamlParsers)]).Run(filter, Micro.Config());
        return 0;
    case "yaml":
        {
            var report = new Report(new Dictionary<string, string>(), "dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- yaml");
            ParserBench.Run(report, [1000, 10_000]);
            Console.WriteLine(report.Markdown());
            return 0;
        }
    case "scenarios":
        return await Scenarios.RunAsync(rest);
    case "replicas":
        return await ReplicaBench.RunAsync(rest);
    default:
        Console.Error.WriteLine($"unknown mode '{mode}': use scenarios, micro, yaml or replicas");
        return 1;
}

internal static class Scenarios
{
    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var json = Option("--json") ?? (quick ? "schedsync-bench-quick.json" : "schedsync-bench.json");
        var sizes = Option("--sizes")?.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray()
            ?? (quick ? [100, 1000] : [100, 1000, 10_000, 50_000]);
        var fixedRuns = Option("--runs") is { } r ? int.Parse(r, CultureInfo.InvariantCulture) : (int?)null;
        int Runs(int n) => fixedRuns ?? (n >= 50_000 ? 3 : n >= 10_000 ? 5 : 7);
        var command = "dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- scenarios " + string.Join(' ', args);
        var clock = Stopwatch.StartNew();

        await using var env = await BenchEnvironment.StartAsync();
        var machine = await env.DescribeAsync();
        foreach (var (key, value) in machine) Console.WriteLine($"{key}: {value}");
        var report = new Report(machine, command.Trim());

        // JIT and pools: one quiet pass over every sync path at N = 100 before anything is recorded.
        Console.WriteLine("warm-up (not recorded) …");
        if (!args.Contains("--no-warmup"))
            await new SyncBench(env, new Report(machine, "warm-up", quiet: true), 100, 15).RunAsync();

        foreach (var n in sizes)
        {
            var sync = new SyncBench(env, report, n, Runs(n), floorsOnly: args.Contains("--floors-only"));
            await sync.RunAsync();
            if (n == 1000 && !args.Contains("--no-server"))
                await new ServerBench(env, report, n, Runs(n), sync.FloorValues).RunAsync();
            if (n == 50_000 && !args.Contains("--no-server"))
                await new ServerBench(env, report, n, Runs(n), sync.FloorValues, watcherOnly: true).RunAsync();
            if (n == 50_000 && !args.Contains("--no-cli"))
                await new CliBench(env, report, n, Runs(n)).RunAsync();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"… {clock.Elapsed.TotalSeconds:0} s so far"));
        }
        if (!args.Contains("--no-rss"))
            await new RssBench(env, report, sizes.Max(), 3).RunAsync();
        if (!args.Contains("--no-yaml"))
            ParserBench.Run(report, [1000, 10_000]);

        var markdown = report.Markdown()
            + string.Create(CultureInfo.InvariantCulture, $"\nTotal time of this run: {clock.Elapsed.TotalMinutes:0.0} min; load average at the end (1/5/15 min): {BenchEnvironment.LoadAverage()}.\n");
        Console.WriteLine();
        Console.WriteLine(markdown);
        report.WriteJson(json);
        await File.WriteAllTextAsync(Path.ChangeExtension(json, ".md"), markdown);
        Console.WriteLine($"results: {Path.GetFullPath(json)} and {Path.GetFullPath(Path.ChangeExtension(json, ".md"))}");
        return 0;
    }
}
