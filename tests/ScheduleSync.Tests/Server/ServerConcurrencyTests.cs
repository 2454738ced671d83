using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using ScheduleSync.Yaml;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// The group commit under load (SPEC §4 "API write"): 16 API clients write while another OS process edits the file
/// (taking the sidecar lock, as SPEC §2 asks of cooperating scripts) and a reader parses the file over and over.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerConcurrencyTests(ITestOutputHelper output)
{
    private const int Clients = 16;
    private const int WritesPerClient = 50;
    private const int TasksPerClient = 10;
    private const int ExternalEdits = 20;

    private const string Yaml = """
        # schedule_config.yml — burst test
        version: 1
        tasks:
          # edited by another process during the test
          external-task:
            schedule: "*/10 * * * *"
            command: echo ext-0

        """;

    // Every edit under flock on the sidecar lock, by rename (sed -i); every fifth edit also appends a task.
    private const string EditorScript = """
        set -e
        cfg="$1"; lock="$2"; edits="$3"
        for i in $(seq 1 "$edits"); do
          flock "$lock" sed -i "s/^    command: echo ext-[0-9]*\$/    command: echo ext-$i/" "$cfg"
          if [ $((i % 5)) -eq 0 ]; then
            flock "$lock" sed -i "\$a\\  ext-added-$i:\\n    schedule: \"@daily\"\\n    command: echo added-$i" "$cfg"
          fi
          sleep 0.1
        done
        """;

    [Fact]
    public async Task Sixteen_api_clients_and_an_editing_process_lose_nothing_and_share_file_writes()
    {
        await using var server = await ServerFixture.StartAsync("burst", Yaml);
        var runsBefore = await server.ScalarAsync<long>("SELECT coalesce(max(id), 0) FROM sync_runs");

        using var stopReading = new CancellationTokenSource();
        var reader = Task.Run(() => ReadContinuously(server.ConfigPath, stopReading.Token));

        var editorInfo = new ProcessStartInfo("/bin/bash") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in (string[])["-c", EditorScript, "editor", server.ConfigPath, server.LockPath, ExternalEdits.ToString(CultureInfo.InvariantCulture)])
            editorInfo.ArgumentList.Add(argument);
        using var editor = Process.Start(editorInfo)!;
        var editorError = editor.StandardError.ReadToEndAsync();

        var latencies = new ConcurrentBag<TimeSpan>();
        var acknowledgedChecked = new ConcurrentBag<string>();
        var expected = new ConcurrentDictionary<string, string>();
        var burst = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            using var http = server.NewClient();
            for (var n = 0; n < WritesPerClient; n++)
            {
                var id = $"client-{c:00}-task-{n % TasksPerClient}";
                var command = $"run {c} {n}";
                using var content = ServerFixture.Json(new { id, schedule = $"{n % 60} * * * *", command });
                var clock = Stopwatch.StartNew();
                using var response = n < TasksPerClient
                    ? await http.PostAsync("/api/tasks", content)
                    : await http.PutAsync($"/api/tasks/{id}", content);
                latencies.Add(clock.Elapsed);
                Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, $"{id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                Assert.Equal("done", ServerFixture.Header(response, "ScheduleSync-Export"));
                expected[id] = command;
                // Acknowledged means committed and in the file (SPEC §4), now, not after some later run: only this
                // client writes this task, so both sides hold this value until its next write.
                Assert.Equal(command, await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = $1", id));
                var inFile = ScheduleLoader.LoadFile(server.ConfigPath).ValidTasks.FirstOrDefault(t => t.Id == id);
                Assert.True(inFile?.Command == command, $"{id}: acknowledged '{command}', the file has '{inFile?.Command}'");
                acknowledgedChecked.Add(id);
            }
        })).ToList();
        await Task.WhenAll(clients);
        var burstTime = burst.Elapsed;

        await editor.WaitForExitAsync();
        Assert.True(editor.ExitCode == 0, $"the editing process failed: {await editorError}");
        await stopReading.CancelAsync();
        var (reads, failures, firstFailure) = await reader;

        // Any file edit still waiting for the watcher's debounce is picked up by this final sync.
        using (var sync = await server.Http.PostAsync("/api/sync", null))
            Assert.Equal(HttpStatusCode.OK, sync.StatusCode);

        var database = await server.DatabaseHashesAsync();
        var file = server.ParseFile();
        Assert.True(file.IsValid, string.Join("\n", file.FormatProblems()));
        var fileTasks = file.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);

        // No lost write: every API write's last value is on both sides, and so is every edit of the other process.
        Assert.Equal(Clients * TasksPerClient, expected.Count);
        Assert.Equal(Clients * WritesPerClient, acknowledgedChecked.Count);
        foreach (var (id, command) in expected)
        {
            Assert.Equal(command, await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = $1", id));
            Assert.Equal(command, fileTasks[id].Command);
        }
        Assert.Equal($"echo ext-{ExternalEdits}", await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'external-task'"));
        Assert.Equal($"echo ext-{ExternalEdits}", fileTasks["external-task"].Command);
        for (var i = 5; i <= ExternalEdits; i += 5)
            Assert.Equal($"echo added-{i}", await server.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = $1", $"ext-added-{i}"));

        // Both sides equal, the file's comments intact.
        Assert.Equal(fileTasks.ToDictionary(t => t.Key, t => t.Value.ContentHash, StringComparer.Ordinal), database);
        Assert.StartsWith("# schedule_config.yml — burst test\nversion: 1\ntasks:\n  # edited by another process during the test\n  external-task:\n",
            File.ReadAllText(server.ConfigPath), StringComparison.Ordinal);

        var apiWrites = Clients * WritesPerClient;
        var writesWithExports = await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE id > $1 AND exports > 0", runsBefore);
        var checksumChanges = await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE id > $1 AND checksum_after IS DISTINCT FROM checksum_before", runsBefore);
        var runs = await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE id > $1", runsBefore);
        var failedRuns = await server.ScalarAsync<long>("SELECT count(*) FROM sync_runs WHERE id > $1 AND status <> 'completed'", runsBefore);
        var samples = latencies.ToList();
        output.WriteLine($"{apiWrites} API writes by {Clients} clients in {ServerFixture.Ms(burstTime)} ({apiWrites / burstTime.TotalSeconds:0} writes/s) while another process made {ExternalEdits} edits");
        output.WriteLine($"API write -> response (commit + coalesced export): p50 {ServerFixture.Ms(ServerFixture.Percentile(samples, 0.5))}, "
            + $"p99 {ServerFixture.Ms(ServerFixture.Percentile(samples, 0.99))}, max {ServerFixture.Ms(samples.Max())}");
        output.WriteLine($"sync runs: {runs}, with exports: {writesWithExports}, file checksum changed: {checksumChanges}, failed: {failedRuns}; {ServerFixture.Ms(burstTime / runs)} of burst per run");
        output.WriteLine($"reader: {reads} parses of the file during the run, {failures} failed{(firstFailure is null ? "" : ": " + firstFailure)}");

        Assert.Equal(0, failures);
        Assert.True(reads > 20, $"the reader only parsed the file {reads} times");
        Assert.Equal(0, failedRuns);
        Assert.True(writesWithExports < apiWrites / 2, $"{writesWithExports} file writes for {apiWrites} API writes: the writes were not coalesced");
        Assert.True(checksumChanges < apiWrites / 2, $"the file changed {checksumChanges} times for {apiWrites} API writes");
    }

    /// <summary>Parses the file as any reader would (no lock): rename makes every read a whole old or new file.</summary>
    private static (int Reads, int Failures, string? First) ReadContinuously(string path, CancellationToken stop)
    {
        var reads = 0;
        var failures = 0;
        string? first = null;
        while (!stop.IsCancellationRequested)
        {
            string text;
            try
            {
                text = File.ReadAllText(path, Encoding.UTF8);
            }
            catch (IOException e)
            {
                failures++;
                first ??= "read failed: " + e.Message;
                continue;
            }
            var document = ScheduleLoader.Parse(text, path);
            reads++;
            if (!document.IsValid || !document.ValidTasks.Any(t => t.Id == "external-task"))
            {
                failures++;
                first ??= string.Join("; ", document.FormatProblems()) + $" ({text.Length} chars)";
            }
            Thread.Sleep(10);
        }
        return (reads, failures, first);
    }
}
