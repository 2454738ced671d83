using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CsCheck;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace ScheduleSync.Tests.Sync;

/// <summary>
/// Model-based property test of the whole sync (SPEC §4) against a real database and a real file: random
/// interleavings of file edits (a script's locked write-back, a person's unlocked editor save, deletions), database
/// edits (through <see cref="ScheduleSync.Database.TaskStore"/> and with plain SQL, including rows that break a rule), syncs and
/// conflict resolutions on six task ids. After every sync and resolution the real state is compared with a reference
/// model of the three-way table, computed from the state just before, and every edit ever made must still be
/// somewhere: in the file, a row, a conflict or the audit trail.
/// </summary>
/// <remarks>
/// A failure prints the CsCheck seed, the scenario (its operations) and the trace of what each step did. Replay it with
/// the environment variable <c>CsCheck_Seed=&lt;seed&gt;</c>; run longer with <c>CsCheck_Iter=500</c>.
/// <para>
/// "Every edit" means every edit the system took on: a file edit counts once a sync read it (unless the task was left
/// alone, frozen by a conflict or invalid in the database) or a resolution read it; a file edit the person overwrote
/// in the file before that was never the system's. A resolution asked after a side of its task changed is refused,
/// and the conflict then shows the current versions (the superseded file version is audited).
/// </para>
/// </remarks>
public sealed class SyncModelPropertyTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long Iterations = 60;
    private SyncModelWorld _world = null!;

    public async Task InitializeAsync() => _world = await SyncModelWorld.CreateAsync();

    public async Task DisposeAsync() => await _world.DisposeAsync();

    [Fact]
    public Task Random_edits_deletions_syncs_and_resolutions_follow_the_three_way_model_and_lose_no_edit() =>
        RunModelAsync(ModelFeatures.All);

    private async Task RunModelAsync(ModelFeatures features)
    {
        var stats = new ModelStats();
        var clock = Stopwatch.StartNew();
        await ModelGenerators.Scenario(features).SampleAsync(
            scenario => new ModelRun(_world, scenario, stats).RunAsync(),
            writeLine: output.WriteLine, iter: Environment.GetEnvironmentVariable("CsCheck_Iter") is null ? Iterations : -1,
            threads: 1, print: s => s.ToString());
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{features}: {stats} in {clock.Elapsed.TotalSeconds:0.0} s"));
        // A generator that drifted into never reaching these would make the test pass without testing them.
        Assert.True(stats.Conflicts > 0 && stats.Merges > 0 && stats.Resolved > 0 && stats.Exports > 0 && stats.Imports > 0,
            "the scenarios no longer reach every kind of sync decision: " + stats);
    }

    // ---- precise examples of what the model found ----

    [Fact]
    public async Task Sync_removes_a_task_deleted_from_the_file_from_the_database_and_the_base()
    {
        await _world.ResetAsync(Start(ModelStart.FileOnly, ModelStart.FileOnly));
        Assert.Equal(2, (await _world.Runner().RunAsync("test")).Inserts);

        Assert.True(_world.FileDelete("t1"));
        var result = await _world.Runner().RunAsync("test", allowMassDelete: true);

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal(1, result.Deletes);
        var state = await _world.SnapshotAsync();
        Assert.Equal(["t0"], state.Database.Keys);
        Assert.Equal(["t0"], state.Base.Keys);
    }

    [Fact]
    public async Task Open_conflict_closes_itself_when_the_file_is_edited_to_match_the_database()
    {
        await _world.ResetAsync(Start(ModelStart.BothEqual));
        await _world.Runner().RunAsync("test");
        _world.FileUpsert("t0", variant: 0, number: 1);
        await _world.SqlUpdateAsync("t0", variant: 0, number: 2);
        Assert.Equal(1, (await _world.Runner().RunAsync("test")).NewConflicts);

        // The person copies the database's version into the file: both sides agree again.
        var database = (await _world.Tasks.GetAsync("t0"))!.Task!;
        _world.Store.Update(snapshot => ScheduleWriter.Apply(ScheduleLoader.Load(snapshot.Bytes.Span, _world.ConfigPath), [database], []));
        var result = await _world.Runner().RunAsync("test");

        Assert.Equal(SyncStatus.Completed, result.Status);
        Assert.Equal(0, result.OpenConflicts);
        var conflict = Assert.Single(await _world.Conflicts().ListAsync(status: null));
        Assert.Equal(("resolved", "auto_closed"), (conflict.Status, conflict.Choice));
        Assert.Equal(database.ContentHash, (await _world.SnapshotAsync()).BaseHash("t0"));
    }

    [Fact]
    public async Task Conflict_closed_because_both_sides_deleted_the_task_forgets_its_base_so_a_new_task_of_that_id_is_imported()
    {
        await _world.ResetAsync(Start(ModelStart.BothEqual, ModelStart.BothEqual));
        await _world.Runner().RunAsync("test");
        // Deleted in the file, changed in the database: a conflict.
        _world.FileDelete("t0");
        await _world.SqlUpdateAsync("t0", variant: 0, number: 1);
        Assert.Equal(1, (await _world.Runner().RunAsync("test", allowMassDelete: true)).NewConflicts);
        // The database deletes it too: the conflict has nothing left to decide.
        await _world.SqlDeleteAsync("t0");
        var closing = await _world.Runner().RunAsync("test", allowMassDelete: true);
        Assert.Equal((SyncStatus.Completed, 0), (closing.Status, closing.OpenConflicts));
        Assert.Null((await _world.SnapshotAsync()).BaseTask("t0"));

        // Gone from both sides and agreed: a task added to the file under that id later is new, not a conflict.
        _world.FileUpsert("t0", variant: 0, number: 2);
        var result = await _world.Runner().RunAsync("test");

        Assert.Equal((0, 1), (result.NewConflicts, result.Inserts));
    }

    [Fact]
    public async Task Sync_exports_a_database_change_of_a_task_whose_block_ends_with_a_flow_list()
    {
        await _world.ResetAsync(Start(ModelStart.BothEqual));
        await _world.Runner().RunAsync("test");
        // The file gets a tag (the writer renders it as the block's last line, "tags: [mk1x]"); the sync imports it.
        _world.FileUpsert("t0", variant: 3, number: 1);
        Assert.Equal(1, (await _world.Runner().RunAsync("test")).Updates);

        await _world.SqlUpdateAsync("t0", variant: 0, number: 2);
        var result = await _world.Runner().RunAsync("test");

        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        var state = await _world.SnapshotAsync();
        Assert.Equal("sql mk2x", state.FileTask("t0")!.Command);
        Assert.Equal(["mk1x"], state.FileTask("t0")!.Tags.ToArray());
    }

    [Theory]
    [InlineData("tags: [ops, backup]")]
    [InlineData("args: { keep: 7 }")]
    public void Write_back_replaces_a_task_whose_last_line_is_a_flow_collection(string lastLine)
    {
        var text = $"version: 1\ntasks:\n  a:\n    schedule: \"@daily\"\n    command: old\n    {lastLine}\n  b:\n    schedule: \"@daily\"\n    command: b\n";
        var document = ScheduleLoader.Parse(text, "schedule_config.yml");
        var changed = document.ValidTasks.Single(t => t.Id == "a") with { Command = "new" };

        var written = ScheduleWriter.Apply(document, [changed], []);

        Assert.Equal(text.Replace("command: old", "command: new", StringComparison.Ordinal), written);
    }

    [Fact]
    public async Task Resolution_records_a_file_edit_it_discards_that_was_made_after_the_conflict_was_stored()
    {
        await _world.ResetAsync(Start(ModelStart.BothEqual));
        await _world.Runner().RunAsync("test");
        _world.FileUpsert("t0", variant: 0, number: 1);
        await _world.SqlUpdateAsync("t0", variant: 0, number: 2);
        Assert.Equal(1, (await _world.Runner().RunAsync("test")).NewConflicts);
        // While the conflict is open, the person edits the file once more; the sync leaves the task alone.
        _world.FileUpsert("t0", variant: 0, number: 3);
        Assert.Equal(0, (await _world.Runner().RunAsync("test")).NewConflicts);

        var conflict = Assert.Single(await _world.Conflicts().ListAsync());
        await _world.Conflicts().ResolveAsync(conflict.Id, ResolutionChoice.KeepDb, null, "test");

        // The database's version won, as chosen; the file's newer version it replaced must be on record somewhere
        // (the conflict shown to the person still holds the older "run mk1x").
        Assert.Equal("sql mk2x", (await _world.SnapshotAsync()).FileTask("t0")!.Command);
        var haystack = await _world.HaystackAsync();
        Assert.Contains("mk1x", haystack, StringComparison.Ordinal);
        Assert.Contains("mk3x", haystack, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_exports_a_new_database_task_into_a_file_whose_tasks_mapping_is_empty()
    {
        // "tasks: {}" is how a file without tasks is written, by a person or by ScheduleWriter.WriteNew.
        await _world.ResetAsync(Start());
        Assert.Contains("tasks: {}", await File.ReadAllTextAsync(_world.ConfigPath), StringComparison.Ordinal);
        Assert.Equal(SyncStatus.Completed, (await _world.Runner().RunAsync("test")).Status);

        await _world.ApiUpsertAsync("t0", variant: 0, number: 1);
        var result = await _world.Runner().RunAsync("test");

        Assert.Equal((SyncStatus.Completed, 1), (result.Status, result.Exports));
        Assert.Equal("run mk1x", (await _world.SnapshotAsync()).FileTask("t0")?.Command);
    }

    [Fact]
    public void Write_back_adds_a_task_to_an_empty_flow_tasks_section()
    {
        var document = ScheduleLoader.Parse(ScheduleWriter.WriteNew([]), "schedule_config.yml");
        var task = new TaskDefinition { Id = "a", Name = "a", Schedule = "@daily", Timezone = "UTC", Command = "run" };

        var written = ScheduleWriter.Apply(document, [task], []);

        Assert.Equal(ScheduleWriter.WriteNew([task]), written);
    }

    private static ModelScenario Start(params ModelStart[] start) =>
        new(ModelFeatures.All, [.. start, .. Enumerable.Repeat(ModelStart.Absent, ModelGenerators.TaskCount - start.Length)], false, []);
}

/// <summary>What the scenarios reached, to show the test exercised every decision of the table.</summary>
internal sealed class ModelStats
{
    public int Scenarios;
    public int Syncs;
    public int Imports;
    public int Exports;
    public int Merges;
    public int Conflicts;
    public int Frozen;
    public int Closed;
    public int Resolved;
    public int ResolutionsRefused;
    public int SkippedInvalid;
    public int SupersededFileEdits;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Scenarios} scenarios, {Syncs} syncs: {Imports} imports, {Exports} exports, {Merges} merges, {Conflicts} new conflicts, "
        + $"{Frozen} frozen, {Closed} closed by equal sides, {SkippedInvalid} invalid rows skipped; {Resolved} resolutions "
        + $"({ResolutionsRefused} refused); {SupersededFileEdits} file edits overwritten in the file before any sync saw them");
}

