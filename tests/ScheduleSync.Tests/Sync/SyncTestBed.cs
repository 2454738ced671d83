using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// One test's world: a fresh database (migrated), a temp folder with <c>schedule_config.yml</c>, and short ways to
/// change either side the way a person would (edit the file without a lock, plain SQL) and to look at both sides.
/// </summary>
internal sealed class SyncTestBed : IAsyncDisposable
{
    /// <summary>
    /// Three tasks, written in the layout the writer itself uses, so a test can predict a minimal write-back byte
    /// for byte; the comments must survive every write-back.
    /// </summary>
    public const string InitialYaml = """
        # schedule_config.yml for the sync tests: comments must survive every write-back
        version: 1
        tasks:
          # alpha: the nightly backup
          alpha:
            name: Nightly backup
            schedule: "0 3 * * *"
            command: /usr/local/bin/backup.sh
            args: { keep: 7, target: s3 }
            max_retries: 2
          # beta keeps the cache warm
          beta:
            schedule: "*/5 * * * *"
            command: warm-cache
            enabled: false
          gamma:
            schedule: "@daily"
            command: gamma
        # end of file

        """;

    private readonly TempDirectory _temp;

    private SyncTestBed(TempDirectory temp, string connectionString, NpgsqlDataSource dataSource)
    {
        _temp = temp;
        ConnectionString = connectionString;
        DataSource = dataSource;
        ConfigPath = temp.File("schedule_config.yml");
    }

    public string ConnectionString { get; }
    public NpgsqlDataSource DataSource { get; }
    public string ConfigPath { get; }
    public string Folder => _temp.Path;
    public TaskStore Tasks => new(DataSource);

    /// <summary>A fresh database (migrated unless told otherwise) and a folder holding <paramref name="yaml"/> (none when null).</summary>
    public static async Task<SyncTestBed> CreateAsync(string prefix, string? yaml = InitialYaml, bool migrate = true)
    {
        var connectionString = await TestPostgres.CreateDatabaseAsync(prefix);
        var temp = new TempDirectory();
        var bed = new SyncTestBed(temp, connectionString, NpgsqlDataSource.Create(connectionString));
        if (migrate)
            await Migrations.ApplyAsync(bed.DataSource);
        if (yaml is not null)
            bed.WriteFile(yaml);
        return bed;
    }

    /// <summary>Sets up the usual starting point: <see cref="InitialYaml"/> imported, both sides and the base equal.</summary>
    public static async Task<SyncTestBed> SyncedAsync(string prefix)
    {
        var bed = await CreateAsync(prefix);
        var first = await bed.SyncAsync();
        Assert.Equal(SyncStatus.Completed, first.Status);
        Assert.Equal(3, first.Inserts);
        return bed;
    }

    public SyncRunner Runner(SyncOptions? options = null) =>
        new(DataSource, ConfigFileStore.Open(ConfigPath), options ?? new SyncOptions());

    public Task<SyncResult> SyncAsync(bool allowMassDelete = false, bool force = false, SyncOptions? options = null) =>
        Runner(options).RunAsync("cli", force, allowMassDelete);

    public ConflictService Conflicts() => new(Runner());

    // ---- the file, as a person edits it: no lock, plain writes ----

    public string ReadFile() => File.ReadAllText(ConfigPath);

    public byte[] ReadFileBytes() => File.ReadAllBytes(ConfigPath);

    public void WriteFile(string text) => File.WriteAllText(ConfigPath, text);

    /// <summary>Replaces the one occurrence of <paramref name="find"/> in the file.</summary>
    public void EditFile(string find, string replacement) => WriteFile(ReplaceOnce(ReadFile(), find, replacement));

    public static string ReplaceOnce(string text, string find, string replacement)
    {
        var at = text.IndexOf(find, StringComparison.Ordinal);
        Assert.True(at >= 0, $"'{find}' is not in:\n{text}");
        Assert.True(text.IndexOf(find, at + 1, StringComparison.Ordinal) < 0, $"'{find}' is in the text more than once");
        return string.Concat(text.AsSpan(0, at), replacement, text.AsSpan(at + find.Length));
    }

    /// <summary>The file's tasks; the file must be valid.</summary>
    public Dictionary<string, TaskDefinition> FileTasks()
    {
        var document = ScheduleLoader.LoadFile(ConfigPath);
        Assert.True(document.IsValid, string.Join("\n", document.FormatProblems()));
        return document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);
    }

    // ---- the database ----

    public async Task ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public Task<long> CountAsync(string fromWhere, params object[] parameters) => ScalarAsync<long>("SELECT count(*) FROM " + fromWhere, parameters);

    public Task<long> ChangeCounterAsync() => ScalarAsync<long>("SELECT change_counter FROM sync_state WHERE id = 1");

    /// <summary>The database's tasks; every row must be valid.</summary>
    public async Task<Dictionary<string, TaskDefinition>> DatabaseTasksAsync()
    {
        var stored = await Tasks.ListAsync();
        Assert.All(stored, s => Assert.True(s.Task is not null, $"{s.Id}: {string.Join("; ", s.Problems)}"));
        return stored.ToDictionary(s => s.Id, s => s.Task!, StringComparer.Ordinal);
    }

    /// <summary>Id, version and content of every row: equal before and after means the database was not touched.</summary>
    public async Task<string> DatabaseFingerprintAsync() =>
        await ScalarAsync<string>("SELECT coalesce(string_agg(id || '@' || version || ':' || to_jsonb(t)::text, E'\\n' ORDER BY id), '') FROM scheduled_tasks t");

    public async Task<Dictionary<string, string>> BaseHashesAsync()
    {
        var bases = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var command = DataSource.CreateCommand("SELECT task_id, content_hash FROM sync_base");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            bases[reader.GetString(0)] = reader.GetString(1);
        return bases;
    }

    /// <summary>Asserts that the file and the database hold the same tasks (by content hash) and returns them.</summary>
    public async Task<Dictionary<string, TaskDefinition>> AssertBothSidesEqualAsync()
    {
        var file = FileTasks();
        var database = await DatabaseTasksAsync();
        Assert.Equal(Hashes(file), Hashes(database));
        return file;
    }

    /// <summary>Asserts that file, database and base all agree on every task.</summary>
    public async Task<Dictionary<string, TaskDefinition>> AssertConvergedAsync()
    {
        var tasks = await AssertBothSidesEqualAsync();
        Assert.Equal(Hashes(tasks), await BaseHashesAsync());
        Assert.Equal(0, await CountAsync("sync_conflicts WHERE status = 'open'"));
        return tasks;
    }

    public static SortedDictionary<string, string> Hashes(IReadOnlyDictionary<string, TaskDefinition> tasks) =>
        new(tasks.ToDictionary(t => t.Key, t => t.Value.ContentHash), StringComparer.Ordinal);

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        _temp.Dispose();
    }
}
