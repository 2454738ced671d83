using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Server;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Replicas;

/// <summary>
/// Several instances on one PostgreSQL (SPEC §8, issue 13): real <c>schedsync serve</c> processes, each a replica with
/// its own copy of the file, one real database. "psql" is plain SQL on its own connection, as psql sends it.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ReplicaProcessTests(ITestOutputHelper output)
{
    private const string ThreeTasks = """
        # shared schedule
        tasks:
          alpha:
            schedule: "0 1 * * *"
            command: /bin/alpha
          beta:
            schedule: "0 2 * * *"
            command: /bin/beta
          gamma:
            schedule: "0 3 * * *"
            command: /bin/gamma
        """;

    [Fact]
    public async Task A_file_edit_on_A_an_api_write_on_B_and_a_sql_change_reach_all_three_files_without_conflicts_and_then_nothing_moves()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_three");
        var (a, b, c) = (set.Add("a", ThreeTasks), set.Add("b", ThreeTasks), set.Add("c", ThreeTasks));
        await a.StartAsync(); // imports the file; b and c find the same tasks and take them as their base
        await ReplicaSet.StartAllAsync(b, c);

        a.EditLikeAnEditor(text => text.Replace("\"0 1 * * *\"", "\"30 1 * * *\"", StringComparison.Ordinal));
        using (var put = await b.Http.PutAsync("/api/tasks/beta", ServerFixture.Json(new { id = "beta", schedule = "0 2 * * *", command = "/bin/beta --api" })))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await set.ExecuteAsync("UPDATE scheduled_tasks SET command = '/bin/gamma --sql' WHERE id = 'gamma'");

        var replicas = new[] { a, b, c };
        await ReplicaSet.EventuallyAsync(() => Task.FromResult(replicas.All(r =>
            r.FileTasks() is var file && file.Count == 3 && file["alpha"].Schedule == "30 1 * * *"
            && file["beta"].Command == "/bin/beta --api" && file["gamma"].Command == "/bin/gamma --sql")),
            "all three files hold all three changes", async () => await set.DisagreementAsync(replicas) ?? "files: " + string.Join(" / ", replicas.Select(r => string.Join(",", r.FileCommands()))));
        Assert.Equal("30 1 * * *", await set.ScalarAsync<string>("SELECT schedule FROM scheduled_tasks WHERE id = 'alpha'"));
        Assert.Equal(0L, await set.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts"));
        // Each change is in the database once: one audited update per task.
        Assert.Equal(3L, await set.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE action = 'update'"));

        // Quiet: no replica imports, exports, records a run or an event any more (before replicas: ~170 updates/s).
        await set.AssertQuietAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(3L, await set.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE action = 'update'"));
        Assert.Equal(["a", "b", "c"], (await ReplicasAsync(a)).Select(r => r.GetProperty("name").GetString()));
        Assert.All(await ReplicasAsync(c), r => Assert.Equal((0, 0, 0), (r.GetProperty("changes_behind").GetInt32(), r.GetProperty("pending_exports").GetInt32(), r.GetProperty("open_conflicts").GetInt32())));
        using (var status = await b.Http.GetAsync("/api/sync/status"))
        {
            var listed = (await status.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("replicas").EnumerateArray().ToList();
            Assert.Equal(["a", "b", "c"], listed.Select(r => r.GetProperty("name").GetString()));
            Assert.Equal(["b"], listed.Where(r => r.GetProperty("current").GetBoolean()).Select(r => r.GetProperty("name").GetString()));
        }
    }

    /// <summary>What a writer was told succeeded: the task and the command it wrote.</summary>
    private sealed record Ack(string Id, string Command, string Via);

    /// <summary>
    /// Writers on every replica for <paramref name="duration"/>: each replica's API (creates of its own tasks, updates of
    /// one task all of them share), a script editing each replica's file under the lock (new tasks), and plain SQL
    /// (creates, updates of the shared task). Returns what each was told succeeded.
    /// </summary>
    private static async Task<List<Ack>> BurstAsync(ReplicaSet set, Replica[] replicas, TimeSpan duration, Func<Task>? midway = null)
    {
        var acks = new ConcurrentBag<Ack>();
        using var stop = new CancellationTokenSource(duration);
        var writers = new List<Task>();
        foreach (var (replica, i) in replicas.Select((r, i) => (r, i)))
        {
            writers.Add(Task.Run(async () =>
            {
                for (var n = 0; !stop.IsCancellationRequested; n++)
                {
                    var (id, command) = n % 4 == 3 ? ("shared", $"/bin/shared api{i}-{n}") : ($"api{i}-{n}", $"/bin/api{i}-{n}");
                    try
                    {
                        using var response = id == "shared"
                            ? await replica.Http.PutAsync("/api/tasks/shared", ServerFixture.Json(new { id, schedule = "@daily", command }))
                            : await replica.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id, schedule = "@daily", command }));
                        if (response.IsSuccessStatusCode) acks.Add(new Ack(id, command, $"api {replica.Name}"));
                    }
                    catch (HttpRequestException)
                    {
                        await Task.Delay(100); // that instance is down (the kill test): its writer keeps trying, unacknowledged
                    }
                }
            }));
            writers.Add(Task.Run(async () =>
            {
                for (var n = 0; !stop.IsCancellationRequested; n++)
                {
                    var (id, command) = ($"file{i}-{n}", $"/bin/file{i}-{n}");
                    if (replica.EditLocked(text => Replica.AppendTask(text, id, command))) acks.Add(new Ack(id, command, $"file {replica.Name}"));
                    await Task.Delay(150);
                }
            }));
        }
        writers.Add(Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var (id, command) = n % 3 == 2 ? ("shared", $"/bin/shared sql-{n}") : ($"sql-{n}", $"/bin/sql-{n}");
                if (id == "shared") await set.ExecuteAsync("UPDATE scheduled_tasks SET command = $1 WHERE id = 'shared'", command);
                else await set.ExecuteAsync("INSERT INTO scheduled_tasks (id, schedule, command) VALUES ($1, '@daily', $2)", id, command);
                acks.Add(new Ack(id, command, "sql"));
                await Task.Delay(20);
            }
        }));
        if (midway is not null)
        {
            await Task.Delay(duration / 3);
            await midway();
        }
        await Task.WhenAll(writers);
        return [.. acks];
    }

    /// <summary>Every acknowledged write is in the database and every file, or was superseded on record, or sits in a conflict.</summary>
    private async Task AssertNothingLostAsync(ReplicaSet set, Replica[] replicas, List<Ack> acks)
    {
        await ReplicaSet.EventuallyAsync(async () => await set.DisagreementAsync(replicas) is null, "every file agrees with the database", () => set.DisagreementAsync(replicas).ContinueWith(t => t.Result ?? ""));
        var database = await set.DatabaseCommandsAsync();
        var recorded = new HashSet<string>(StringComparer.Ordinal);
        await using (var command = set.DataSource.CreateCommand("""
            SELECT after->>'command' FROM task_audit WHERE after IS NOT NULL
            UNION SELECT yaml->>'command' FROM sync_conflicts UNION SELECT db->>'command' FROM sync_conflicts
            """))
        await using (var reader = await command.ExecuteReaderAsync())
            while (await reader.ReadAsync()) if (!reader.IsDBNull(0)) recorded.Add(reader.GetString(0));
        var frozen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var replica in replicas) frozen.UnionWith(await replica.OpenConflictTasksAsync());

        var lost = new List<string>();
        foreach (var ack in acks)
        {
            if (ack.Id == "shared")
            {
                // Later writes replace earlier ones; each must still be on record (audit or conflict).
                if (!recorded.Contains(ack.Command)) lost.Add($"{ack.Id}={ack.Command} ({ack.Via})");
                continue;
            }
            if (frozen.Contains(ack.Id)) continue;
            if (database.GetValueOrDefault(ack.Id) != ack.Command) lost.Add($"{ack.Id}={ack.Command} ({ack.Via}) not in the database");
            foreach (var replica in replicas)
                if (replica.FileCommands().GetValueOrDefault(ack.Id) != ack.Command) lost.Add($"{ack.Id}={ack.Command} ({ack.Via}) not in {replica.Name}'s file");
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{acks.Count} acknowledged writes ({string.Join(", ", acks.GroupBy(a => a.Via.Split(' ')[0]).Select(g => $"{g.Count()} {g.Key}"))}), {database.Count} tasks, open conflicts on {frozen.Count} task(s)"));
        Assert.True(lost.Count == 0, $"{lost.Count} acknowledged write(s) lost: {string.Join("; ", lost.Take(10))}");
    }

    [Fact]
    public async Task Concurrent_bursts_through_every_replica_api_file_and_sql_lose_no_acknowledged_write()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_burst");
        var withShared = Replica.AppendTask(ThreeTasks, "shared", "/bin/shared");
        var replicas = new[] { set.Add("a", withShared), set.Add("b", withShared), set.Add("c", withShared) };
        await replicas[0].StartAsync();
        await ReplicaSet.StartAllAsync(replicas[1], replicas[2]);

        var acks = await BurstAsync(set, replicas, TimeSpan.FromSeconds(20));
        Assert.True(acks.Count(a => a.Via.StartsWith("api", StringComparison.Ordinal)) > 0 && acks.Count(a => a.Via.StartsWith("file", StringComparison.Ordinal)) > 0,
            "the burst did not write through both the API and the files");
        await AssertNothingLostAsync(set, replicas, acks);
    }

    [Fact]
    public async Task Kill_9_of_B_during_a_burst_loses_no_acknowledged_write_A_and_C_keep_serving_and_B_restarted_catches_up()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_kill");
        var withShared = Replica.AppendTask(ThreeTasks, "shared", "/bin/shared");
        var (a, b, c) = (set.Add("a", withShared), set.Add("b", withShared), set.Add("c", withShared));
        await a.StartAsync();
        await ReplicaSet.StartAllAsync(b, c);
        var replicas = new[] { a, b, c };

        var killedAt = DateTime.MaxValue;
        var acks = await BurstAsync(set, replicas, TimeSpan.FromSeconds(8), async () =>
        {
            await b.KillAsync();
            killedAt = DateTime.UtcNow;
        });
        // A and C answered writes after B died (the burst keeps writing through them).
        var afterKill = await set.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE source = 'api' AND at > $1", killedAt);
        Assert.True(afterKill > 0, "no API write was acknowledged by A or C after B was killed");

        await b.StartAsync(); // same name, same file: catches up with what happened while it was gone
        await AssertNothingLostAsync(set, replicas, acks);
    }

    [Fact]
    public async Task WebSocket_client_on_C_gets_a_change_made_through_A_reconnecting_to_B_with_since_replays_what_it_missed_and_lost_connections_catch_up()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_ws");
        var (a, b, c) = (set.Add("a", ThreeTasks), set.Add("b", ThreeTasks), set.Add("c", ThreeTasks));
        await a.StartAsync();
        await ReplicaSet.StartAllAsync(b, c);

        long seen;
        using (var onC = new ClientWebSocket())
        {
            await onC.ConnectAsync(c.WebSocket(), CancellationToken.None);
            using (var created = await a.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "first", schedule = "@daily", command = "/bin/first" })))
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var changed = await ReceiveUntilAsync(onC, e => Is(e, "task_changed", "first"));
            Assert.Equal("created", changed.GetProperty("action").GetString());
            seen = changed.GetProperty("seq").GetInt64();
        }

        // Missed while disconnected: a change through A and one with plain SQL.
        using (var created = await a.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "second", schedule = "@daily", command = "/bin/second" })))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await set.ExecuteAsync("UPDATE scheduled_tasks SET command = '/bin/alpha --sql' WHERE id = 'alpha'");

        using var onB = new ClientWebSocket();
        await onB.ConnectAsync(b.WebSocket(seen), CancellationToken.None);
        var replayed = new List<JsonElement>();
        await ReceiveUntilAsync(onB, e =>
        {
            replayed.Add(e);
            return Is(e, "task_changed", "alpha");
        });
        Assert.Contains(replayed, e => Is(e, "task_changed", "second"));
        var seqs = replayed.Select(e => e.GetProperty("seq").GetInt64()).ToList();
        Assert.Equal(seen + 1, seqs[0]);
        Assert.Equal(Enumerable.Range(0, seqs.Count).Select(i => seen + 1 + i), seqs);

        // Every instance loses its database connections: each reconnects, its clients get what happened meanwhile,
        // its file catches up.
        Assert.True(await set.ScalarAsync<long>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()") >= 3);
        await set.ExecuteAsync("UPDATE scheduled_tasks SET command = '/bin/beta --after-outage' WHERE id = 'beta'");
        Assert.Equal("updated", (await ReceiveUntilAsync(onB, e => Is(e, "task_changed", "beta"))).GetProperty("action").GetString());
        await ReplicaSet.EventuallyAsync(() => Task.FromResult(new[] { a, b, c }.All(r => r.FileCommands().GetValueOrDefault("beta") == "/bin/beta --after-outage")),
            "every file has the change made while the connections were lost", () => set.DisagreementAsync([a, b, c]).ContinueWith(t => t.Result ?? ""));
    }

    [Fact]
    public async Task Joining_replicas_one_without_a_file_gets_it_and_one_with_a_stale_copy_gets_conflicts_of_its_own_and_can_be_forgotten()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_join");
        var a = set.Add("a", ThreeTasks);
        await a.StartAsync();
        using (var put = await a.Http.PutAsync("/api/tasks/beta", ServerFixture.Json(new { id = "beta", schedule = "0 2 * * *", command = "/bin/beta --new" })))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        var fresh = set.Add("fresh", null);
        var stale = set.Add("stale", ThreeTasks); // the copy from before the API write
        await ReplicaSet.StartAllAsync(fresh, stale);

        Assert.Equal(["alpha", "beta", "gamma"], fresh.FileTasks().Keys.Order(StringComparer.Ordinal));
        Assert.Equal("/bin/beta --new", fresh.FileTasks()["beta"].Command);
        // The stale copy is not pushed into the hub, and the hub is not written over the copy: a conflict, its own.
        Assert.Equal("/bin/beta --new", await set.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'beta'"));
        Assert.Equal("/bin/beta", stale.FileTasks()["beta"].Command);
        Assert.Equal(["beta"], await stale.OpenConflictTasksAsync());
        Assert.Empty(await a.OpenConflictTasksAsync());
        Assert.Empty(await fresh.OpenConflictTasksAsync());
        using (var conflicts = await stale.Http.GetAsync("/api/sync/conflicts"))
            Assert.Equal(["beta"], (await conflicts.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray().Select(e => e.GetProperty("task_id").GetString()));
        using (var conflicts = await a.Http.GetAsync("/api/sync/conflicts"))
            Assert.Empty((await conflicts.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray());

        // The CLI lists them too, and forgets one: its state goes, the others stay.
        var listed = await SchedSyncProcess.RunAsync(["replicas", "--json", "--database", set.Database, "--replica", "a"], a.Folder);
        Assert.True(listed.ExitCode == 0, listed.ToString());
        var rows = JsonDocument.Parse(listed.Stdout).RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal(["a", "fresh", "stale"], rows.Keys.Order(StringComparer.Ordinal));
        Assert.Equal((true, 0), (rows["a"].GetProperty("current").GetBoolean(), rows["a"].GetProperty("open_conflicts").GetInt32()));
        Assert.Equal(1, rows["stale"].GetProperty("open_conflicts").GetInt32());
        var forgot = await SchedSyncProcess.RunAsync(["replicas", "forget", "fresh", "--database", set.Database], a.Folder);
        Assert.True(forgot.ExitCode == 0, forgot.ToString());
        var unknown = await SchedSyncProcess.RunAsync(["replicas", "forget", "nobody", "--database", set.Database], a.Folder);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no replica named 'nobody'", unknown.Stderr, StringComparison.Ordinal);
        using (var forget = await a.Http.DeleteAsync("/api/replicas/stale"))
            Assert.Equal(HttpStatusCode.NoContent, forget.StatusCode);
        Assert.Equal(["a"], (await ReplicasAsync(a)).Select(r => r.GetProperty("name").GetString()));
        Assert.Equal(0L, await set.ScalarAsync<long>("SELECT count(*) FROM sync_base WHERE replica <> 'a'"));
        Assert.Equal(0L, await set.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts"));
    }

    [Fact]
    public async Task Two_replicas_on_one_shared_file_agree_without_churn_and_a_second_serve_of_one_replica_is_refused()
    {
        await using var set = await ReplicaSet.CreateAsync("replicas_shared");
        var one = set.Add("one", ThreeTasks);
        var two = set.AddOnSameFile("two", one);
        await one.StartAsync();
        await two.StartAsync();

        one.EditLikeAnEditor(text => text.Replace("/bin/alpha", "/bin/alpha --edited", StringComparison.Ordinal));
        using (var created = await two.Http.PostAsync("/api/tasks", ServerFixture.Json(new { id = "delta", schedule = "@daily", command = "/bin/delta" })))
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await set.ExecuteAsync("UPDATE scheduled_tasks SET command = '/bin/gamma --sql' WHERE id = 'gamma'");

        await ReplicaSet.EventuallyAsync(async () =>
            one.FileCommands() is var file && file.GetValueOrDefault("alpha") == "/bin/alpha --edited" && file.GetValueOrDefault("delta") == "/bin/delta"
            && file.GetValueOrDefault("gamma") == "/bin/gamma --sql"
            && await set.ScalarAsync<string>("SELECT command FROM scheduled_tasks WHERE id = 'alpha'") == "/bin/alpha --edited",
            "the shared file and the database hold the three changes", () => set.DisagreementAsync([one, two]).ContinueWith(t => t.Result ?? ""));
        // Both replicas settle: nothing behind, nothing pending (after that, nothing moves).
        await ReplicaSet.EventuallyAsync(async () => (await ReplicasAsync(one)).All(r => r.GetProperty("changes_behind").GetInt32() == 0 && r.GetProperty("pending_exports").GetInt32() == 0),
            "both replicas have synced everything", async () => string.Join("; ", (await ReplicasAsync(one)).Select(r => r.ToString())));
        Assert.Equal(0L, await set.ScalarAsync<long>("SELECT count(*) FROM sync_conflicts"));
        Assert.Equal(1L, await set.ScalarAsync<long>("SELECT count(*) FROM task_audit WHERE task_id = 'alpha' AND action = 'update'"));

        // A second serve of replica "one" (same file, same name) is refused, naming the first.
        var refused = await SchedSyncProcess.RunAsync([.. one.Arguments.Take(one.Arguments.Count - 4), "--urls", $"http://127.0.0.1:{ReplicaSet.FreePort()}", "--replica", "one"],
            one.Folder, one.Environment);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("replica 'one'", refused.Stderr, StringComparison.Ordinal);
        await set.AssertQuietAsync(TimeSpan.FromSeconds(3));
    }

    private static async Task<List<JsonElement>> ReplicasAsync(Replica replica)
    {
        using var response = await replica.Http.GetAsync("/api/replicas");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return [.. (await response.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray()];
    }

    private static bool Is(JsonElement e, string type, string id) =>
        e.GetProperty("type").GetString() == type && e.TryGetProperty("id", out var value) && value.GetString() == id;

    private static async Task<JsonElement> ReceiveUntilAsync(ClientWebSocket socket, Func<JsonElement, bool> done)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var buffer = new byte[64 * 1024];
        while (true)
        {
            using var message = new MemoryStream();
            WebSocketReceiveResult received;
            do
            {
                received = await socket.ReceiveAsync(buffer, timeout.Token);
                message.Write(buffer, 0, received.Count);
            } while (!received.EndOfMessage);
            var e = JsonDocument.Parse(Encoding.UTF8.GetString(message.ToArray())).RootElement.Clone();
            if (done(e)) return e;
        }
    }
}
