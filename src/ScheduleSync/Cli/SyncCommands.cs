using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;
using ScheduleSync.Yaml;

namespace ScheduleSync.Cli;

/// <summary>The one-shot commands that work on both sides: sync, plan, status, history, conflicts, restore, export.</summary>
internal static class SyncCommands
{
    private static readonly JsonSerializerOptions JsonOutput = CliJson.Options;

    private static readonly Option<bool> AllowMassDelete = new("--allow-mass-delete")
    {
        Description = "Let this run delete more than the mass-deletion guard allows",
    };

    public static IEnumerable<Command> All() =>
        [Sync(), Plan(), Status(), History(), Conflicts(), Restore(), Export()];

    /// <summary>Runs a command body against an opened host, turning known failures into a message and exit code 1.</summary>
    private static void Run(Command command, Func<ParseResult, CliHost, CancellationToken, Task<int>> body) =>
        command.SetAction(async (parse, ct) =>
        {
            var settings = CliSettings.From(parse);
            return await CliErrors.GuardAsync(settings, async () =>
            {
                CliErrors.Preflight(settings);
                await using var host = await CliHost.OpenAsync(settings, ct);
                return await body(parse, host, ct);
            });
        });

    private static readonly Option<bool> Init = new("--init")
    {
        Description = "Create the file when it does not exist and the database has no tasks (instead of failing)",
    };

    /// <summary>
    /// A missing file next to an empty database is a mistake (a wrong --config, a forgotten checkout) unless creating
    /// it is asked for; with tasks in the database the sync writes them to a new file as before.
    /// </summary>
    internal static async Task<bool> EnsureFileAsync(CliHost host, bool create, CancellationToken ct)
    {
        if (File.Exists(host.Settings.ConfigPath)) return false;
        var databaseTasks = (await host.Tasks.ListAsync(ct)).Count;
        if (databaseTasks > 0) return false;
        if (!create)
            throw new CliException($"{host.Settings.ConfigPath}: no such file, and the database has no tasks; "
                + "run `schedsync init` (or `schedsync sync --init`) to create it, or check --config");
        InitCommand.CreateFile(host.Store, InitCommand.MinimalFile);
        return true;
    }

    private static Command Sync()
    {
        var force = new Option<bool>("--force") { Description = "Run even when neither side changed since the last sync" };
        var command = new Command("sync", "Run a three-way sync now (for cron or a systemd timer)") { AllowMassDelete, force, Init };
        Run(command, async (parse, host, ct) =>
        {
            if (await EnsureFileAsync(host, parse.GetValue(Init), ct) && !host.Settings.Json)
                Console.WriteLine($"created {host.Settings.ConfigPath}");
            var result = await host.Runner.RunAsync("cli", parse.GetValue(force), parse.GetValue(AllowMassDelete), ct: ct);
            if (host.Settings.Json)
                Console.WriteLine(JsonSerializer.Serialize(SyncJson.Summary(result), JsonOutput));
            else
                PrintResult(host.Settings.ConfigPath, result);
            return ExitCode(result);
        });
        return command;
    }

    internal static int ExitCode(SyncResult result) => result.Status switch
    {
        SyncStatus.InvalidFile => ExitCodes.InvalidFile,
        SyncStatus.Refused => ExitCodes.Error,
        _ when result.InvalidRows.Count > 0 => ExitCodes.Error,
        _ when result.OpenConflicts > 0 => ExitCodes.ConflictsOpen,
        _ => ExitCodes.Success,
    };

    private static void PrintResult(string path, SyncResult result)
    {
        foreach (var problem in result.Problems)
            Console.WriteLine(problem.Format(path));
        if (result.Error is not null)
            Console.Error.WriteLine($"schedsync: {result.Error}");
        if (result.Status == SyncStatus.NoOp)
            Console.WriteLine($"sync: nothing changed since the last sync ({result.OpenConflicts} open conflict(s))");
        else if (result.Status == SyncStatus.Completed)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sync: run {result.RunId} in {result.Duration.TotalMilliseconds:F1} ms: {result.Inserts} inserted, {result.Updates} updated, {result.Deletes} deleted in the database; {result.Exports} written to the file; {result.NewConflicts} new conflict(s), {result.OpenConflicts} open"));
    }