/// <summary>One scenario: runs the operations, and after each sync or resolution compares the world with the model.</summary>
internal sealed class ModelRun(SyncModelWorld world, ModelScenario scenario, ModelStats stats)
{
    private readonly List<string> _trace = [];

    /// <summary>
    /// File edits (marker → step, task) the system has not taken on yet: a later edit in the file may still overwrite
    /// them. A sync takes on the edits in the file except those of tasks it leaves alone (frozen by an open conflict, or
    /// invalid in the database), which the person may still change; a resolution takes on the edits of its task.
    /// </summary>
    private readonly Dictionary<string, (string Step, string Id)> _pendingFileEdits = new(StringComparer.Ordinal);

    /// <summary>Edits the system has seen, by marker: each must stay findable for ever.</summary>
    private readonly Dictionary<string, string> _seenEdits = new(StringComparer.Ordinal);

    public async Task RunAsync()
    {
        var (fileMarkers, databaseMarkers) = await world.ResetAsync(scenario);
        foreach (var (marker, id) in fileMarkers) _pendingFileEdits[marker] = ($"start: {id} in the file", id);
        foreach (var (marker, id) in databaseMarkers) _seenEdits[marker] = $"start: {id} in the database";
        for (var i = 0; i < scenario.Ops.Length; i++)
            await WithTraceAsync(string.Create(CultureInfo.InvariantCulture, $"#{i} {scenario.Ops[i]}"), () => StepAsync(i, scenario.Ops[i]));
        // Whatever the operations left open, one more sync must still agree with the model.
        await WithTraceAsync("final Sync", () => SyncAsync("final Sync"));
        Interlocked.Increment(ref stats.Scenarios);
    }

