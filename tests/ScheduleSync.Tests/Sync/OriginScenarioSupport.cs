using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>How a child process of an origin scenario ended.</summary>
internal sealed record OriginProcessResult(string What, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"{What}: exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";

    /// <summary>The JSON a <c>--json</c> command printed.</summary>
    public JsonElement Json()
    {
        using var document = JsonDocument.Parse(Stdout);
        return document.RootElement.Clone();
    }
}

/// <summary>A real OS process (schedsync, psql, python3) whose output is read from the start, so it never blocks on a full pipe.</summary>
internal sealed class OriginChild : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stdout;
    private readonly Task<string> _stderr;

    private OriginChild(string what, Process process)
    {
        What = what;
        _process = process;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public string What { get; }

    public bool HasExited => _process.HasExited;

    public static OriginChild Start(string what, string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        // Only the arguments configure schedsync: a developer's SCHEDSYNC_* settings stay out of the test.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SCHEDSYNC_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        process.StandardInput.Close();
        return new OriginChild(what, process);
    }

    /// <summary>Waits for the exit; a process still running after <paramref name="timeout"/> is killed and fails the test.</summary>
    public async Task<OriginProcessResult> WaitAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            Assert.Fail($"{What} did not finish in time:\n{await _stdout}\n{await _stderr}");
        }
        return new OriginProcessResult(What, _process.ExitCode, await _stdout, await _stderr);
    }

    /// <summary>Disposes every child (killing those still running), e.g. in a finally after a failed assertion.</summary>
    public static void DisposeAll(IEnumerable<OriginChild> children)
    {
        foreach (var child in children)
            child.Dispose();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }
}

/// <summary>
/// One origin scenario's world: a fresh migrated database, a temp folder with <c>schedule_config.yml</c>, and ways to
/// start the real writers — <c>schedsync</c> itself, <c>psql</c>, and python3 scripts that follow the file protocol
/// of SPEC §2 — and to look at both sides.
/// </summary>
internal sealed class OriginBed : IAsyncDisposable
{
    private readonly TempDirectory _temp = new();

    private OriginBed(string connectionString)
    {
        ConnectionString = connectionString;
        DataSource = NpgsqlDataSource.Create(connectionString);
    }

    public string ConnectionString { get; }
    public NpgsqlDataSource DataSource { get; }
    public string Folder => _temp.Path;
    public string ConfigPath => _temp.File("schedule_config.yml");
    public ConfigFileStore Store => ConfigFileStore.Open(ConfigPath);

    public static async Task<OriginBed> CreateAsync(string prefix, string yaml)
    {
        var bed = new OriginBed(await TestPostgres.CreateDatabaseAsync(prefix));
        await Migrations.ApplyAsync(bed.DataSource);
        await File.WriteAllTextAsync(bed.ConfigPath, yaml);
        return bed;
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        _temp.Dispose();
    }

    /// <summary>
    /// A file with the given tasks, one block each (command in double quotes), with comments that every write must keep.
    /// A task id maps to its command; ids starting with "m" also get a description.
    /// </summary>
    public static string Yaml(IEnumerable<(string Id, string Command)> tasks)
    {
        var text = new StringBuilder("# origin scenario: comments and layout must survive every write\nversion: 1\ntasks:\n");
        foreach (var (id, command) in tasks)
        {
            text.Append(CultureInfo.InvariantCulture, $"  # {id}\n  {id}:\n    schedule: \"*/5 * * * *\"\n    command: \"{command}\"\n");
            if (id.StartsWith('m'))
                text.Append(CultureInfo.InvariantCulture, $"    description: \"{id} as first written\"\n");
        }
        return text.ToString();
    }

    // ---- processes ----

    private static string Dotnet
    {
        get
        {
            var current = Environment.ProcessPath;
            if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet") return current;
            return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        }
    }

