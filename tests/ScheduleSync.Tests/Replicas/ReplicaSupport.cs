using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using ScheduleSync.Files;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Replicas;

/// <summary>
/// Several real <c>schedsync serve</c> processes on one real database (SPEC §8), each a replica with its own folder,
/// file, state folder (XDG_STATE_HOME) and port — or, for the shared-file case, one folder for two of them.
/// </summary>
internal sealed class ReplicaSet : IAsyncDisposable
{
    private readonly List<Replica> _replicas = [];
    private readonly List<TempDirectory> _folders = [];

    private ReplicaSet(string database, NpgsqlDataSource dataSource)
    {
        Database = database;
        DataSource = dataSource;
    }

    public string Database { get; }

    /// <summary>Plain SQL on the shared database, as psql or another service would write it.</summary>
    public NpgsqlDataSource DataSource { get; }

    public static async Task<ReplicaSet> CreateAsync(string prefix)
    {
        var database = await TestPostgres.CreateDatabaseAsync(prefix);
        return new ReplicaSet(database, NpgsqlDataSource.Create(database));
    }

    /// <summary>A replica in a new folder; <paramref name="yaml"/> null leaves its file missing.</summary>
    public Replica Add(string name, string? yaml)
    {
        var folder = new TempDirectory();
        _folders.Add(folder);
        var replica = new Replica(this, name, folder.Path, folder.File("schedule_config.yml"), folder.File("state"));
        if (yaml is not null) File.WriteAllText(replica.ConfigPath, yaml);
        _replicas.Add(replica);
        return replica;
    }

    /// <summary>A second replica on the file of <paramref name="other"/> (shared storage), with a state folder of its own.</summary>
    public Replica AddOnSameFile(string name, Replica other)
    {
        var state = new TempDirectory();
        _folders.Add(state);
        var replica = new Replica(this, name, other.Folder, other.ConfigPath, state.Path);
        _replicas.Add(replica);
        return replica;
    }

    public static Task StartAllAsync(params Replica[] replicas) => Task.WhenAll(replicas.Select(r => r.StartAsync()));

