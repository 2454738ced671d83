using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// Several instances on one database (SPEC §8, issue 13), with real <c>schedsync serve</c> processes on the bench's
/// durable PostgreSQL: how long a change made through replica A takes to appear in replica C's file (a file edit on A,
/// an API write on A), and API write throughput with 16 writers spread over three instances versus one instance.
/// </summary>
/// <remarks>bench/run.sh replicas [--rounds 60] [--seconds 10] [--tasks 100]</remarks>
internal static class ReplicaBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var rounds = int.Parse(Option("--rounds") ?? "60", CultureInfo.InvariantCulture);
        var seconds = int.Parse(Option("--seconds") ?? "10", CultureInfo.InvariantCulture);
        var tasks = int.Parse(Option("--tasks") ?? "100", CultureInfo.InvariantCulture);
        await using var env = await BenchEnvironment.StartAsync();
        foreach (var (key, value) in await env.DescribeAsync()) Console.WriteLine($"{key}: {value}");
        var lines = new List<string>
        {
            $"command: bench/run.sh replicas {string.Join(' ', args)}".TrimEnd(),
            "",
            "| scenario | p50 | p99 | max | n |",
            "|---|---|---|---|---|",
        };

        // ---- propagation: A → C's file, three instances ----
        {
            var database = await env.CreateDatabaseAsync("replicas_latency");
            var yaml = TasksYaml(tasks);
            await using var a = await Instance.StartAsync(env, database, "a", yaml);
            await using var b = await Instance.StartAsync(env, database, "b", yaml);
            await using var c = await Instance.StartAsync(env, database, "c", yaml);
            await env.SettleAsync();

            var fileEdit = new List<double>();
            var apiWrite = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var id = $"task-{round % tasks:D4}";
                var command = $"/bin/{id} --edit {round}";
                var start = Stopwatch.GetTimestamp();
                a.EditLikeAnEditor(id, command);
                await c.WaitForAsync(command);
                fileEdit.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);

                command = $"/bin/{id} --api {round}";
                start = Stopwatch.GetTimestamp();
                using (var response = await a.Http.PutAsync($"/api/tasks/{id}", Json($$"""{"id":"{{id}}","schedule":"@daily","command":"{{command}}"}""")))
                    response.EnsureSuccessStatusCode();
                await c.WaitForAsync(command);
                apiWrite.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            lines.Add(Row($"{tasks} tasks, 3 instances: file edit on A → in C's file", fileEdit, "ms"));
            lines.Add(Row($"{tasks} tasks, 3 instances: API write on A (acknowledged) → in C's file", apiWrite, "ms"));
        }

        // ---- throughput: 16 writers over 3 instances vs 1 ----
        foreach (var instances in new[] { 1, 3 })
        {
            var database = await env.CreateDatabaseAsync($"replicas_throughput{instances}");
            var yaml = TasksYaml(tasks);
            var servers = new List<Instance>();
            try
            {
                for (var i = 0; i < instances; i++) servers.Add(await Instance.StartAsync(env, database, ((char)('a' + i)).ToString(), yaml));
                await env.SettleAsync();
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
                var latencies = new List<double>[16];
                var last = new string[16];
                var clock = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, 16).Select(w => Task.Run(async () =>
                {
                    latencies[w] = [];
                    var server = servers[w % servers.Count];
                    var id = $"task-{w:D4}";
                    for (var n = 0; !stop.IsCancellationRequested; n++)
                    {
                        var command = $"/bin/{id} --w {n}";
                        var start = Stopwatch.GetTimestamp();
                        using var response = await server.Http.PutAsync($"/api/tasks/{id}", Json($$"""{"id":"{{id}}","schedule":"@daily","command":"{{command}}"}"""));
                        response.EnsureSuccessStatusCode();
                        latencies[w].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                        last[w] = command;
                    }
                })));
                var elapsed = clock.Elapsed.TotalSeconds;
                var all = latencies.SelectMany(l => l).ToList();
                // Every acknowledged last value ends up in every instance's file.
                foreach (var server in servers)
                    foreach (var command in last)
                        await server.WaitForAsync(command);
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| 16 API writers over {instances} instance(s): {all.Count / elapsed:0} writes/s, all in every file | {Percentile(all, 0.5):0.0} ms | {Percentile(all, 0.99):0.0} ms | {all.Max():0.0} ms | {all.Count} |"));
            }
            finally
            {
                foreach (var server in servers) await server.DisposeAsync();
            }
        }

        lines.Add("");
        lines.Add($"load average at the end (1/5/15 min): {BenchEnvironment.LoadAverage()}");
        var markdown = string.Join('\n', lines);
        Console.WriteLine();
        Console.WriteLine(markdown);
        var output = Option("--output") ?? "schedsync-bench-replicas.md";
        await File.WriteAllTextAsync(output, markdown + "\n");
        Console.WriteLine($"results: {Path.GetFullPath(output)}");
        return 0;
    }

    private static string Row(string name, List<double> samples, string unit) => string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {Percentile(samples, 0.5):0.0} {unit} | {Percentile(samples, 0.99):0.0} {unit} | {samples.Max():0.0} {unit} | {samples.Count} |");

    private static double Percentile(List<double> samples, double p) => Stats.Percentile(samples, p * 100);

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    private static string TasksYaml(int count)
    {
        var text = new StringBuilder("tasks:\n");
        for (var i = 0; i < count; i++)
            text.Append(CultureInfo.InvariantCulture, $"  task-{i:D4}:\n    schedule: \"@daily\"\n    command: /bin/task-{i:D4}\n");
        return text.ToString();
    }

    /// <summary>One <c>schedsync serve</c> process: its own folder, file, state folder and port; replica name = its letter.</summary>
    private sealed class Instance : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _path;

        private Instance(Process process, string path, int port)
        {
            _process = process;
            _path = path;
            Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        }

        public HttpClient Http { get; }

        public static async Task<Instance> StartAsync(BenchEnvironment env, string database, string name, string yaml)
        {
            var folder = env.NewFolder($"replica-{name}-{Guid.NewGuid():N}"[..24]);
            var path = Path.Combine(folder, "schedule_config.yml");
            await File.WriteAllTextAsync(path, yaml);
            int port;
            using (var listener = new TcpListener(IPAddress.Loopback, 0))
            {
                listener.Start();
                port = ((IPEndPoint)listener.LocalEndpoint).Port;
            }
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = folder,
            };
            foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "schedsync.dll"), "serve", "--config", path, "--database", database,
                         "--urls", $"http://127.0.0.1:{port}", "--replica", name })
                start.ArgumentList.Add(arg);
            start.Environment["XDG_STATE_HOME"] = Path.Combine(folder, "state");
            start.Environment["Logging__LogLevel__Default"] = "Warning";
            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[{name}] {e.Data}"); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var instance = new Instance(process, path, port);
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException($"serve {name} exited with {process.ExitCode}");
                try
                {
                    using var response = await instance.Http.GetAsync("/readyz");
                    if (response.IsSuccessStatusCode) return instance;
                }
                catch (HttpRequestException)
                {
                }
                if (clock.Elapsed > TimeSpan.FromSeconds(120)) throw new TimeoutException($"serve {name} did not become ready");
                await Task.Delay(50);
            }
        }

        /// <summary>A person's editor: the task's command replaced in the whole file, written to a temp file and renamed over it.</summary>
        public void EditLikeAnEditor(string id, string command)
        {
            var lines = File.ReadAllLines(_path);
            var at = Array.IndexOf(lines, $"  {id}:");
            lines[at + 2] = $"    command: {command}";
            var temp = _path + ".swp";
            File.WriteAllLines(temp, lines);
            File.Move(temp, _path, overwrite: true);
        }

        /// <summary>Polls the file (2 ms) until it holds <paramref name="text"/>.</summary>
        public async Task WaitForAsync(string text)
        {
            var clock = Stopwatch.StartNew();
            var needle = Encoding.UTF8.GetBytes(text);
            while (true)
            {
                try
                {
                    if (File.ReadAllBytes(_path).AsSpan().IndexOf(needle) >= 0) return;
                }
                catch (IOException)
                {
                }
                if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"{_path} never got '{text}'");
                await Task.Delay(2);
            }
        }

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            if (!_process.HasExited)
            {
                using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])) await term.WaitForExitAsync();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await _process.WaitForExitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
            _process.Dispose();
            NpgsqlConnection.ClearAllPools();
        }
    }
}
