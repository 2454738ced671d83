using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using ScheduleSync.Events;
using ScheduleSync.Hosting;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// The server tests run one after another: each starts real Kestrel, and the latencies they print mean something only
/// when the burst test is not running next to them.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ServerCollection
{
    public const string Name = "Server";
}

/// <summary>
/// One real server for one test: its own database, its own folder with <c>schedule_config.yml</c>, Kestrel on a free
/// loopback port, an <see cref="HttpClient"/> pointed at it, and a data source for checking the database with plain SQL.
/// </summary>
internal sealed class ServerFixture : IAsyncDisposable
{
    /// <summary>
    /// The file most tests start from: comments in several places, so write-back can be checked byte for byte. (No task
    /// ends in a flow list here: that case has its own test, see ServerTriggerTests.)
    /// </summary>
    public const string DefaultYaml = """
        # schedule_config.yml — server test fixture
        version: 1
        defaults:
          timezone: UTC   # the zone for tasks that name none

        tasks:
          # Runs every night; owned by ops.
          nightly-backup:
            name: Nightly backup
            tags: [ops, backup]   # keep these
            schedule: "0 3 * * *"
            command: /usr/local/bin/backup.sh
          cache-warmup:           # warms the cache
            schedule: "*/5 * * * *"
            command: warm-cache
            enabled: false

        """;

    private readonly TempDirectory _folder;
    private readonly Action<ServerOptions>? _options;
    private readonly Action<WebApplicationBuilder>? _configure;

    private ServerFixture(TempDirectory folder, string connectionString, Action<ServerOptions>? options, Action<WebApplicationBuilder>? configure)
    {
        _folder = folder;
        _options = options;
        _configure = configure;
        ConnectionString = connectionString;
        Db = NpgsqlDataSource.Create(connectionString);
    }

    public string ConnectionString { get; }
    public NpgsqlDataSource Db { get; }
    public string Folder => _folder.Path;
    public string ConfigPath => _folder.File("schedule_config.yml");
    public string LockPath => ConfigPath + ".lock";
    public WebApplication App { get; private set; } = null!;
    public ServerOptions Options { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public EventHub Hub => App.Services.GetRequiredService<EventHub>();

    /// <summary>Writes <paramref name="yaml"/> (unless null: no file) and starts a server on it.</summary>
    public static async Task<ServerFixture> StartAsync(
        string prefix, string? yaml = DefaultYaml, Action<ServerOptions>? options = null, Action<WebApplicationBuilder>? configure = null)
    {
        var connectionString = await TestPostgres.CreateDatabaseAsync(prefix);
        var folder = new TempDirectory();
        if (yaml is not null) await File.WriteAllTextAsync(folder.File("schedule_config.yml"), yaml);
        var fixture = new ServerFixture(folder, connectionString, options, configure);
        await fixture.StartServerAsync();
        return fixture;
    }

    private async Task StartServerAsync()
    {
        Options = new ServerOptions { Urls = "http://127.0.0.1:0" };
        _options?.Invoke(Options);
        var configuration = TestConfiguration.For(ConfigPath, ConnectionString, Path.Combine(Folder, ".schedsync", "pgdata"), Options);
        App = await ServerHost.BuildServerAsync(configuration, builder =>
        {
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            _configure?.Invoke(builder);
        });
        await App.StartAsync();
        // Listening on every address (with a token): talk to it over loopback.
        BaseAddress = new Uri(App.Urls.Single().Replace("://0.0.0.0:", "://127.0.0.1:", StringComparison.Ordinal).Replace("://[::]:", "://127.0.0.1:", StringComparison.Ordinal));
        Http = NewClient(Options.Token);
    }

    /// <summary>Stops the server and starts a new one on the same database and file (a restart).</summary>
    public async Task RestartAsync()
    {
        await StopServerAsync();
        await StartServerAsync();
    }

    public HttpClient NewClient(string? token = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public Uri WebSocketUri(long? since = null) =>
        new($"ws://{BaseAddress.Authority}/ws{(since is { } s ? "?since=" + s.ToString(CultureInfo.InvariantCulture) : "")}");

    public Task<EventClient> ConnectEventsAsync(long? since = null, string? token = null, int? receiveBufferBytes = null) =>
        EventClient.ConnectAsync(WebSocketUri(since), token ?? Options.Token, receiveBufferBytes);

    public byte[] FileBytes() => File.ReadAllBytes(ConfigPath);

    public ScheduleDocument ParseFile() => ScheduleLoader.Parse(File.ReadAllText(ConfigPath), ConfigPath);

    public async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var command = Db.CreateCommand(sql);
        foreach (var parameter in parameters) command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        var value = await command.ExecuteScalarAsync();
        return (T)Convert.ChangeType(value!, typeof(T), CultureInfo.InvariantCulture);
    }

    public async Task<int> ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = Db.CreateCommand(sql);
        foreach (var parameter in parameters) command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        return await command.ExecuteNonQueryAsync();
    }