    private static Command Plan()
    {
        var command = new Command("plan", "Show what a sync would do now, per task and per field, without changing anything") { AllowMassDelete };
        Run(command, async (parse, host, ct) =>
        {
            // Nothing changed on either side since the last run: the stored state answers, the file is not parsed.
            var snapshot = host.Runner.Store.Read();
            var (document, plan) = await StoredState.UnchangedAsync(host.Runner, snapshot, ct)
                ? (null, StoredState.EmptyPlan)
                : await host.Runner.PlanAsync(parse.GetValue(AllowMassDelete), snapshot, ct);
            if (plan is null)
            {
                foreach (var line in document!.FormatProblems()) Console.WriteLine(line);
                Console.Error.WriteLine($"schedsync: {host.Settings.ConfigPath} is invalid; a sync would change nothing");
                return ExitCodes.InvalidFile;
            }
            if (host.Settings.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(SyncJson.Plan(plan), JsonOutput));
            }
            else
            {
                Console.Write(RenderPlan(plan));
            }
            return plan.IsRefused ? ExitCodes.Error : plan.Actions.Any(a => a.Kind is SyncActionKind.Conflict or SyncActionKind.Frozen) ? ExitCodes.ConflictsOpen : ExitCodes.Success;
        });
        return command;
    }

    internal static string RenderPlan(SyncPlan plan)
    {
        var text = new StringBuilder();
        foreach (var action in plan.Changes)
        {
            var (mark, what) = action.Kind switch
            {
                SyncActionKind.ImportInsert => ("+", "insert into the database (new in the file)"),
                SyncActionKind.ImportUpdate => ("~", "update the database (changed in the file)"),
                SyncActionKind.ImportDelete => ("-", "delete from the database (removed from the file)"),
                SyncActionKind.ExportAdd => ("+", "add to the file (new in the database)"),
                SyncActionKind.ExportUpdate => ("~", "update the file (changed in the database)"),
                SyncActionKind.ExportRemove => ("-", "remove from the file (deleted in the database)"),
                SyncActionKind.Merge => ("~", "merge: both sides changed different fields; both get the result"),
                SyncActionKind.Conflict => ("!", "CONFLICT: " + action.Reason),
                SyncActionKind.CloseConflict => ("=", "close the open conflict (both sides are equal again)"),
                SyncActionKind.SetBase => ("=", "record as agreed (both sides already equal)"),
                SyncActionKind.DropBase => ("=", "forget (gone from both sides)"),
                SyncActionKind.SkipInvalid => ("?", "skip: " + action.Reason),
                _ => (" ", action.Kind.ToString()),
            };
            text.Append(CultureInfo.InvariantCulture, $"{mark} {action.Id}: {what}\n");
            if (action.Kind == SyncActionKind.Conflict)
            {
                foreach (var field in action.ConflictingFields)
                    text.Append(CultureInfo.InvariantCulture, $"    {field}: base {TaskFields.Value(action.Base, field) ?? "(none)"}, file {TaskFields.Value(action.Yaml, field) ?? "(none)"}, database {TaskFields.Value(action.Database, field) ?? "(none)"}\n");
                continue;
            }
            // A removal needs no field list: the whole task goes.
            if (action.Kind is SyncActionKind.SetBase or SyncActionKind.DropBase or SyncActionKind.CloseConflict
                or SyncActionKind.ImportDelete or SyncActionKind.ExportRemove) continue;
            foreach (var (field, from, to) in SyncJson.FieldChanges(action))
                text.Append(CultureInfo.InvariantCulture, $"    {field}: {from ?? "(none)"} -> {to ?? "(none)"}\n");
        }
        var changes = plan.Changes.Count(a => a.Kind is not (SyncActionKind.SetBase or SyncActionKind.DropBase));
        // Counted as `status` counts pending work (SyncStatusReader): a merge changes both sides.
        text.Append(CultureInfo.InvariantCulture, $"{(changes == 0 ? "nothing to do" : $"{changes} change(s)")}: "
            + $"{plan.Actions.Count(a => a.Kind is SyncActionKind.ImportInsert or SyncActionKind.ImportUpdate or SyncActionKind.ImportDelete or SyncActionKind.Merge)} to the database, "
            + $"{plan.Actions.Count(a => a.ChangesFile)} to the file, "
            + $"{plan.Count(SyncActionKind.Merge)} merge(s), {plan.Count(SyncActionKind.Conflict)} new conflict(s), {plan.Count(SyncActionKind.Frozen)} task(s) frozen by open conflicts\n");
        if (plan.Refusal is not null)
            text.Append(CultureInfo.InvariantCulture, $"REFUSED: {plan.Refusal}\n");
        return text.ToString();
    }

    private static Command Status()
    {
        var command = new Command("status", "Last runs, the file checksum, open conflicts, pending changes, whether the file is valid");
        Run(command, async (parse, host, ct) =>
        {
            var status = await SyncStatusReader.ReadAsync(host.Runner, ct);
            if (host.Settings.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(status, JsonOutput));
            }
            else
            {
                Console.WriteLine($"file: {status.ConfigPath} ({(status.FileExists ? status.FileValid ? "valid" : $"INVALID, {status.FileProblems.Count} problem(s)" : "missing")}), checksum {status.FileChecksum[..Math.Min(12, status.FileChecksum.Length)]}");
                Console.WriteLine($"database: {status.DatabaseTasks} task(s), change counter {status.ChangeCounter} (synced: {status.SyncedChangeCounter?.ToString(CultureInfo.InvariantCulture) ?? "never"})");
                Console.WriteLine($"pending: {status.PendingImports} to the database, {status.PendingExports} to the file; open conflicts: {status.OpenConflicts}");
                foreach (var invalid in status.InvalidTasks)
                    Console.WriteLine($"invalid in the database: {invalid.Id}: {invalid.Reason}");
                if (status.Refusal is not null)
                    Console.WriteLine($"REFUSED: {status.Refusal}");
                foreach (var r in status.Replicas)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"replica {(r.Current ? "(this) " : "")}{(r.Name.Length == 0 ? "(from before replicas)" : r.Name)}: last sync {(r.LastSyncAt is { } at ? at.ToString("u", CultureInfo.InvariantCulture) : "never")}, {r.ChangesBehind} change(s) behind, {r.PendingExports} pending, {r.OpenConflicts} open conflict(s)"));
                foreach (var run in status.RecentRuns)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {run.Id} {run.Trigger} {run.Status} at {run.StartedAt:u}: +{run.Inserts} ~{run.Updates} -{run.Deletes} exported {run.Exports}, conflicts {run.Conflicts}{(run.Error is null ? "" : " — " + run.Error)}"));
            }
            if (!status.FileExists)
            {
                Console.Error.WriteLine($"schedsync: {status.ConfigPath}: no such file (`schedsync init` creates it)");
                return ExitCodes.Error;
            }
            return !status.FileValid ? ExitCodes.InvalidFile : status.OpenConflicts > 0 ? ExitCodes.ConflictsOpen
                : status.InvalidTasks.Count > 0 || status.Refusal is not null ? ExitCodes.Error : ExitCodes.Success;
        });
        return command;
    }

    private static Command History()
    {
        var task = new Argument<string?>("task") { Description = "A task id; all tasks when absent", Arity = ArgumentArity.ZeroOrOne };
        var limit = new Option<int>("--limit") { Description = "How many entries", DefaultValueFactory = _ => 50 };
        var command = new Command("history", "The audit trail: every create, update and delete with its source and actor") { task, limit };
        Run(command, async (parse, host, ct) =>
        {
            var entries = await host.Tasks.HistoryAsync(parse.GetValue(task), parse.GetValue(limit), ct);
            if (host.Settings.Json)
                Console.WriteLine(JsonSerializer.Serialize(entries.Select(CliJson.History), JsonOutput));
            else
                foreach (var e in entries)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.At:u} {e.TaskId} {e.Action} by {e.Actor} via {e.Source}{(e.SyncRunId is { } run ? $" (sync run {run})" : "")}"));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Conflicts()
    {
        var command = new Command("conflicts", "List, show and resolve conflicts");

        var all = new Option<bool>("--all") { Description = "Include resolved conflicts" };
        var list = new Command("list", "Open conflicts (all with --all)") { all };
        Run(list, async (parse, host, ct) =>
        {
            var conflicts = await host.Conflicts.ListAsync(parse.GetValue(all) ? null : "open", ct);
            if (host.Settings.Json)
                Console.WriteLine(JsonSerializer.Serialize(conflicts.Select(SyncJson.Conflict), JsonOutput));
            else if (conflicts.Count == 0)
                Console.WriteLine(parse.GetValue(all) ? "no conflicts" : "no open conflicts");
            else
                foreach (var c in conflicts)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{c.Id} {c.TaskId} {c.Status} detected {c.DetectedAt:u} fields: {string.Join(", ", c.Differences().Select(d => d.Field))}"));
            return conflicts.Any(c => c.Status == "open") ? ExitCodes.ConflictsOpen : ExitCodes.Success;
        });

        var showId = new Argument<long>("id") { Description = "The conflict id (see `conflicts list`)" };
        var show = new Command("show", "One conflict with its base, file and database versions, field by field") { showId };
        Run(show, async (parse, host, ct) =>
        {
            var c = await host.Conflicts.GetAsync(parse.GetValue(showId), ct) ?? throw new ConflictNotFoundException(parse.GetValue(showId));
            if (host.Settings.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(SyncJson.Conflict(c), JsonOutput));
                return ExitCodes.Success;
            }
            Console.WriteLine($"conflict {c.Id} on task '{c.TaskId}': {c.Status}, detected {c.DetectedAt:u}{(c.Choice is null ? "" : $", resolved {c.Choice} by {c.ResolvedBy}")}");
            if (SyncJson.DeletedOn(c) is { } deleted)
                Console.WriteLine(deleted == "yaml" ? "  deleted in the file, changed in the database" : "  deleted in the database, changed in the file");
            foreach (var d in c.Differences())
                Console.WriteLine($"  {(d.ChangedOnBothSides ? "!" : " ")} {d.Field}: base {d.Base ?? "(none)"} | file {d.Yaml ?? "(none)"} | database {d.Database ?? "(none)"}");
            return ExitCodes.Success;
        });

        var resolveId = new Argument<long>("id") { Description = "The conflict id (see `conflicts list`)" };
        var keep = new Option<string>("--keep") { Description = "yaml, db or merge", Required = true };
        keep.AcceptOnlyFromAmong("yaml", "db", "merge");
        var set = new Option<string[]>("--set") { Description = "field=value for a field changed on both sides (JSON for non-text fields)", AllowMultipleArgumentsPerToken = false };
        var resolve = new Command("resolve", "Resolve a conflict: the chosen version goes to both sides") { resolveId, keep, set };
        Run(resolve, async (parse, host, ct) =>
        {
            var choice = parse.GetValue(keep) switch { "yaml" => ResolutionChoice.KeepYaml, "db" => ResolutionChoice.KeepDb, _ => ResolutionChoice.Merge };
            var fields = TaskFields.ParseAssignments(parse.GetValue(set) ?? []);
            var resolved = await host.Conflicts.ResolveAsync(parse.GetValue(resolveId), choice, fields, $"cli:{Environment.UserName}", ct);
            if (host.Settings.Json)
                Console.WriteLine(JsonSerializer.Serialize(SyncJson.Conflict(resolved), JsonOutput));
            else
                Console.WriteLine($"conflict {resolved.Id} on task '{resolved.TaskId}' resolved: {resolved.Choice}");
            return ExitCodes.Success;
        });

        command.Subcommands.Add(list);
        command.Subcommands.Add(show);
        command.Subcommands.Add(resolve);
        return command;
    }

    private static Command Restore()
    {
        var backup = new Argument<string?>("backup") { Description = "A backup file (see --list); the newest valid one when absent", Arity = ArgumentArity.ZeroOrOne };
        var listOption = new Option<bool>("--list") { Description = "List the kept backups, newest first" };
        var revert = new Option<bool>("--revert-database")
        {
            Description = "Also apply the backup's version to the database (shown as a plan first; under the mass-deletion guard)",
        };
        var command = new Command("restore",
            "Repair the file from a backup, then write every task where it differs from the database (the database is kept)")
            { backup, listOption, AllowMassDelete, revert };
        command.SetAction(async (parse, ct) =>
        {
            var settings = CliSettings.From(parse);
            return await CliErrors.GuardAsync(settings, async () =>
            {
            CliErrors.Preflight(settings);
            var store = ConfigFileStore.Open(settings.ConfigPath);
            var backups = store.ListBackups();
            if (parse.GetValue(listOption))
            {
                if (settings.Json)
                    Console.WriteLine(JsonSerializer.Serialize(backups.Select(b => new { path = b.Path, time = b.TimeUtc, checksum_prefix = b.ChecksumPrefix, size = b.Size }), JsonOutput));
                else if (backups.Count == 0)
                    Console.WriteLine($"no backups of {settings.ConfigPath} in {store.BackupDirectory}");
                else
                    foreach (var b in backups)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{b.Path}  {b.TimeUtc:u}  {b.ChecksumPrefix}  {b.Size} bytes"));
                return ExitCodes.Success;
            }
            {
                var chosen = parse.GetValue(backup) ?? NewestValidBackup(store, backups);
                if (chosen is null)
                {
                    Console.Error.WriteLine($"schedsync: no valid backup of {settings.ConfigPath} in {store.BackupDirectory} that differs from the file");
                    return ExitCodes.Error;
                }
                var content = store.ReadBackup(chosen);
                var document = ScheduleLoader.Load(content.Bytes.Span, chosen);
                if (!document.IsValid)
                {
                    foreach (var line in document!.FormatProblems()) Console.WriteLine(line);
                    Console.Error.WriteLine($"schedsync: the backup {chosen} is invalid; nothing was restored");
                    return ExitCodes.InvalidFile;
                }
                await using var host = await CliHost.OpenAsync(settings, ct);
                var mode = parse.GetValue(revert) ? SyncMode.PreferFile : SyncMode.PreferDatabase;
                if (mode == SyncMode.PreferFile)
                {
                    // Applying an old version to the database is an explicit act: the plan is shown first.
                    var (_, plan) = await host.Runner.PlanAsync(parse.GetValue(AllowMassDelete), content, ct, mode);
                    if (!settings.Json) Console.Write(RenderPlan(plan!));
                    if (plan!.IsRefused)
                    {
                        Console.Error.WriteLine($"schedsync: {plan.Refusal}; nothing was restored");
                        return ExitCodes.Error;
                    }
                }
                var result = await host.Runner.RunAsync("cli", force: true, parse.GetValue(AllowMassDelete), source: "restore", ct: ct, mode: mode, replacement: content);
                if (settings.Json)
                {
                    Console.WriteLine(JsonSerializer.Serialize(new { restored_from = result.Status == SyncStatus.Completed ? chosen : null, database_reverted = mode == SyncMode.PreferFile, sync = SyncJson.Summary(result) }, JsonOutput));
                    return ExitCode(result);
                }
                if (result.Status == SyncStatus.Completed)
                    Console.WriteLine($"restored {settings.ConfigPath} from {chosen}"
                        + (mode == SyncMode.PreferFile ? "; the database now holds the backup's version" : $"; {result.Exports} task(s) written from the database, which was kept"));
                else if (result.Status == SyncStatus.Refused)
                    Console.Error.WriteLine($"schedsync: nothing was restored");
                PrintResult(settings.ConfigPath, result);
                return ExitCode(result);
            }
            });
        });
        return command;
    }

    /// <summary>The newest backup that is intact, valid and not what the file holds now (the rotation keeps the current one too).</summary>
    private static string? NewestValidBackup(ConfigFileStore store, IReadOnlyList<BackupInfo> backups)
    {
        var current = store.Read().Checksum;
        foreach (var b in backups)
        {
            if (current.StartsWith(b.ChecksumPrefix, StringComparison.Ordinal)) continue;
            FileSnapshot content;
            try
            {
                content = store.ReadBackup(b.Path);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                continue; // damaged or unreadable: the next older one
            }
            if (ScheduleLoader.Load(content.Bytes.Span, b.Path).IsValid) return b.Path;
        }
        return null;
    }

    private static Command Export()
    {
        var output = new Option<string?>("--output") { Description = "Write to this file instead of standard output" };
        var command = new Command("export", "Print the database's tasks as a schedule file in the canonical layout") { output };
        Run(command, async (parse, host, ct) =>
        {
            var tasks = await host.Tasks.ListAsync(ct);
            var text = host.Settings.Json
                ? JsonSerializer.Serialize(new
                {
                    version = 1,
                    tasks = tasks.Where(t => t.Task is not null).ToDictionary(t => t.Id, t => SyncJson.Task(t.Task)),
                    skipped = tasks.Where(t => t.Task is null).Select(t => new { id = t.Id, problems = t.Problems }),
                }, JsonOutput) + "\n"
                : ScheduleWriter.WriteNew(tasks.Where(t => t.Task is not null).Select(t => t.Task!));
            if (parse.GetValue(output) is { } path) await File.WriteAllTextAsync(path, text, ct);
            else Console.Write(text);
            foreach (var invalid in tasks.Where(t => t.Task is null))
                Console.Error.WriteLine($"schedsync: skipped invalid database row '{invalid.Id}': {string.Join("; ", invalid.Problems)}");
            return ExitCodes.Success;
        });
        return command;
    }
}
