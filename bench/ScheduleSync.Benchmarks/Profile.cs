using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Yaml;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// Loops one hot path for a while, to be run under a profiler:
/// <c>dotnet-trace collect -o x.nettrace -- dotnet ScheduleSync.Benchmarks.dll profile load 10000 20</c>, then
/// <c>dotnet-trace report x.nettrace topN -n 40 --inclusive</c>.
/// </summary>
internal static class Profile
{
    public static async Task<int> RunAsync(string[] args)
    {
        var what = args.ElementAtOrDefault(0) ?? "load";
        var n = int.Parse(args.ElementAtOrDefault(1) ?? "10000", CultureInfo.InvariantCulture);
        var seconds = double.Parse(args.ElementAtOrDefault(2) ?? "20", CultureInfo.InvariantCulture);
        var text = TaskFiles.Generate(n);
        var bytes = Encoding.UTF8.GetBytes(text);
        var clock = Stopwatch.StartNew();
        var count = 0;
        switch (what)
        {
            case "load":
                while (clock.Elapsed.TotalSeconds < seconds) { ScheduleLoader.Load(bytes, "p.yml"); count++; }
                break;
            case "apply":
                var document = ScheduleLoader.Load(bytes, "p.yml");
                var task = document.ValidTasks.ElementAt(n / 3);
                while (clock.Elapsed.TotalSeconds < seconds)
                {
                    ScheduleWriter.Apply(document, [task with { Command = TaskFiles.Command(n / 3, ++count), Tags = [] }], []);
                }
                break;
            case "dbtofile" or "filetodb":
                {
                    await using var env = await BenchEnvironment.StartAsync();
                    var folder = env.NewFolder("profile");
                    var path = Path.Combine(folder, "schedule_config.yml");
                    await File.WriteAllTextAsync(path, text);
                    var connectionString = await env.CreateDatabaseAsync("profile");
                    await using var dataSource = NpgsqlDataSource.Create(connectionString);
                    var runner = new SyncRunner(dataSource, ConfigFileStore.Open(path), new SyncOptions());
                    await runner.RunAsync("cli");
                    var tasks = new TaskStore(dataSource);
                    var current = ScheduleLoader.Load(bytes, path).ValidTasks.ElementAt(n / 3);
                    clock.Restart();
                    while (clock.Elapsed.TotalSeconds < seconds)
                    {
                        count++;
                        if (what == "dbtofile")
                        {
                            current = current with { Command = TaskFiles.Command(n / 3, count), Tags = [] };
                            await tasks.UpdateAsync(current, null, new ChangeContext("api", "profile"));
                        }
                        else
                        {
                            TaskFiles.ReplaceByRename(path, TaskFiles.WithCommand(await File.ReadAllTextAsync(path), n / 2, count));
                        }
                        await runner.RunAsync("cli");
                    }
                    break;
                }
            case "safewrite" or "floorwrite":
                {
                    var folder = Path.Combine(Path.GetTempPath(), "schedsync-profile-write");
                    if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
                    Directory.CreateDirectory(folder);
                    var path = Path.Combine(folder, "schedule_config.yml");
                    var store = ConfigFileStore.Open(path);
                    var variants = new[] { bytes, [.. bytes, (byte)'\n'] };
                    var times = new List<double>();
                    while (clock.Elapsed.TotalSeconds < seconds)
                    {
                        var start = Stopwatch.GetTimestamp();
                        if (what == "safewrite")
                        {
                            using var held = store.Lock();
                            store.WriteLocked(null, variants[count % 2]);
                        }
                        else
                        {
                            Floors.AtomicWrite(path, variants[count % 2]);
                        }
                        times.Add(Floors.Ms(start));
                        count++;
                    }
                    Console.WriteLine(string.Join(" ", times.Select(t => t.ToString("0.0", CultureInfo.InvariantCulture))));
                    Directory.Delete(folder, recursive: true);
                    break;
                }
            case "jit":
                {
                    // The cold import's two bulk statements with PostgreSQL's JIT on (the server default) and off.
                    await using var env = await BenchEnvironment.StartAsync();
                    var tasksToImport = ScheduleLoader.Load(bytes, "p.yml").ValidTasks.ToList();
                    foreach (var jit in new[] { "on", "off", "on", "off", "on", "off" })
                    {
                        var connectionString = await env.CreateDatabaseAsync("jit");
                        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
                        {
                            await env.SettleAsync();
                            var tables = new SyncTables(dataSource, "bench");
                            await tables.EnsureAsync(default);
                            await using var connection = await dataSource.OpenConnectionAsync();
                            await using var tx = await connection.BeginTransactionAsync();
                            await SyncTables.ExecuteAsync(connection, tx, $"SET LOCAL jit = {jit}", default);
                            await TaskStore.SetContextAsync(connection, tx, new ChangeContext("yaml", "jit"), default);
                            var start = Stopwatch.GetTimestamp();
                            await TaskStore.UpsertManyAsync(connection, tx, tasksToImport, "jit", default);
                            var upsert = Floors.Ms(start);
                            start = Stopwatch.GetTimestamp();
                            await tables.WriteBaseAsync(connection, tx, tasksToImport, [], default);
                            var writeBase = Floors.Ms(start);
                            await tx.CommitAsync();
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"N={n} jit={jit}: UpsertManyAsync {upsert:0} ms, WriteBaseAsync {writeBase:0} ms"));
                        }
                        await env.DropDatabaseAsync(connectionString);
                    }
                    break;
                }
            default:
                Console.Error.WriteLine("profile load|apply|dbtofile|filetodb N SECONDS");
                return 1;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what} N={n}: {count} iterations in {clock.Elapsed.TotalSeconds:0.0} s, {clock.Elapsed.TotalMilliseconds / Math.Max(count, 1):0.0} ms each"));
        return 0;
    }
}