    /// <summary>Every task in the database by id, with its content hash (the normal form both sides are compared by).</summary>
    public async Task<Dictionary<string, string>> DatabaseHashesAsync()
    {
        var tasks = await new ScheduleSync.Database.TaskStore(Db).ListAsync();
        Assert.All(tasks, t => Assert.True(t.Task is not null, $"task '{t.Id}' is invalid in the database: {string.Join("; ", t.Problems)}"));
        return tasks.ToDictionary(t => t.Id, t => t.Task!.ContentHash, StringComparer.Ordinal);
    }

    /// <summary>Every task in the file by id, with its content hash; the file must be valid.</summary>
    public Dictionary<string, string> FileHashes()
    {
        var document = ParseFile();
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()));
        return document.ValidTasks.ToDictionary(t => t.Id, t => t.ContentHash, StringComparer.Ordinal);
    }

    /// <summary>Polls <paramref name="condition"/> every few milliseconds; returns how long it took, fails after <paramref name="timeout"/>.</summary>
    public static async Task<TimeSpan> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, long? startTimestamp = null)
    {
        var start = startTimestamp ?? Stopwatch.GetTimestamp();
        while (true)
        {
            if (await condition()) return Stopwatch.GetElapsedTime(start);
            if (Stopwatch.GetElapsedTime(start) > timeout) Assert.Fail($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            await Task.Delay(5);
        }
    }

    public static Task<TimeSpan> WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what, long? startTimestamp = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, what, startTimestamp);

    /// <summary>Runs a program to completion (e.g. <c>/usr/bin/sed -i</c>); fails the test on a non-zero exit.</summary>
    public static async Task RunAsync(string fileName, params string[] arguments)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{fileName} exited with {process.ExitCode}: {await stderr}");
    }

    /// <summary>JSON body for POST/PUT.</summary>
    public static StringContent Json(object body) =>
        new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    public static StringContent RawJson(string text) => new(text, Encoding.UTF8, "application/json");

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    public static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(", ", values) : "";

    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> samples, double p)
    {
        var sorted = samples.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    public static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms";

    private async Task StopServerAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopServerAsync();
        await Db.DisposeAsync();
        _folder.Dispose();
    }
}

/// <summary>One event as received, with the moment it arrived (a <see cref="Stopwatch"/> timestamp).</summary>
internal sealed record ReceivedEvent(long Seq, string Type, JsonElement Json, string Text, long ArrivedAt)
{
    public string? String(string name) => Json.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public long? Long(string name) => Json.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    public IReadOnlyList<string> TaskIds => Json.TryGetProperty("task_ids", out var ids) ? [.. ids.EnumerateArray().Select(i => i.GetString()!)] : [];

    public override string ToString() => Text;
}