    public async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters) command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters) command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Every task's command in the database.</summary>
    public async Task<Dictionary<string, string>> DatabaseCommandsAsync()
    {
        await using var command = DataSource.CreateCommand("SELECT id, command FROM scheduled_tasks");
        await using var reader = await command.ExecuteReaderAsync();
        var tasks = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync()) tasks[reader.GetString(0)] = reader.GetString(1);
        return tasks;
    }

    /// <summary>What must not move while nothing happens: audit rows, runs, events, and every file's bytes.</summary>
    public async Task<string> ActivityAsync() =>
        string.Join(" | ",
            await ScalarAsync<long>("SELECT coalesce(max(id), 0) FROM task_audit"),
            await ScalarAsync<long>("SELECT count(*) FROM sync_runs"), // not max(id): a run may commit after one with a higher id
            await ScalarAsync<long>("SELECT event_seq FROM sync_state"),
            string.Join(",", _replicas.Select(r => r.ConfigPath).Distinct().Select(p => File.Exists(p) ? ConfigFileStore.Checksum(File.ReadAllBytes(p))[..12] : "-")));

    /// <summary>
    /// Nothing moves for <paramref name="window"/>: no audit row, run, event or file byte (the window is the point: an
    /// endless re-import shows within milliseconds). On failure, says what moved.
    /// </summary>
    public async Task AssertQuietAsync(TimeSpan window)
    {
        // First every replica has committed what it did: each has seen the database's last change (a run still
        // committing has not recorded that yet). Then nothing may move.
        await EventuallyAsync(async () => await ScalarAsync<long>(
                "SELECT count(*) FROM sync_replicas r, sync_state s WHERE r.synced_change_counter IS DISTINCT FROM s.change_counter") == 0,
            "every replica has synced the last change", () => ScalarAsync<string>("SELECT string_agg(name || ' ' || coalesce(synced_change_counter::text, '-'), ', ') FROM sync_replicas"));
        var before = await ActivityAsync();
        var seq = await ScalarAsync<long>("SELECT event_seq FROM sync_state");
        var runs0 = await ScalarAsync<string>("SELECT coalesce(string_agg(id::text, ','), '') FROM sync_runs");
        await Task.Delay(window);
        var after = await ActivityAsync();
        if (after == before) return;
        var events = await ScalarAsync<string>("SELECT coalesce(string_agg(type || ' ' || payload::text, E'\n' ORDER BY seq), '') FROM sync_events WHERE seq > $1", seq);
        var runs = await ScalarAsync<string>("SELECT coalesce(string_agg(concat_ws(' ', id, replica, trigger, status, inserts, updates, exports, error), E'\n' ORDER BY id), '') FROM sync_runs WHERE NOT (id::text = ANY(string_to_array($1, ',')))", runs0);
        Assert.Fail($"activity while quiet: {before} -> {after}\nevents:\n{events}\nruns:\n{runs}");
    }

    /// <summary>Waits for a positive signal (polling), failing with <paramref name="what"/> and the last state after the timeout.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, Func<Task<string>>? describe = null, int seconds = 90)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"{what}: not reached within {seconds} s{(describe is null ? "" : "; " + await describe())}");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Every replica's file holds what the database holds (command by task id), except tasks frozen by an open conflict
    /// of that replica. Returns null when they agree, else what differs.
    /// </summary>
    public async Task<string?> DisagreementAsync(IEnumerable<Replica> replicas)
    {
        var database = await DatabaseCommandsAsync();
        foreach (var replica in replicas)
        {
            var frozen = await replica.OpenConflictTasksAsync();
            var file = replica.FileCommands();
            var differ = database.Keys.Union(file.Keys).Where(id => !frozen.Contains(id) && database.GetValueOrDefault(id) != file.GetValueOrDefault(id)).ToList();
            if (differ.Count > 0)
                return $"{replica.Name}: {differ.Count} task(s) differ from the database, e.g. " + string.Join(", ", differ.Take(5).Select(id => $"{id} file={file.GetValueOrDefault(id) ?? "-"} db={database.GetValueOrDefault(id) ?? "-"}"));
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas) await replica.DisposeAsync();
        await DataSource.DisposeAsync();
        foreach (var folder in _folders) folder.Dispose();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One replica: a serve process on its own port, with its name, file and state folder.</summary>
internal sealed class Replica(ReplicaSet set, string name, string folder, string configPath, string stateFolder) : IAsyncDisposable
{
    private ServeProcess? _process;

    public string Name => name;
    public string Folder => folder;
    public string ConfigPath => configPath;
    public int Port { get; } = ReplicaSet.FreePort();
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };
    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    public IReadOnlyList<string> Arguments =>
        ["serve", "--config", configPath, "--database", set.Database, "--urls", $"http://127.0.0.1:{Port}", "--replica", name];

    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?> { ["XDG_STATE_HOME"] = stateFolder };

    public async Task StartAsync()
    {
        Directory.CreateDirectory(stateFolder);
        _process = await ServeProcess.StartAsync(Arguments, folder, Port, Environment);
        Http.BaseAddress ??= BaseAddress;
    }

    /// <summary>kill -9: no shutdown, no flush.</summary>
    public async Task KillAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        _process = null;
    }

    public Uri WebSocket(long? since = null) =>
        new($"ws://127.0.0.1:{Port}/ws" + (since is { } n ? string.Create(CultureInfo.InvariantCulture, $"?since={n}") : ""));

    /// <summary>Every valid task's command in the file (empty when the file is missing or cannot be parsed right now).</summary>
    public Dictionary<string, string> FileCommands()
    {
        try
        {
            if (!File.Exists(configPath)) return [];
            return ScheduleLoader.LoadFile(configPath).ValidTasks.ToDictionary(t => t.Id, t => t.Command, StringComparer.Ordinal);
        }
        catch (IOException)
        {
            return [];
        }
    }

    public Dictionary<string, TaskDefinition> FileTasks() =>
        File.Exists(configPath) ? ScheduleLoader.LoadFile(configPath).ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal) : [];

    /// <summary>A person's editor: the whole file written to a temporary file and renamed over it (no lock).</summary>
    public void EditLikeAnEditor(Func<string, string> change)
    {
        var text = change(File.ReadAllText(configPath));
        var temp = configPath + ".swp";
        File.WriteAllText(temp, text);
        File.Move(temp, configPath, overwrite: true);
    }

    /// <summary>A cooperating script: under the sidecar lock (SPEC §2), read, change, write. False when the file was not writable as read.</summary>
    public bool EditLocked(Func<string, string> change)
    {
        var store = ConfigFileStore.Open(configPath);
        using var held = store.Lock(TimeSpan.FromSeconds(30));
        var snapshot = store.Read();
        return store.WriteLocked(snapshot.Checksum, change(snapshot.Text)) is WriteResult.Written;
    }

    public async Task<HashSet<string>> OpenConflictTasksAsync()
    {
        await using var command = set.DataSource.CreateCommand("SELECT task_id FROM sync_conflicts WHERE status = 'open' AND replica = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = name });
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        return ids;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        Http.Dispose();
    }

    /// <summary>A task block appended at the end of the file's <c>tasks:</c> mapping (the last key of the files these tests write).</summary>
    public static string AppendTask(string text, string id, string command) =>
        text.TrimEnd('\n') + $"\n  {id}:\n    schedule: \"@daily\"\n    command: {command}\n";
}
