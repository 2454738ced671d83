using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CsCheck;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Sync;

/// <summary>What one step of a model run does. File edits, database edits (the API's store and plain SQL), syncs, resolutions.</summary>
internal enum ModelOpKind
{
    /// <summary>A script edits the file: locked read-modify-write through the store, minimal write-back.</summary>
    FileUpsert,
    /// <summary>A person edits the command line of a task in an editor (no lock, hand-written quoting).</summary>
    FileHandEdit,
    FileDelete,
    /// <summary>Through <see cref="TaskStore"/>, as the API does.</summary>
    ApiUpsert,
    ApiDelete,
    /// <summary>Plain SQL: UPDATE one or two columns, or INSERT when the row is missing.</summary>
    SqlUpdate,
    SqlDelete,
    /// <summary>Plain SQL that breaks a rule (an invalid schedule): the row is invalid until fixed.</summary>
    SqlBreak,
    Sync,
    Resolve,
}

/// <summary>How a task id starts: on neither side, on one, on both with equal or with different content (no base yet).</summary>
internal enum ModelStart { Absent, FileOnly, DatabaseOnly, BothEqual, BothDifferent }

internal readonly record struct ModelOp(ModelOpKind Kind, int Task, int Variant)
{
    public override string ToString() => Kind switch
    {
        ModelOpKind.Sync => "Sync",
        ModelOpKind.Resolve => string.Create(CultureInfo.InvariantCulture, $"Resolve(choice {Variant % 3}, pick {Variant / 3})"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{Kind}(t{Task}, variant {Variant})"),
    };
}

internal sealed record ModelScenario(ModelFeatures Features, ModelStart[] Start, bool BerlinDefault, ModelOp[] Ops)
{
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{Features}; start: {string.Join(", ", Start.Select((s, i) => $"t{i}={s}"))}; defaults.timezone: {(BerlinDefault ? "Europe/Berlin" : "(none)")}\n");
        for (var i = 0; i < Ops.Length; i++)
            text.Append(CultureInfo.InvariantCulture, $"  #{i}: {Ops[i]}\n");
        return text.ToString();
    }
}

/// <summary>
/// Which edits a run may make. Both exist to keep the rest testable while a bug blocks them: deletions (every sync that
/// deletes fails) and flow collections (a task whose block ends with <c>tags: [..]</c> or <c>args: {..}</c> cannot be
/// rewritten, and nothing can be added to <c>tasks: {}</c>; without them a file without tasks starts out missing).
/// </summary>
internal sealed record ModelFeatures(bool Deletions, bool FlowCollections)
{
    public static readonly ModelFeatures All = new(true, true);

    public override string ToString() => $"deletions {(Deletions ? "on" : "off")}, tags/args edits {(FlowCollections ? "on" : "off")}";
}

internal static class ModelGenerators
{
    public const int TaskCount = 6;

    /// <summary>
    /// An edit's variant: <c>variant % 5</c> is the field that carries the marker (command, name, description, a tag, an
    /// arg), <c>variant / 5</c> a second field it also changes (none, enabled, max_retries, timeout_seconds, schedule, timezone).
    /// </summary>
    private static Gen<int> EditVariant(ModelFeatures features) =>
        Gen.Select(Gen.Int[0, features.FlowCollections ? 4 : 2], Gen.Int[0, 5], (field, second) => field + (5 * second));

    private static Gen<ModelOp> Op(ModelOpKind kind, Gen<int> variant) =>
        Gen.Select(Gen.Int[0, TaskCount - 1], variant, (task, v) => new ModelOp(kind, task, v));

    public static Gen<ModelOp> Ops(ModelFeatures features)
    {
        var edit = EditVariant(features);
        var deletions = features.Deletions;
        (int Weight, Gen<ModelOp> Gen)[] all =
        [
            (9, Op(ModelOpKind.FileUpsert, edit)),
            (4, Op(ModelOpKind.FileHandEdit, edit)),
            (deletions ? 3 : 0, Op(ModelOpKind.FileDelete, edit)),
            (6, Op(ModelOpKind.ApiUpsert, edit)),
            (deletions ? 2 : 0, Op(ModelOpKind.ApiDelete, edit)),
            (7, Op(ModelOpKind.SqlUpdate, edit)),
            (deletions ? 2 : 0, Op(ModelOpKind.SqlDelete, edit)),
            (1, Op(ModelOpKind.SqlBreak, edit)),
            (12, Op(ModelOpKind.Sync, edit)),
            (5, Op(ModelOpKind.Resolve, Gen.Int[0, 29])),
        ];
        return Gen.Frequency([.. all.Where(o => o.Weight > 0).Select(o => (o.Weight, (IGen<ModelOp>)o.Gen))]);
    }