    /// <summary>Turns an exception of the system under test into a failure that shows the trace and the file.</summary>
    private async Task WithTraceAsync(string step, Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is not XunitException)
        {
            var file = File.Exists(world.ConfigPath) ? await File.ReadAllTextAsync(world.ConfigPath) : "(no file)";
            throw new XunitException($"{step} threw {e.GetType().Name}: {e.Message}\nfile:\n{file}\ntrace:\n  {string.Join("\n  ", _trace)}", e);
        }
    }

    private async Task StepAsync(int index, ModelOp op)
    {
        var id = SyncModelWorld.Ids[op.Task];
        var marker = SyncModelWorld.Marker(index);
        var step = string.Create(CultureInfo.InvariantCulture, $"#{index} {op}");
        switch (op.Kind)
        {
            case ModelOpKind.FileUpsert:
                world.FileUpsert(id, op.Variant, index);
                _pendingFileEdits[marker] = (step, id);
                _trace.Add($"{step}: {marker} written to the file");
                break;
            case ModelOpKind.FileHandEdit:
                world.FileHandEdit(id, op.Variant, index);
                _pendingFileEdits[marker] = (step, id);
                _trace.Add($"{step}: {marker} written to the file");
                break;
            case ModelOpKind.FileDelete:
                _trace.Add($"{step}: {(world.FileDelete(id) ? "removed from the file" : "not in the file")}");
                break;
            case ModelOpKind.ApiUpsert:
                _trace.Add($"{step}: {await world.ApiUpsertAsync(id, op.Variant, index)} with {marker}");
                _seenEdits[marker] = step;
                break;
            case ModelOpKind.ApiDelete:
                _trace.Add($"{step}: {(await world.ApiDeleteAsync(id) ? "deleted" : "no row")}");
                break;
            case ModelOpKind.SqlUpdate:
                _trace.Add($"{step}: {await world.SqlUpdateAsync(id, op.Variant, index)} with {marker}");
                _seenEdits[marker] = step;
                break;
            case ModelOpKind.SqlDelete:
                _trace.Add($"{step}: {(await world.SqlDeleteAsync(id) ? "DELETE" : "no row")}");
                break;
            case ModelOpKind.SqlBreak:
                if (await world.SqlBreakAsync(id, index))
                {
                    _seenEdits[marker] = step;
                    _trace.Add($"{step}: schedule set to 'never {marker}' (invalid)");
                }
                else
                {
                    _trace.Add($"{step}: no row");
                }
                break;
            case ModelOpKind.Sync:
                await SyncAsync(step);
                break;
            case ModelOpKind.Resolve:
                await ResolveAsync(op.Variant, step);
                break;
        }
    }

    /// <summary>The file as a sync reads it: edits still in it are taken on (but those of frozen tasks); the others were overwritten in the file.</summary>
    private void ReadByTheSystem(ModelSnapshot state)
    {
        foreach (var (marker, (step, id)) in _pendingFileEdits.ToList())
        {
            if (!state.FileText.Contains(marker, StringComparison.Ordinal))
            {
                _pendingFileEdits.Remove(marker);
                Interlocked.Increment(ref stats.SupersededFileEdits);
                _trace.Add($"    ({marker} of {step} was overwritten in the file before the system took it on)");
            }
            else if (!state.Open.ContainsKey(id) && !state.DatabaseInvalid(id))
            {
                _pendingFileEdits.Remove(marker);
                _seenEdits[marker] = step;
            }
        }
    }

    /// <summary>A resolution reads one task of the file: the edits in its version are taken on.</summary>
    private void ReadByTheSystem(TaskDefinition? fileVersion)
    {
        var text = fileVersion is null ? "" : TaskJson.ToCanonical(fileVersion);
        foreach (var (marker, (step, _)) in _pendingFileEdits.Where(e => text.Contains(e.Key, StringComparison.Ordinal)).ToList())
        {
            _pendingFileEdits.Remove(marker);
            _seenEdits[marker] = step;
        }
    }

    private async Task SyncAsync(string step)
    {
        var before = await world.SnapshotAsync();
        ReadByTheSystem(before);
        var result = await world.Runner().RunAsync("model", allowMassDelete: true);
        var after = await world.SnapshotAsync();
        _trace.Add(string.Create(CultureInfo.InvariantCulture,
            $"{step}: {result.Status}, +{result.Inserts} ~{result.Updates} -{result.Deletes} in the database, {result.Exports} exported, {result.NewConflicts} new conflict(s), {result.OpenConflicts} open"));
        Interlocked.Increment(ref stats.Syncs);

        var problems = new List<string>();
        if (result.Status is not (SyncStatus.Completed or SyncStatus.NoOp))
            problems.Add($"status {result.Status}: {result.Error}");
        var newConflicts = 0;
        foreach (var id in before.Ids.Union(after.Ids).Order(StringComparer.Ordinal))
        {
            if (ExpectSync(id, before, after, problems))
                newConflicts++;
        }
        if (result.NewConflicts != newConflicts)
            problems.Add($"the run reports {result.NewConflicts} new conflict(s); the model expects {newConflicts}");
        if (result.OpenConflicts != after.Open.Count)
            problems.Add($"the run reports {result.OpenConflicts} open conflict(s); {after.Open.Count} are stored");
        if (problems.Count > 0)
            Fail($"after {step}:\n  " + string.Join("\n  ", problems), before, after);
        await CheckNothingLostAsync(step, after);
    }

    /// <summary>SPEC §4's table for one id. Returns true when the model expects a new conflict.</summary>
    private bool ExpectSync(string id, ModelSnapshot before, ModelSnapshot after, List<string> problems)
    {
        var (y, d, b) = (before.FileTask(id), before.DatabaseTask(id), before.BaseTask(id));
        var (yh, dh, bh) = (before.FileHash(id), before.DatabaseHash(id), before.BaseHash(id));
        var databaseInvalid = before.DatabaseInvalid(id);

        void Expect(string rule, string? file, string? database, string? @base, bool open)
        {
            var wrong = new List<string>();
            if (after.FileHash(id) != file) wrong.Add($"file {Short(after.FileHash(id))} (expected {Short(file)})");
            if (after.DatabaseHash(id) != database) wrong.Add($"db {Short(after.DatabaseHash(id))} (expected {Short(database)})");
            if (after.BaseHash(id) != @base) wrong.Add($"base {Short(after.BaseHash(id))} (expected {Short(@base)})");
            if (after.Open.ContainsKey(id) != open) wrong.Add(open ? "no open conflict (expected one)" : "an open conflict (expected none)");
            if (wrong.Count > 0) problems.Add($"{id} [{rule}]: {string.Join(", ", wrong)}");
        }

        if (before.Open.TryGetValue(id, out var row))
        {
            if (!databaseInvalid && yh == dh)
            {
                Expect("open conflict whose sides became equal: closed, base := both", yh, yh, yh, open: false);
                Interlocked.Increment(ref stats.Closed);
            }
            else
            {
                Expect("open conflict: frozen, nothing touched", yh, dh, bh, open: true);
                if (after.Open.TryGetValue(id, out var still) && still.Id != row.Id)
                    problems.Add($"{id}: the open conflict {row.Id} was replaced by {still.Id}");
                Interlocked.Increment(ref stats.Frozen);
            }
            return false;
        }
        if (databaseInvalid)
        {
            Expect("invalid database row: both sides keep their state", yh, dh, bh, open: false);
            Interlocked.Increment(ref stats.SkippedInvalid);
            return false;
        }
        if (yh == dh)
        {
            Expect("Y = D: in sync, base := Y", yh, yh, yh, open: false);
            return false;
        }
        if (yh == bh)
        {
            Expect("Y = B, D changed: export D", dh, dh, dh, open: false);
            Interlocked.Increment(ref stats.Exports);
            return false;
        }
        if (dh == bh)
        {
            Expect("D = B, Y changed: import Y", yh, yh, yh, open: false);
            Interlocked.Increment(ref stats.Imports);
            return false;
        }
        if (y is null || d is null || b is null || ModelFields.ChangedOnBothSides(b, y, d).Count > 0)
        {
            Expect("both changed, not mergeable: conflict, nothing touched", yh, dh, bh, open: true);
            if (after.Open.TryGetValue(id, out var stored) && (stored.YamlHash, stored.DatabaseHash, stored.BaseHash) != (yh, dh, bh))
                problems.Add($"{id}: the conflict stored yaml {Short(stored.YamlHash)}, db {Short(stored.DatabaseHash)}, base {Short(stored.BaseHash)}; expected {Short(yh)}, {Short(dh)}, {Short(bh)}");
            Interlocked.Increment(ref stats.Conflicts);
            return true;
        }

        // Both changed different fields: both sides and the base get the field-level merge.
        var merged = after.FileHash(id);
        Expect("both changed different fields: merged", merged, merged, merged, open: false);
        var mismatches = ModelFields.Mismatches(after.FileTask(id), ModelFields.Merged(b, y, d)).ToList();
        if (mismatches.Count > 0)
            problems.Add($"{id} [merge]: {string.Join("; ", mismatches)}");
        Interlocked.Increment(ref stats.Merges);
        return false;
    }

    private async Task ResolveAsync(int variant, string step)
    {
        var before = await world.SnapshotAsync();
        if (before.Open.Count == 0)
        {
            _trace.Add($"{step}: no open conflict");
            return;
        }
        var rows = before.Open.Values.OrderBy(r => r.Id).ToList();
        var row = rows[variant / 3 % rows.Count];
        var choice = (ResolutionChoice)(variant % 3);
        var id = row.TaskId;
        var (y, d, b) = (before.FileTask(id), before.DatabaseTask(id), before.BaseTask(id));
        var databaseInvalid = before.DatabaseInvalid(id);

        // For a merge, the value of each field both sides changed: alternately the file's and the database's.
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (choice == ResolutionChoice.Merge && y is not null && d is not null)
        {
            var needed = b is null
                ? ModelFields.Names.Where(f => ModelFields.Value(y, f) != ModelFields.Value(d, f)).ToList()
                : ModelFields.ChangedOnBothSides(b, y, d);
            for (var k = 0; k < needed.Count; k++)
            {
                using var value = JsonDocument.Parse(ModelFields.Value((k + variant) % 2 == 0 ? y : d, needed[k])!);
                fields[needed[k]] = value.RootElement.Clone();
            }
        }
        var what = $"{step}: conflict {row.Id} on {id} resolved {ConflictService.ChoiceName(choice)}{(fields.Count > 0 ? " with " + string.Join(", ", fields.Keys) : "")}";

        if (databaseInvalid)
        {
            try
            {
                await world.Conflicts().ResolveAsync(row.Id, choice, fields, "model-test");
            }
            catch (ResolutionException e)
            {
                _trace.Add($"{what}: refused ({e.Message})");
                Interlocked.Increment(ref stats.ResolutionsRefused);
                var unchanged = await world.SnapshotAsync();
                var changes = Differences(before, unchanged, except: null);
                if (changes.Count > 0) Fail($"after the refused {what}:\n  " + string.Join("\n  ", changes), before, unchanged);
                return;
            }
            Fail($"{what}: accepted although the database row is invalid", before, await world.SnapshotAsync());
        }

        ReadByTheSystem(y);
        if (row.YamlHash != before.FileHash(id) || row.DatabaseHash != before.DatabaseHash(id))
        {
            // A side changed after the conflict was stored: the resolution is refused (it would decide on versions
            // nobody saw), and the conflict now shows the current ones. Nothing else changes.
            try
            {
                await world.Conflicts().ResolveAsync(row.Id, choice, fields, "model-test");
                Fail($"{what}: accepted although a side changed since the conflict was stored", before, await world.SnapshotAsync());
            }
            catch (ResolutionException e)
            {
                _trace.Add($"{what}: refused ({e.Message})");
                Interlocked.Increment(ref stats.ResolutionsRefused);
                var refreshed = await world.SnapshotAsync();
                var changes = Differences(before, refreshed, except: id);
                if (refreshed.FileHash(id) != before.FileHash(id) || refreshed.DatabaseHash(id) != before.DatabaseHash(id) || refreshed.BaseHash(id) != before.BaseHash(id))
                    changes.Add($"{id}: a side or the base changed");
                if (!refreshed.Open.TryGetValue(id, out var now) || now.Id != row.Id
                    || now.YamlHash != before.FileHash(id) || now.DatabaseHash != before.DatabaseHash(id))
                    changes.Add($"{id}: conflict {row.Id} does not show the current versions");
                if (changes.Count > 0) Fail($"after the refused {what}:\n  " + string.Join("\n  ", changes), before, refreshed);
                await CheckNothingLostAsync(step, refreshed);
                return;
            }
        }

        var record = await world.Conflicts().ResolveAsync(row.Id, choice, fields, "model-test");
        var after = await world.SnapshotAsync();
        _trace.Add(what);
        Interlocked.Increment(ref stats.Resolved);

        var expected = choice switch
        {
            ResolutionChoice.KeepYaml => Fields(y),
            ResolutionChoice.KeepDb => Fields(d),
            _ when y is null || d is null => Fields(y ?? d),
            _ => ModelFields.Names.ToDictionary(
                f => f,
                f => fields.TryGetValue(f, out var given) ? given.GetRawText()
                    : b is null || ModelFields.Value(y, f) != ModelFields.Value(b, f) ? ModelFields.Value(y, f)
                    : ModelFields.Value(d, f),
                StringComparer.Ordinal),
        };

        var problems = Differences(before, after, except: id);
        if (after.Open.ContainsKey(id)) problems.Add($"{id}: still has an open conflict");
        if (record.Status != "resolved" || record.Choice != ConflictService.ChoiceName(choice))
            problems.Add($"conflict {row.Id}: status {record.Status}, choice {record.Choice}");
        if (expected is null)
        {
            if (after.FileHash(id) is not null || after.DatabaseHash(id) is not null || after.BaseHash(id) is not null)
                problems.Add($"{id}: the result is 'deleted', but file {Short(after.FileHash(id))}, db {Short(after.DatabaseHash(id))}, base {Short(after.BaseHash(id))}");
            if (record.Result is not null) problems.Add($"conflict {row.Id}: result {ModelSnapshot.Show(record.Result)} for a deletion");
        }
        else
        {
            var file = after.FileHash(id);
            if (file is null || after.DatabaseHash(id) != file || after.BaseHash(id) != file)
                problems.Add($"{id}: file {Short(file)}, db {Short(after.DatabaseHash(id))} and base {Short(after.BaseHash(id))} are not one result");
            problems.AddRange(ModelFields.Mismatches(after.FileTask(id), expected).Select(m => $"{id} [result]: {m}"));
            if (record.Result?.ContentHash != file) problems.Add($"conflict {row.Id}: stored result {Short(record.Result?.ContentHash)} is not the task {Short(file)}");
        }
        if (problems.Count > 0)
            Fail($"after {what}:\n  " + string.Join("\n  ", problems), before, after);
        await CheckNothingLostAsync(step, after);
    }


    private static Dictionary<string, string?>? Fields(TaskDefinition? task) =>
        task is null ? null : ModelFields.Names.ToDictionary(f => f, f => ModelFields.Value(task, f), StringComparer.Ordinal);

    /// <summary>Every id (but <paramref name="except"/>) whose file, database, base or open-conflict state differs.</summary>
    private static List<string> Differences(ModelSnapshot before, ModelSnapshot after, string? except)
    {
        var differences = new List<string>();
        foreach (var id in before.Ids.Union(after.Ids).Where(i => i != except))
        {
            if (before.FileHash(id) != after.FileHash(id) || before.DatabaseHash(id) != after.DatabaseHash(id)
                || before.BaseHash(id) != after.BaseHash(id) || before.Open.ContainsKey(id) != after.Open.ContainsKey(id))
                differences.Add($"{id} changed although it was not resolved");
        }
        return differences;
    }

    /// <summary>Every edit the system has seen is still in the file, a row, a conflict (any version) or the audit trail.</summary>
    private async Task CheckNothingLostAsync(string step, ModelSnapshot state)
    {
        var haystack = await world.HaystackAsync();
        var lost = _seenEdits.Where(e => !haystack.Contains(e.Key, StringComparison.Ordinal)).Select(e => $"{e.Key} ({e.Value})").ToList();
        if (lost.Count > 0)
            Fail($"after {step}, edits are gone from the file, the rows, the conflicts and the audit trail: {string.Join(", ", lost)}", state, state);
    }

    private static string Short(string? hash) => hash switch
    {
        null => "absent",
        ModelSnapshot.InvalidRow => hash,
        _ => hash[..6],
    };

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(string message, ModelSnapshot before, ModelSnapshot after) =>
        throw new XunitException($"{message}\nbefore:\n{before.Describe()}after:\n{after.Describe()}trace:\n  {string.Join("\n  ", _trace)}");
}
