using System.Globalization;
using System.Net;
using ScheduleSync.Tests.Server;

namespace ScheduleSync.Tests.Docs;

/// <summary>
/// The WebSocket clients in docs/examples run against a real server: one that asks for events the server no longer
/// keeps gets resync_required and reloads; then it prints a task_changed for an API write; a second one started with
/// <c>--since</c> the seq before that write gets it replayed.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class DocsEventExampleTests
{
    public static TheoryData<string, string[]> Examples => new()
    {
        { "node", ["--experimental-websocket", "docs/examples/events.mjs"] },
        { "/usr/bin/python3", ["docs/examples/events.py"] },
    };

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Example_client_follows_events_handles_resync_required_and_replays_with_since(string program, string[] script)
    {
        await using var server = await ServerFixture.StartAsync("docs_example_" + (program == "node" ? "js" : "py"));
        var baseUrl = server.BaseAddress.ToString().TrimEnd('/');
        // The start-up sync logged events 1..n; seq 1 "pruned" makes a replay from 0 impossible.
        Assert.Equal(1, await server.ExecuteAsync("DELETE FROM sync_events WHERE seq = 1"));

        long before;
        await using (var client = WatchedProcess.Start(program, [.. script, baseUrl, "--since", "0"]))
        {
            await client.WaitForLineAsync(l => l.StartsWith("resync_required", StringComparison.Ordinal) && l.Contains("reloaded 2 task(s)", StringComparison.Ordinal),
                "resync_required and a reload of the 2 tasks");
            before = await server.ScalarAsync<long>("SELECT coalesce(max(seq), 0) FROM sync_events");
            using var response = await server.Http.PutAsync("/api/tasks/nightly-backup",
                ServerFixture.Json(new { name = "Nightly backup", schedule = "0 4 * * *", command = "/usr/local/bin/backup.sh" }));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await client.WaitForLineAsync(IsTheUpdate, "the task_changed event of the API write");
        }

        await using var replay = WatchedProcess.Start(program, [.. script, baseUrl, "--since", before.ToString(CultureInfo.InvariantCulture)]);
        var line = await replay.WaitForLineAsync(IsTheUpdate, $"the task_changed event replayed after seq {before}");
        Assert.StartsWith($"event {before + 1} task_changed ", line, StringComparison.Ordinal);
    }

    private static bool IsTheUpdate(string line) =>
        line.StartsWith("event ", StringComparison.Ordinal) && line.Contains("\"type\":\"task_changed\"", StringComparison.Ordinal)
        && line.Contains("\"id\":\"nightly-backup\"", StringComparison.Ordinal) && line.Contains("\"source\":\"api\"", StringComparison.Ordinal);
}