    public static Gen<ModelScenario> Scenario(ModelFeatures features) => Gen.Select(
        Gen.Enum<ModelStart>().Array[TaskCount],
        Gen.Bool,
        Ops(features).Array[10, 36],
        (start, berlin, ops) => new ModelScenario(features, start, berlin, ops));
}

/// <summary>Both sides, the base and the open conflicts at one moment. A database value of null is a row that breaks a rule.</summary>
internal sealed record ModelSnapshot(
    string FileText,
    IReadOnlyDictionary<string, TaskDefinition> File,
    IReadOnlyDictionary<string, TaskDefinition?> Database,
    IReadOnlyDictionary<string, TaskDefinition> Base,
    IReadOnlyDictionary<string, ModelConflictRow> Open)
{
    public const string InvalidRow = "(invalid row)";

    public TaskDefinition? FileTask(string id) => File.GetValueOrDefault(id);
    public TaskDefinition? DatabaseTask(string id) => Database.GetValueOrDefault(id);
    public TaskDefinition? BaseTask(string id) => Base.GetValueOrDefault(id);
    public bool DatabaseInvalid(string id) => Database.TryGetValue(id, out var task) && task is null;

    public string? FileHash(string id) => File.GetValueOrDefault(id)?.ContentHash;
    public string? DatabaseHash(string id) => Database.TryGetValue(id, out var task) ? task?.ContentHash ?? InvalidRow : null;
    public string? BaseHash(string id) => Base.GetValueOrDefault(id)?.ContentHash;

    public IEnumerable<string> Ids => File.Keys.Concat(Database.Keys).Concat(Base.Keys).Concat(Open.Keys).Distinct().Order(StringComparer.Ordinal);

    /// <summary>One line per id: what the file, the database and the base hold (command and a hash prefix).</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        foreach (var id in Ids)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"    {id}: file {Show(FileTask(id))} | db {(DatabaseInvalid(id) ? InvalidRow : Show(DatabaseTask(id)))} | base {Show(BaseTask(id))}{(Open.ContainsKey(id) ? " | OPEN CONFLICT" : "")}\n");
        }
        return text.ToString();
    }

    public static string Show(TaskDefinition? task) => task is null ? "(absent)" : $"{task.ContentHash[..6]} {TaskJson.ToCanonical(task)}";
}

/// <summary>An open conflict row with the hashes of the three versions it stored (null: absent) and the file's version as text.</summary>
internal sealed record ModelConflictRow(long Id, string TaskId, string? BaseHash, string? YamlHash, string? DatabaseHash, string YamlJson);

/// <summary>
/// The world of the model test: one migrated database (emptied before each scenario) and a fresh folder per scenario,
/// with the edits a script, a person, the API and plain SQL make.
/// </summary>
internal sealed partial class SyncModelWorld : IAsyncDisposable
{
    public static readonly string[] Ids = [.. Enumerable.Range(0, ModelGenerators.TaskCount).Select(i => string.Create(CultureInfo.InvariantCulture, $"t{i}"))];
    private static readonly string[] Schedules = ["*/10 * * * *", "0 4 * * *", "@hourly"];
    private static readonly string[] Zones = ["UTC", "Europe/Berlin", "Asia/Tokyo"];

    private readonly TempDirectory _temp = new();
    private string _folder = "";

    private SyncModelWorld(NpgsqlDataSource dataSource) => DataSource = dataSource;

    public NpgsqlDataSource DataSource { get; }
    public string ConfigPath => Path.Combine(_folder, "schedule_config.yml");
    public string DefaultTimezone { get; private set; } = "UTC";
    public ConfigFileStore Store { get; private set; } = null!;
    public TaskStore Tasks => new(DataSource);
    public SyncRunner Runner() => new(DataSource, Store, new SyncOptions());
    public ConflictService Conflicts() => new(Runner());

