using System.Diagnostics;
using System.Globalization;
using System.Text;
using ScheduleSync.Files;

namespace ScheduleSync.Worker;

/// <summary>
/// Not a benchmark harness, a quick honest number: the lock overhead per write and the time of a whole safe write
/// (lock, re-read, checksum, .bak, rotation, temp, fsyncs, rename, verify) for a 100-task and a 10,000-task file.
/// </summary>
internal static class Measurement
{
    public static int Run(string dir)
    {
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, "schedule_config.yml");
        var store = ConfigFileStore.Open(file);

        const int lockRounds = 5000;
        for (int i = 0; i < 200; i++) store.Lock().Dispose(); // warm-up
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < lockRounds; i++) store.Lock().Dispose();
        double lockMicros = Stopwatch.GetElapsedTime(start).TotalMicroseconds / lockRounds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"lock acquire+release (uncontended): {lockMicros:0.0} µs per write"));

        foreach (var (tasks, rounds) in new[] { (100, 60), (10_000, 12) })
        {
            string[] versions = [Tasks(tasks, "a"), Tasks(tasks, "b")];
            store.Update(_ => versions[1]);
            var times = new List<double>();
            for (int i = 0; i < rounds; i++)
            {
                string next = versions[i % 2];
                long t = Stopwatch.GetTimestamp();
                store.Update(_ => next);
                times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
            times.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{tasks,6} tasks ({Encoding.UTF8.GetByteCount(versions[0]) / 1024.0,7:0.0} KB): safe write (Update) median {times[times.Count / 2]:0.00} ms, " +
                $"p90 {times[(int)(times.Count * 0.9)]:0.00} ms, min {times[0]:0.00} ms over {rounds} writes"));
        }
        return 0;
    }

    private static string Tasks(int count, string variant)
    {
        var text = new StringBuilder("version: 1\ndefaults:\n  timezone: Europe/Berlin\ntasks:\n");
        for (int i = 0; i < count; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"""
                  task-{i:D5}:
                    name: Task {i} - nightly export of the reporting tables ({variant})
                    description: Exports the reporting tables to object storage and prunes exports older than a week.
                    schedule: "{i % 60} 3 * * *"
                    timezone: Europe/Berlin
                    command: /usr/local/bin/export-reporting-tables.sh
                    args: {"{"} target: s3, keep: 7, bucket: reports-eu-central-1, compress: true {"}"}
                    timeout_seconds: 3600
                    max_retries: 2
                    tags: [ops, backup, reporting, nightly]

                """);
        }
        return text.ToString();
    }
}
