using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using ScheduleSync.Events;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// SPEC §6 with real WebSocket clients: <c>seq</c> goes up by one per event, <c>?since=n</c> replays exactly what a
/// client missed, and a client that stops reading is dropped while the others keep receiving everything.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ServerEventFeedTests(ITestOutputHelper output)
{
    private static async Task CreateAsync(ServerFixture server, string id, HttpClient? client = null)
    {
        using var response = await (client ?? server.Http).PostAsync("/api/tasks", ServerFixture.Json(new { id, schedule = "@hourly", command = "echo " + id }));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Waits until the client has received every event published so far (and nothing arrives late).</summary>
    private static async Task CaughtUpAsync(ServerFixture server, EventClient client)
    {
        // A write's NOTIFY-triggered run may still publish: wait until the hub has been quiet for a moment.
        long last;
        do
        {
            last = server.Hub.LastSeq;
            await Task.Delay(150);
        }
        while (server.Hub.LastSeq != last);
        await client.WaitForAsync(e => e.Seq >= last, $"seq {last}");
    }

    private static void AssertContiguous(IReadOnlyList<ReceivedEvent> events, long from, long to)
    {
        var seqs = events.Select(e => e.Seq).ToList();
        Assert.True(seqs.SequenceEqual(Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => (long)i)),
            $"expected seq {from}..{to} each once in order, got [{string.Join(", ", seqs)}]");
    }

    [Fact]
    public async Task Reconnecting_with_since_replays_exactly_the_missed_events()
    {
        await using var server = await ServerFixture.StartAsync("events_since");
        await using var recorder = await server.ConnectEventsAsync();
        var first = await server.ConnectEventsAsync();

        await CreateAsync(server, "before-1");
        await CreateAsync(server, "before-2");
        await CaughtUpAsync(server, first);
        var seen = first.Events[^1].Seq;
        await first.DisposeAsync();

        // Missed while away: API writes, a plain-SQL change, a file edit.
        await CreateAsync(server, "missed-1");
        await CreateAsync(server, "missed-2");
        await server.ExecuteAsync("UPDATE scheduled_tasks SET max_retries = 5 WHERE id = 'before-1'");
        await recorder.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("before-1") && e.String("source") == "database");
        await ServerFixture.RunAsync("/usr/bin/sed", "-i", "s|command: warm-cache$|command: warm-cache --missed|", server.ConfigPath);
        await recorder.WaitForAsync("schedule_config_updated", e => e.TaskIds.Contains("cache-warmup"), TimeSpan.FromSeconds(3));
        await CaughtUpAsync(server, recorder);
        var missedUntil = server.Hub.LastSeq;

        await using var back = await server.ConnectEventsAsync(since: seen);
        await back.WaitForAsync(e => e.Seq >= missedUntil, $"the replay up to seq {missedUntil}");
        var replayed = back.Events;
        var expected = recorder.Events.Where(e => e.Seq > seen && e.Seq <= missedUntil).ToList();
        output.WriteLine($"left after seq {seen}; missed {expected.Count} events ({string.Join(", ", expected.Select(e => e.Type).Distinct())}); replayed {replayed.Count}");
        Assert.NotEmpty(expected);
        AssertContiguous(replayed, seen + 1, missedUntil);
        Assert.Equal(expected.Select(e => e.Text), replayed.Select(e => e.Text));

        // Then it is live again, in step with a client that never left.
        await CreateAsync(server, "after-1");
        await CaughtUpAsync(server, back);
        await CaughtUpAsync(server, recorder);
        AssertContiguous(back.Events, seen + 1, server.Hub.LastSeq);
        Assert.Equal(recorder.Events.Where(e => e.Seq > seen).Select(e => e.Text), back.Events.Select(e => e.Text));
        AssertContiguous(recorder.Events, recorder.Events[0].Seq, server.Hub.LastSeq);
    }

    [Fact]
    public async Task A_client_that_stops_reading_is_dropped_while_others_keep_receiving()
    {
        await using var server = await ServerFixture.StartAsync("events_slow",
            configure: b => b.Services.AddSingleton(new EventOptions { ClientQueue = 64 }));
        await using var fast = await server.ConnectEventsAsync();
        // A small kernel receive buffer and no reads: the server's sends back up after a few kilobytes.
        await using var slow = await server.ConnectEventsAsync(receiveBufferBytes: 4096);
        Assert.Equal(2, server.Hub.SubscriberCount);

        var clock = Stopwatch.StartNew();
        var created = new List<string>();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                var id = $"burst-{w}-{i}";
                await CreateAsync(server, id);
                lock (created) created.Add(id);
            }
        })).ToList();
        await Task.WhenAll(writers);
        var afterWrites = server.Hub.LastSeq;
        var stillThere = server.Hub.SubscriberCount;

        // Kernel socket buffers on loopback autotune to megabytes, more than small events fill in a short test: large
        // events get there quickly. Paced, so a client that does read keeps up with its queue of 64.
        var padding = new string('x', 32 * 1024);
        var fillers = 0;
        while (server.Hub.SubscriberCount > 1 && fillers < 2000)
        {
            for (var i = 0; i < 8; i++, fillers++) await SyncEvents.AppendAsync(server.Db, "test_padding", new { pad = padding });
            await Task.Delay(2);
        }
        var droppedAfter = server.Hub.LastSeq;
        Assert.True(server.Hub.SubscriberCount == 1, $"the slow client was not dropped after {created.Count} writes and {fillers} 32 KiB events ({droppedAfter} events)");

        // The others go on.
        for (var i = 0; i < 5; i++)
        {
            var id = $"after-drop-{i}";
            await CreateAsync(server, id);
            created.Add(id);
        }
        await CaughtUpAsync(server, fast);
        AssertContiguous(fast.Events, fast.Events[0].Seq, server.Hub.LastSeq);
        Assert.All(created, id => Assert.Contains(fast.Events, e => e.Type == "task_changed" && e.String("id") == id));
        Assert.Null(fast.CloseStatus);
        Assert.Null(fast.Failure);

        // The slow client finds what was buffered for it, then the end: never a gap.
        slow.StartReading();
        Assert.True(await slow.WaitClosedAsync(TimeSpan.FromSeconds(10)), "the slow client's feed did not end");
        output.WriteLine($"{created.Count - 5} API writes made {afterWrites} events (subscribers then: {stillThere}); the slow client was dropped after {fillers} more 32 KiB events (seq {droppedAfter}) in {ServerFixture.Ms(clock.Elapsed)}; "
            + $"it had received {slow.Events.Count} events; feed ended with {slow.CloseStatus?.ToString() ?? slow.Failure?.GetType().Name}: {slow.Failure?.Message}");
        Assert.True(slow.CloseStatus == WebSocketCloseStatus.PolicyViolation || slow.Failure is WebSocketException,
            $"ended with {slow.CloseStatus} / {slow.Failure}");
        Assert.True(slow.Events.Count < fast.Events.Count);
        if (slow.Events.Count > 0) AssertContiguous(slow.Events, slow.Events[0].Seq, slow.Events[^1].Seq);
    }

    // ---- Regressions: bugs found while writing these tests (each test failed on the code of that time, see the report of
    // the server-tests branch; fixed since). The summaries describe the bug as it was.

    /// <summary>
    /// EventHub.Subscribe queues the replay with TryWrite into the client's bounded queue and stops silently when it
    /// is full. A client that catches up on more than ClientQueue events and reads them quickly gets the first
    /// ClientQueue of them, then live events: the rest are skipped without a resync_required or a drop.
    /// </summary>
    [Fact]
    public async Task Replay_longer_than_the_client_queue_never_skips_events_silently()
    {
        await using var server = await ServerFixture.StartAsync("bug_replay_queue",
            configure: b => b.Services.AddSingleton(new EventOptions { ClientQueue = 8 }));
        for (var i = 0; i < 8; i++) await CreateAsync(server, $"early-{i}");
        await Task.Delay(200);
        var published = server.Hub.LastSeq;
        Assert.True(published > 8, $"only {published} events");

        await using var client = await server.ConnectEventsAsync(since: 0);
        await ServerFixture.WaitUntilAsync(() => client.Events.Count >= 8 || client.Events.Any(e => e.Type == "resync_required") || client.Completion.IsCompleted,
            TimeSpan.FromSeconds(3), "the replay");
        await CreateAsync(server, "late");
        await ServerFixture.WaitUntilAsync(
            () => client.Completion.IsCompleted || client.Events.Any(e => e.String("id") == "late"), TimeSpan.FromSeconds(3), "the live event or a drop");

        var received = client.Events;
        output.WriteLine($"{published} events published before connecting with since=0; received seqs [{string.Join(", ", received.Select(e => e.Seq))}]; feed end: {client.CloseStatus}");
        if (received.Any(e => e.Type == "resync_required") || client.CloseStatus == WebSocketCloseStatus.PolicyViolation) return;
        AssertContiguous(received, 1, received[^1].Seq);
    }

    /// <summary>
    /// Seq restarts at 1 when the server restarts, and Subscribe replays nothing when <c>since</c> is at or beyond
    /// the current seq. A client that reconnects after a restart with the seq it had reached misses everything the
    /// new instance published, silently. A <c>since</c> beyond the last seq can only come from an earlier instance:
    /// it should get resync_required.
    /// </summary>
    [Fact]
    public async Task Reconnecting_after_a_server_restart_gets_the_missed_events_or_a_resync()
    {
        await using var server = await ServerFixture.StartAsync("bug_restart_seq");
        long seen;
        await using (var before = await server.ConnectEventsAsync())
        {
            for (var i = 0; i < 4; i++) await CreateAsync(server, $"before-{i}");
            await CaughtUpAsync(server, before);
            seen = before.Events[^1].Seq;
        }

        await server.RestartAsync();
        await CreateAsync(server, "after-restart");
        await Task.Delay(200);
        output.WriteLine($"the client had seen seq {seen}; after the restart the server is at seq {server.Hub.LastSeq}");

        await using var back = await server.ConnectEventsAsync(since: seen);
        await back.WaitForAsync(e => e.Type == "resync_required" || e.String("id") == "after-restart",
            "resync_required, or the event it missed", TimeSpan.FromSeconds(2));
    }
}