    public static async Task<SyncModelWorld> CreateAsync()
    {
        var dataSource = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync("model"));
        await Migrations.ApplyAsync(dataSource);
        return new SyncModelWorld(dataSource);
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        _temp.Dispose();
    }

    /// <summary>The marker an edit leaves in the content it writes: unique per scenario, never a substring of another.</summary>
    public static string Marker(int number) => string.Create(CultureInfo.InvariantCulture, $"mk{number}x");

    /// <summary>Empties every table and starts a new folder, then writes the scenario's starting state. Returns the markers it wrote, per side.</summary>
    public async Task<(List<(string Marker, string Id)> File, List<(string Marker, string Id)> Database)> ResetAsync(ModelScenario scenario)
    {
        await ExecuteAsync("""
            TRUNCATE scheduled_tasks, task_audit, sync_replicas, sync_base, sync_conflicts, sync_exports, sync_runs RESTART IDENTITY;
            UPDATE sync_state SET change_counter = 0;
            """);
        _folder = Path.Combine(_temp.Path, Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_folder);
        Store = ConfigFileStore.Open(ConfigPath);
        DefaultTimezone = scenario.BerlinDefault ? "Europe/Berlin" : "UTC";

        var fileMarkers = new List<(string, string)>();
        var databaseMarkers = new List<(string, string)>();
        var text = new StringBuilder("# model test: comments stay where they are\nversion: 1\n");
        if (scenario.BerlinDefault) text.Append("defaults:\n  timezone: Europe/Berlin\n");
        text.Append("tasks:\n");
        var anyInFile = false;
        for (var i = 0; i < Ids.Length; i++)
        {
            var id = Ids[i];
            var start = scenario.Start[i];
            var fileMarker = Marker(900 + (i * 3));
            var databaseMarker = start == ModelStart.BothEqual ? fileMarker : Marker(901 + (i * 3));
            if (start is ModelStart.FileOnly or ModelStart.BothEqual or ModelStart.BothDifferent)
            {
                text.Append(CultureInfo.InvariantCulture, $"  # {id} is one of the model's tasks\n  {id}:\n    schedule: \"@daily\"\n    command: run {fileMarker}\n");
                fileMarkers.Add((fileMarker, id));
                anyInFile = true;
            }
            if (start is ModelStart.DatabaseOnly or ModelStart.BothEqual or ModelStart.BothDifferent)
            {
                await ExecuteAsync("INSERT INTO scheduled_tasks (id, name, schedule, timezone, command) VALUES ($1, $1, '@daily', $2, $3)",
                    id, DefaultTimezone, "run " + databaseMarker);
                databaseMarkers.Add((databaseMarker, id));
            }
        }
        if (anyInFile)
            File.WriteAllText(ConfigPath, text.ToString());
        else if (scenario.Features.FlowCollections)
            File.WriteAllText(ConfigPath, text.ToString().Replace("tasks:\n", "tasks: {}\n", StringComparison.Ordinal));
        return (fileMarkers, databaseMarkers);
    }

    // ---- edits ----

    /// <summary>The task with the marker in one field and, by the variant, one more field changed (see <see cref="ModelGenerators"/>).</summary>
    public static TaskDefinition Modify(TaskDefinition task, int variant, string marker, int number)
    {
        task = (variant % 5) switch
        {
            0 => task with { Command = "run " + marker },
            1 => task with { Name = "Name " + marker },
            2 => task with { Description = marker + " notes" },
            3 => task with { Tags = [.. task.Tags.TakeLast(2), marker] },
            _ => task with { Args = task.Args.SetItem("note", ArgValue.Of(marker)) },
        };
        return (variant / 5) switch
        {
            0 => task,
            1 => task with { Enabled = !task.Enabled },
            2 => task with { MaxRetries = (task.MaxRetries + 1) % 4 },
            3 => task with { TimeoutSeconds = (task.TimeoutSeconds ?? 0) + 60 },
            4 => task with { Schedule = Schedules[number % Schedules.Length] },
            _ => task with { Timezone = Zones[number % Zones.Length] },
        };
    }

    public TaskDefinition NewTask(string id, int variant, string marker) => new()
    {
        Id = id,
        Name = id,
        Schedule = "@daily",
        Timezone = variant % 2 == 0 ? "UTC" : DefaultTimezone,
        Command = "new " + marker,
    };

    /// <summary>A script's edit: locked read-modify-write, the task changed (or added) by minimal write-back.</summary>
    public void FileUpsert(string id, int variant, int number)
    {
        var marker = Marker(number);
        Store.Update(snapshot =>
        {
            var document = Load(snapshot);
            var current = document.ValidTasks.FirstOrDefault(t => t.Id == id);
            var task = Modify(current ?? NewTask(id, variant, marker), variant, marker, number);
            return ScheduleWriter.Apply(document, [task], []);
        });
    }

    public bool FileDelete(string id)
    {
        var deleted = false;
        Store.Update(snapshot =>
        {
            var document = Load(snapshot);
            deleted = document.Entries.Any(e => e.Id == id);
            return ScheduleWriter.Apply(document, [], [id]);
        });
        return deleted;
    }

    /// <summary>
    /// A person's edit in an editor: no lock, the command line of the task rewritten with single quotes. A task
    /// that is not in the file is added by a script instead (a person would copy a block; the writer does that).
    /// </summary>
    public void FileHandEdit(string id, int variant, int number)
    {
        var snapshot = Store.Read();
        var document = Load(snapshot);
        var entry = document.Entries.FirstOrDefault(e => e.Id == id);
        if (entry is null)
        {
            FileUpsert(id, variant, number);
            return;
        }
        var text = document.Text;
        var block = text[entry.KeyIndex..entry.EndIndex];
        var match = CommandLine().Match(block);
        Assert.True(match.Success, $"no command line in the block of {id}:\n{block}");
        var edited = string.Concat(text.AsSpan(0, entry.KeyIndex + match.Groups[2].Index), $"'hand {Marker(number)}'",
            text.AsSpan(entry.KeyIndex + match.Groups[2].Index + match.Groups[2].Length));
        File.WriteAllText(ConfigPath, edited);
        var check = ScheduleLoader.LoadFile(ConfigPath);
        Assert.True(check.IsValid, "the hand edit broke the file (a test bug):\n" + string.Join("\n", check.FormatProblems()) + "\n" + edited);
        Assert.Equal("hand " + Marker(number), check.ValidTasks.Single(t => t.Id == id).Command);
    }

    [GeneratedRegex(@"^([ \t]+command:[ \t]*)([^\n]*)$", RegexOptions.Multiline)]
    private static partial Regex CommandLine();

    private ScheduleDocument Load(FileSnapshot snapshot) =>
        snapshot.Exists ? ScheduleLoader.Load(snapshot.Bytes.Span, ConfigPath) : ScheduleLoader.Parse("", ConfigPath);

    public async Task<string> ApiUpsertAsync(string id, int variant, int number)
    {
        var marker = Marker(number);
        var context = new ChangeContext("api", "model-test");
        var current = await Tasks.GetAsync(id);
        if (current is null)
        {
            await Tasks.CreateAsync(Modify(NewTask(id, variant, marker), variant, marker, number), context);
            return "created";
        }
        // A row broken by SQL is replaced by a valid task, as a person fixing it through the API would.
        await Tasks.UpdateAsync(Modify(current.Task ?? NewTask(id, variant, marker), variant, marker, number), expectedVersion: null, context);
        return current.Task is null ? "replaced the invalid row" : "updated";
    }

    public async Task<bool> ApiDeleteAsync(string id)
    {
        if (await Tasks.GetAsync(id) is null) return false;
        await Tasks.DeleteAsync(id, expectedVersion: null, new ChangeContext("api", "model-test"));
        return true;
    }

    /// <summary>Plain SQL, as an administrator or another service writes: one or two columns, or an INSERT of a missing row.</summary>
    public async Task<string> SqlUpdateAsync(string id, int variant, int number)
    {
        var marker = Marker(number);
        if (!await RowExistsAsync(id))
        {
            await ExecuteAsync("INSERT INTO scheduled_tasks (id, name, schedule, timezone, command) VALUES ($1, $1, '@hourly', $2, $3)",
                id, variant % 2 == 0 ? "UTC" : DefaultTimezone, "sql " + marker);
            return "INSERT";
        }
        var first = (variant % 5) switch
        {
            0 => "command = 'sql ' || $2",
            1 => "name = 'SQL ' || $2",
            2 => "description = $2 || ' set with sql'",
            3 => "tags = array_append(tags, $2)",
            _ => "args = args || jsonb_build_object('note', $2::text)",
        };
        var second = (variant / 5) switch
        {
            0 => "",
            1 => ", enabled = NOT enabled",
            2 => ", max_retries = (max_retries + 1) % 4",
            3 => ", timeout_seconds = coalesce(timeout_seconds, 0) + 60",
            4 => ", schedule = $3",
            _ => ", timezone = $3",
        };
        var sql = $"UPDATE scheduled_tasks SET {first}{second} WHERE id = $1";
        if (variant / 5 == 4)
            await ExecuteAsync(sql, id, marker, Schedules[number % Schedules.Length]);
        else if (variant / 5 == 5)
            await ExecuteAsync(sql, id, marker, Zones[number % Zones.Length]);
        else
            await ExecuteAsync(sql, id, marker);
        return sql;
    }

    public async Task<bool> SqlDeleteAsync(string id)
    {
        if (!await RowExistsAsync(id)) return false;
        await ExecuteAsync("DELETE FROM scheduled_tasks WHERE id = $1", id);
        return true;
    }

    public async Task<bool> SqlBreakAsync(string id, int number)
    {
        if (!await RowExistsAsync(id)) return false;
        await ExecuteAsync("UPDATE scheduled_tasks SET schedule = $2 WHERE id = $1", id, "never " + Marker(number));
        return true;
    }

    private async Task<bool> RowExistsAsync(string id)
    {
        await using var command = DataSource.CreateCommand("SELECT count(*) FROM scheduled_tasks WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return (long)(await command.ExecuteScalarAsync())! > 0;
    }

    // ---- reading the world ----

    public async Task<ModelSnapshot> SnapshotAsync()
    {
        var snapshot = Store.Read();
        var document = Load(snapshot);
        Assert.True(!snapshot.Exists || document.IsValid, "the file is invalid:\n" + string.Join("\n", document.FormatProblems()) + "\n" + snapshot.Text);
        var file = document.ValidTasks.ToDictionary(t => t.Id, StringComparer.Ordinal);

        var database = (await Tasks.ListAsync()).ToDictionary(s => s.Id, s => s.Task, StringComparer.Ordinal);

        var bases = new Dictionary<string, TaskDefinition>(StringComparer.Ordinal);
        await using (var command = DataSource.CreateCommand("SELECT task_id, content::text, content_hash FROM sync_base"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var task = TaskJson.FromCanonical(reader.GetString(0), reader.GetString(1));
                Assert.True(task.ContentHash == reader.GetString(2), $"sync_base.content_hash of {task.Id} is not the hash of its content");
                bases[task.Id] = task;
            }
        }

        var open = new Dictionary<string, ModelConflictRow>(StringComparer.Ordinal);
        await using (var command = DataSource.CreateCommand("SELECT id, task_id, base::text, yaml::text, db::text FROM sync_conflicts WHERE status = 'open'"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var id = reader.GetString(1);
                string? Hash(int column) => reader.IsDBNull(column) || reader.GetString(column) == "null" ? null : TaskJson.FromCanonical(id, reader.GetString(column)).ContentHash;
                Assert.True(open.TryAdd(id, new ModelConflictRow(reader.GetInt64(0), id, Hash(2), Hash(3), Hash(4), reader.IsDBNull(3) ? "" : reader.GetString(3))), $"two open conflicts for {id}");
            }
        }
        return new ModelSnapshot(snapshot.Text, file, database, bases, open);
    }

    /// <summary>Everything the system still holds: the file, the rows, every conflict (all versions) and every audit entry.</summary>
    public async Task<string> HaystackAsync()
    {
        var text = new StringBuilder(Store.Read().Text).Append('\n');
        foreach (var sql in (string[])[
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM scheduled_tasks t",
            "SELECT coalesce(string_agg(concat_ws(' ', base::text, yaml::text, db::text, result::text), E'\\n'), '') FROM sync_conflicts",
            "SELECT coalesce(string_agg(concat_ws(' ', before::text, after::text), E'\\n'), '') FROM task_audit"])
        {
            await using var command = DataSource.CreateCommand(sql);
            text.Append((string)(await command.ExecuteScalarAsync())!).Append('\n');
        }
        return text.ToString();
    }

    public async Task ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>Field-by-field helpers of the reference model (field values as canonical JSON text).</summary>
internal static class ModelFields
{
    public static IReadOnlyList<string> Names => TaskFields.Names;

    public static string? Value(TaskDefinition? task, string field) => TaskFields.Value(task, field);

    /// <summary>Fields changed on both sides, to different values (a three-way merge cannot decide them).</summary>
    public static List<string> ChangedOnBothSides(TaskDefinition @base, TaskDefinition yaml, TaskDefinition database) =>
        [.. Names.Where(f => Value(yaml, f) != Value(@base, f) && Value(database, f) != Value(@base, f) && Value(yaml, f) != Value(database, f))];

    /// <summary>The value each field must have after a clean merge: the side that changed it, else the base's (equal on both).</summary>
    public static Dictionary<string, string?> Merged(TaskDefinition @base, TaskDefinition yaml, TaskDefinition database) =>
        Names.ToDictionary(f => f, f => Value(yaml, f) != Value(@base, f) ? Value(yaml, f) : Value(database, f), StringComparer.Ordinal);

    public static IEnumerable<string> Mismatches(TaskDefinition? actual, IReadOnlyDictionary<string, string?> expected) =>
        actual is null
            ? ["(task absent)"]
            : expected.Where(e => Value(actual, e.Key) != e.Value).Select(e => $"{e.Key} is {Value(actual, e.Key)}, expected {e.Value}");
}