/// <summary>
/// A real <see cref="ClientWebSocket"/> on <c>/ws</c> that records every message in the background; tests wait for
/// the event they expect. With <c>receiveBufferBytes</c> its socket gets a small kernel receive buffer and it does not
/// read until <see cref="StartReading"/>: a client that stopped reading, whose backlog quickly reaches the server.
/// </summary>
internal sealed class EventClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly HttpMessageInvoker? _invoker;
    private readonly Lock _gate = new();
    private readonly List<ReceivedEvent> _events = [];
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;

    private EventClient(ClientWebSocket socket, HttpMessageInvoker? invoker)
    {
        _socket = socket;
        _invoker = invoker;
    }

    /// <summary>How the feed ended: a close frame's status, or the exception that ended reading; null while open.</summary>
    public WebSocketCloseStatus? CloseStatus { get; private set; }
    public Exception? Failure { get; private set; }
    public Task Completion => _loop ?? Task.CompletedTask;
    public WebSocketState State => _socket.State;

    public static async Task<EventClient> ConnectAsync(Uri uri, string? token, int? receiveBufferBytes = null)
    {
        var socket = new ClientWebSocket();
        if (token is not null) socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        socket.Options.CollectHttpResponseDetails = true;
        HttpMessageInvoker? invoker = null;
        if (receiveBufferBytes is { } size)
        {
            invoker = new HttpMessageInvoker(new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = size };
                    try
                    {
                        await s.ConnectAsync(context.DnsEndPoint, ct);
                        return new NetworkStream(s, ownsSocket: true);
                    }
                    catch
                    {
                        s.Dispose();
                        throw;
                    }
                },
            });
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            if (invoker is null) await socket.ConnectAsync(uri, timeout.Token);
            else await socket.ConnectAsync(uri, invoker, timeout.Token);
        }
        catch
        {
            socket.Dispose();
            invoker?.Dispose();
            throw;
        }
        var client = new EventClient(socket, invoker);
        if (receiveBufferBytes is null) client.StartReading();
        return client;
    }

    /// <summary>Connects and returns the HTTP status of the refused handshake (for the auth tests).</summary>
    public static async Task<HttpStatusCode> RefusedStatusAsync(Uri uri, string? token)
    {
        using var socket = new ClientWebSocket();
        if (token is not null) socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, CancellationToken.None));
        return socket.HttpStatusCode;
    }

    public void StartReading() => _loop ??= Task.Run(ReceiveLoopAsync);

    public IReadOnlyList<ReceivedEvent> Events
    {
        get { lock (_gate) return [.. _events]; }
    }

    public IReadOnlyList<ReceivedEvent> OfType(string type) => [.. Events.Where(e => e.Type == type)];

    /// <summary>Waits for the first event (already received or still to come) that matches.</summary>
    public async Task<ReceivedEvent> WaitForAsync(Func<ReceivedEvent, bool> match, string what, TimeSpan? timeout = null)
    {
        var started = Stopwatch.GetTimestamp();
        var limit = timeout ?? TimeSpan.FromSeconds(5);
        while (true)
        {
            Task arrived;
            lock (_gate)
            {
                if (_events.FirstOrDefault(match) is { } found) return found;
                arrived = _arrived.Task;
            }
            var left = limit - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero || Completion.IsCompleted && !arrived.IsCompleted)
            {
                if (Completion.IsCompleted)
                {
                    lock (_gate)
                        if (_events.FirstOrDefault(match) is { } late) return late;
                }
                Assert.Fail($"no event {what} within {limit.TotalSeconds:0.#} s; received:\n{string.Join("\n", Events.TakeLast(30))}\nfeed end: {CloseStatus?.ToString() ?? Failure?.Message ?? "open"}");
            }
            await Task.WhenAny(arrived, Task.Delay(left));
        }
    }

    public Task<ReceivedEvent> WaitForAsync(string type, Func<ReceivedEvent, bool>? match = null, TimeSpan? timeout = null) =>
        WaitForAsync(e => e.Type == type && (match is null || match(e)), type, timeout);

    /// <summary>Waits until the feed has ended (close frame or error).</summary>
    public async Task<bool> WaitClosedAsync(TimeSpan timeout)
    {
        var done = await Task.WhenAny(Completion, Task.Delay(timeout));
        return done == Completion && Completion.IsCompleted;
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = await _socket.ReceiveAsync(buffer, _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    CloseStatus = result.CloseStatus;
                    return;
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                var arrivedAt = Stopwatch.GetTimestamp();
                var text = Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length);
                message.SetLength(0);
                using var document = JsonDocument.Parse(text);
                var root = document.RootElement.Clone();
                var received = new ReceivedEvent(root.GetProperty("seq").GetInt64(), root.GetProperty("type").GetString()!, root, text, arrivedAt);
                TaskCompletionSource signal;
                lock (_gate)
                {
                    _events.Add(received);
                    signal = _arrived;
                    _arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                signal.TrySetResult();
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            Failure = e;
        }
        finally
        {
            TaskCompletionSource signal;
            lock (_gate) signal = _arrived;
            signal.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }
        }
        _socket.Abort();
        _socket.Dispose();
        _invoker?.Dispose();
        _stop.Dispose();
    }
}

internal static class ServerFixtureAssert
{
    /// <summary>
    /// Asserts that <paramref name="after"/> is <paramref name="before"/> with one run of bytes inserted somewhere
    /// (every original byte kept, in order) and returns the inserted text.
    /// </summary>
    public static string OnlyInserted(byte[] before, byte[] after)
    {
        var prefix = 0;
        while (prefix < before.Length && prefix < after.Length && before[prefix] == after[prefix]) prefix++;
        var suffix = 0;
        while (suffix < before.Length - prefix && suffix < after.Length - prefix && before[^(suffix + 1)] == after[^(suffix + 1)]) suffix++;
        Assert.True(prefix + suffix == before.Length,
            $"the file lost or changed bytes: {before.Length - prefix - suffix} of the original {before.Length} bytes differ (first at {prefix})\n--- before\n{Encoding.UTF8.GetString(before)}\n--- after\n{Encoding.UTF8.GetString(after)}");
        return Encoding.UTF8.GetString(after, prefix, after.Length - prefix - suffix);
    }
}