    /// <summary><c>schedsync ARGS --config FILE --database CONN</c>, the built executable in its own process.</summary>
    public OriginChild StartSchedSync(params string[] args) =>
        OriginChild.Start("schedsync " + string.Join(' ', args), Dotnet,
            [Path.Combine(AppContext.BaseDirectory, "schedsync.dll"), .. args, "--config", ConfigPath, "--database", ConnectionString], Folder);

    public Task<OriginProcessResult> SchedSyncAsync(params string[] args) => StartSchedSync(args).WaitAsync();

    /// <summary><c>psql</c> running <paramref name="sql"/> as a script (each statement its own transaction), stopping at the first error.</summary>
    public OriginChild StartPsql(string name, string sql)
    {
        var script = _temp.File(name + ".sql");
        File.WriteAllText(script, sql);
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
        var environment = new Dictionary<string, string> { ["PGCONNECT_TIMEOUT"] = "10" };
        if (builder.Password is { Length: > 0 } password) environment["PGPASSWORD"] = password;
        return OriginChild.Start("psql " + name, "psql",
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", builder.Host!, "-p", builder.Port.ToString(CultureInfo.InvariantCulture),
                "-U", builder.Username!, "-d", builder.Database!, "-f", script], Folder, environment);
    }

    public OriginChild StartPython(string name, string script, params string[] args)
    {
        var path = _temp.File(name + ".py");
        if (!File.Exists(path)) File.WriteAllText(path, script);
        return OriginChild.Start("python3 " + name + " " + string.Join(' ', args), "python3", ["-u", path, .. args], Folder);
    }

    // ---- both sides ----

    public Dictionary<string, TaskDefinition> FileTasks()
    {
        var document = ScheduleLoader.LoadFile(ConfigPath);
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()));
        return document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
    }

    public async Task<Dictionary<string, TaskDefinition>> DatabaseTasksAsync()
    {
        var stored = await new TaskStore(DataSource).ListAsync();
        Assert.All(stored, s => Assert.True(s.Task is not null, $"row {s.Id} is invalid: {string.Join("; ", s.Problems)}"));
        return stored.ToDictionary(s => s.Id, s => s.Task!, StringComparer.Ordinal);
    }

    public async Task<Dictionary<string, string>> BaseHashesAsync()
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var command = DataSource.CreateCommand("SELECT task_id, content_hash FROM sync_base");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            hashes[reader.GetString(0)] = reader.GetString(1);
        return hashes;
    }

    /// <summary>Asserts that the file, the database and the base hold the same tasks with the same content.</summary>
    public async Task AssertAllEqualAsync()
    {
        var file = FileTasks();
        var database = await DatabaseTasksAsync();
        var bases = await BaseHashesAsync();
        Assert.Equal(file.Keys.Order(StringComparer.Ordinal), database.Keys.Order(StringComparer.Ordinal));
        foreach (var (id, task) in file)
        {
            Assert.True(task.ContentHash == database[id].ContentHash, $"{id}: file {TaskJson.ToCanonical(task)} but database {TaskJson.ToCanonical(database[id])}");
            Assert.True(bases.TryGetValue(id, out var hash) && hash == task.ContentHash, $"{id}: the base is not the agreed content");
        }
        Assert.Equal(file.Count, bases.Count);
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task<List<(string TaskId, string Status, string? Yaml, string? Db)>> ConflictRowsAsync()
    {
        var rows = new List<(string, string, string?, string?)>();
        await using var command = DataSource.CreateCommand("SELECT task_id, status, yaml::text, db::text FROM sync_conflicts ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add((reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
        return rows;
    }

    /// <summary>Everything the database holds about tasks, as one text: rows, base, conflicts, audit, runs.</summary>
    public async Task<string> DatabaseFingerprintAsync()
    {
        var text = new StringBuilder();
        foreach (var sql in (string[])[
            "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY id), '') FROM scheduled_tasks t",
            "SELECT coalesce(string_agg(b::text, E'\\n' ORDER BY task_id), '') FROM sync_base b",
            "SELECT coalesce(string_agg(c::text, E'\\n' ORDER BY id), '') FROM sync_conflicts c",
            "SELECT count(*)::text FROM task_audit",
            "SELECT change_counter::text FROM sync_state"])
        {
            text.Append(await ScalarAsync<string>(sql)).Append('\n');
        }
        return text.ToString();
    }

    public SyncRunner Runner() => new(DataSource, Store, new SyncOptions());
}

/// <summary>The python3 scripts the scenarios run: cooperating writers and an unlocked reader.</summary>
internal static class OriginScripts
{
    /// <summary>
    /// <c>file_writer.py FILE ROUNDS PAUSE PREFIX FIELD TASK…</c>: ROUNDS times, for each TASK, one locked
    /// read-modify-write that sets FIELD of the task to "PREFIX TASK ROUND", following SPEC §2: flock on FILE.lock,
    /// re-read, temp file in the same directory, fsync, rename, fsync of the directory; then PAUSE seconds without the
    /// lock. Before each edit it checks that the task still holds its own previous value: another writer that
    /// overwrote it would have lost the update (exit 3).
    /// </summary>
    public const string FileWriter = """
        import fcntl, os, re, sys, time

        path, rounds, pause, prefix, field, tasks = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
        directory, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)

        def write_atomic(text):
            temp = os.path.join(directory, '.%s.tmp-%s' % (name, os.urandom(8).hex()))
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                data = text.encode('utf-8')
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, path)
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

        lock = os.open(path + '.lock', os.O_RDONLY | os.O_CREAT, 0o640)
        last = {}
        for round in range(1, rounds + 1):
            for task in tasks:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    with open(path, encoding='utf-8') as f:
                        text = f.read()
                    m = re.search(r'^(  %s:\n(?:    .*\n)*?    %s: )(.*)$' % (re.escape(task), field), text, re.M)
                    if m is None:
                        sys.exit('task %s has no %s line in:\n%s' % (task, field, text))
                    if task in last and m.group(2) != last[task]:
                        print('LOST UPDATE of %s: expected %s, found %s' % (task, last[task], m.group(2)), file=sys.stderr)
                        sys.exit(3)
                    value = '"%s %s %d"' % (prefix, task, round)
                    write_atomic(text[:m.start(2)] + value + text[m.end(2):])
                    last[task] = value
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                time.sleep(pause)
        print('edits=%d' % (rounds * len(tasks)))
        """;

    /// <summary>
    /// <c>file_reader.py FILE STOPFILE TASK…</c>: reads FILE without a lock (as any tool would) until STOPFILE exists;
    /// every read must parse (PyYAML), hold every TASK, and never show a command's trailing number going back.
    /// Prints "reads=N failures=M".
    /// </summary>
    public const string FileReader = """
        import os, re, sys, yaml

        path, stop, expected = sys.argv[1], sys.argv[2], sys.argv[3:]
        loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
        reads = failures = 0
        newest = {}
        while True:
            stopping = os.path.exists(stop)
            with open(path, encoding='utf-8') as f:
                text = f.read()
            reads += 1
            try:
                tasks = yaml.load(text, Loader=loader)['tasks']
                missing = [t for t in expected if t not in tasks]
                if missing:
                    raise ValueError('tasks missing: %s' % missing)
                for t in expected:
                    m = re.search(r' (\d+)$', str(tasks[t].get('command', '')))
                    if m:
                        n = int(m.group(1))
                        if n < newest.get(t, 0):
                            raise ValueError('%s went back from %d to %d' % (t, newest[t], n))
                        newest[t] = n
            except Exception as e:
                failures += 1
                print('read %d: %s: %s' % (reads, type(e).__name__, e), file=sys.stderr)
            if stopping:
                break
        print('reads=%d failures=%d' % (reads, failures))
        """;
}
