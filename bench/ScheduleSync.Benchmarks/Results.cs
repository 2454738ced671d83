using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ScheduleSync.Benchmarks;

/// <summary>One measured row: a floor, a scenario or a parser comparison, with its samples and how it compares.</summary>
internal sealed record Row
{
    public required string Group { get; init; }
    public required int N { get; init; }
    public required string Name { get; init; }
    public required string Unit { get; init; }
    public required double Median { get; init; }
    public required double Min { get; init; }
    public required double Max { get; init; }
    public required double[] Samples { get; init; }
    /// <summary>What the ratio divides by, e.g. "parse + upsert", and its value in <see cref="Unit"/>.</summary>
    public string? Floor { get; init; }
    public double? FloorValue { get; init; }
    public double? Ratio => FloorValue is > 0 && Unit is "ms" ? Median / FloorValue : RatioOverride;
    public double? RatioOverride { get; init; }
    public string? Target { get; init; }
    public bool? Met { get; init; }
    public string? Note { get; init; }
    /// <summary>The 1-minute load average when the row was recorded (what else the 2 cores were doing).</summary>
    public string? Load { get; init; }
    /// <summary>The row of issue 15's target table this measurement answers, if any (listed first, in the summary).</summary>
    public string? Issue15 { get; init; }
}

internal static class Stats
{
    public static double Median(IReadOnlyList<double> samples)
    {
        var sorted = samples.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Nearest-rank percentile (p in 0..100).</summary>
    public static double Percentile(IReadOnlyList<double> samples, double p)
    {
        var sorted = samples.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static Row Row(string group, int n, string name, IReadOnlyList<double> samples, string unit = "ms") => new()
    {
        Group = group,
        N = n,
        Name = name,
        Unit = unit,
        Median = Median(samples),
        Min = samples.Count == 0 ? double.NaN : samples.Min(),
        Max = samples.Count == 0 ? double.NaN : samples.Max(),
        Samples = [.. samples],
    };
}

/// <summary>Collects rows, prints them as markdown tables, writes them as JSON.</summary>
internal sealed class Report(IReadOnlyDictionary<string, string> machine, string command, bool quiet = false)
{
    private readonly List<Row> _rows = [];

    public IReadOnlyList<Row> Rows => _rows;

    /// <summary>Medians kept for a later comparison across N (e.g. the 1,000-task edit a 50,000-task edit is held to).</summary>
    public Dictionary<string, double> Marks { get; } = new(StringComparer.Ordinal);

    public Row Add(Row row)
    {
        row = row with { Load = row.Load ?? BenchEnvironment.LoadAverage().Split(" / ")[0] };
        _rows.Add(row);
        if (!quiet) Console.WriteLine($"  {Format(row)}");
        return row;
    }

    private static string F(double v) => double.IsNaN(v) ? "–"
        : Math.Abs(v) >= 100 ? v.ToString("N0", CultureInfo.InvariantCulture)
        : Math.Abs(v) >= 10 ? v.ToString("0.0", CultureInfo.InvariantCulture)
        : v.ToString("0.00", CultureInfo.InvariantCulture);

    private static string Format(Row r) =>
        $"{r.Name} (N={r.N:N0}): median {F(r.Median)} {r.Unit} [{F(r.Min)}–{F(r.Max)}] over {r.Samples.Length}"
        + (r.Ratio is { } ratio ? $", ×{F(ratio)} of {r.Floor}" : "")
        + (r.Target is not null ? $", target {r.Target}: {(r.Met == true ? "met" : "MISSED")}" : "") + $", load {r.Load}";

    public string Markdown()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`");
        text.AppendLine();
        text.AppendLine("| machine | |");
        text.AppendLine("|---|---|");
        foreach (var (key, value) in machine) text.AppendLine(CultureInfo.InvariantCulture, $"| {key} | {value} |");
        var targets = _rows.Where(r => r.Issue15 is not null).ToList();
        if (targets.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("### targets of issue 15 (median; min–max; 1-min load average when measured; ratio to the floor the issue names)");
            text.AppendLine();
            text.AppendLine("| scenario | measured | min–max | load | floor | ratio | target | |");
            text.AppendLine("|---|---:|---:|---:|---|---:|---|---|");
            foreach (var r in targets)
            {
                var floor = r.Floor is null ? "" : r.FloorValue is { } fv ? $"{r.Floor} = {F(fv)} {r.Unit}" : r.Floor;
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {r.Issue15} | {F(r.Median)} {r.Unit} | {F(r.Min)}–{F(r.Max)} | {r.Load} | {floor} | {(r.Ratio is { } x ? "×" + F(x) : "")} | {r.Target ?? ""} | {(r.Met is null ? "" : r.Met.Value ? "met" : "**missed**")} |");
            }
        }
        foreach (var group in _rows.GroupBy(r => r.Group))
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"### {group.Key}");
            text.AppendLine();
            text.AppendLine("| N | measurement | median | min–max | runs | load | floor | ratio | target | |");
            text.AppendLine("|---:|---|---:|---:|---:|---:|---|---:|---|---|");
            foreach (var r in group)
            {
                var floor = r.Floor is null ? "" : r.FloorValue is { } fv ? $"{r.Floor} = {F(fv)} {r.Unit}" : r.Floor;
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {r.N:N0} | {r.Name} | {F(r.Median)} {r.Unit} | {F(r.Min)}–{F(r.Max)} | {r.Samples.Length} | {r.Load} | {floor} | {(r.Ratio is { } x ? "×" + F(x) : "")} | {r.Target ?? ""} | {(r.Met is null ? "" : r.Met.Value ? "met" : "**missed**")} |");
            }
        }
        var notes = _rows.Where(r => r.Note is not null).ToList();
        if (notes.Count > 0)
        {
            text.AppendLine();
            foreach (var r in notes) text.AppendLine(CultureInfo.InvariantCulture, $"- {r.Name} (N={r.N:N0}): {r.Note}");
        }
        return text.ToString();
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public void WriteJson(string path)
    {
        var json = JsonSerializer.Serialize(new { command, machine, generated_at = DateTimeOffset.UtcNow, rows = _rows }, JsonOptions);
        File.WriteAllText(path, json);
    }
}
