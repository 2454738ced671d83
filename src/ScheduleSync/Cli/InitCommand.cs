using System.CommandLine;
using ScheduleSync.Files;
using ScheduleSync.Sync;
using ScheduleSync.Yaml;

namespace ScheduleSync.Cli;

/// <summary>
/// <c>schedsync init</c>: creates a minimal valid schedule file (or one holding the database's tasks when it has
/// some, recorded by a sync) and offers the .gitignore lines for the files schedsync keeps next to it.
/// </summary>
internal static class InitCommand
{
    public const string MinimalFile = "version: 1\ntasks: {}\n";

    /// <summary>What schedsync keeps next to the config file and a repository should not track (see ConfigFileStore).</summary>
    public static readonly string[] GitignoreLines = ["*.lock", "*.bak", ".*.tmp-*", ".schedsync-backups/", ".schedsync/"];

    public static Command Build()
    {
        var gitignore = new Option<bool>("--gitignore") { Description = "Append the missing lines for schedsync's sidecar files to .gitignore in the config folder" };
        var command = new Command("init", "Create a minimal schedule file (or one with the database's tasks) and show the .gitignore lines for its sidecar files")
        {
            gitignore,
        };
        command.SetAction(async (parse, ct) =>
        {
            var settings = CliSettings.From(parse);
            return await CliErrors.GuardAsync(settings, async () =>
            {
                CliErrors.Preflight(settings);
                var path = settings.ConfigPath;
                var created = false;
                var fromDatabase = 0;
                SyncResult? sync = null;
                if (!File.Exists(path))
                {
                    await using var host = await CliHost.OpenAsync(settings, ct);
                    var tasks = (await host.Tasks.ListAsync(ct)).Where(t => t.Task is not null).Select(t => t.Task!).ToList();
                    fromDatabase = tasks.Count;
                    CreateFile(host.Store, tasks.Count == 0 ? MinimalFile : ScheduleWriter.WriteNew(tasks));
                    created = true;
                    // The sync records both sides as agreed, so the next run starts from here.
                    sync = await host.Runner.RunAsync("cli", force: true, ct: ct);
                }

                var gitignorePath = Path.Combine(Path.GetDirectoryName(path)!, ".gitignore");
                var added = parse.GetValue(gitignore) ? AppendGitignore(gitignorePath) : [];
                if (settings.Json)
                {
                    CliJson.Print(new
                    {
                        path,
                        created,
                        tasks_from_database = fromDatabase,
                        sync = sync is null ? null : SyncJson.Summary(sync),
                        gitignore_path = gitignorePath,
                        gitignore_lines = GitignoreLines,
                        gitignore_added = added,
                    });
                }
                else
                {
                    Console.WriteLine(created
                        ? $"created {path}" + (fromDatabase > 0 ? $" with the database's {fromDatabase} task(s)" : " (no tasks yet)")
                        : $"{path} already exists; left as it is");
                    if (parse.GetValue(gitignore))
                        Console.WriteLine(added.Count == 0 ? $"{gitignorePath} already ignores schedsync's files" : $"added to {gitignorePath}: {string.Join(" ", added)}");
                    else
                        Console.WriteLine($"to keep schedsync's sidecar files out of git, add these lines to {gitignorePath} (or run `schedsync init --gitignore`):\n  "
                            + string.Join("\n  ", GitignoreLines));
                }
                return sync is null ? ExitCodes.Success : SyncCommands.ExitCode(sync);
            });
        });
        return command;
    }

    /// <summary>Writes a file that must not exist yet, under the file lock like every other write.</summary>
    internal static void CreateFile(ConfigFileStore store, string text)
    {
        using var fileLock = store.Lock();
        if (store.WriteLocked(FileSnapshot.AbsentChecksum, text) is WriteResult.ChangedMeanwhile)
            throw new CliException($"{store.ConfigPath} appeared meanwhile; left as it is");
    }

    /// <summary>Appends the lines .gitignore does not have yet; returns them.</summary>
    private static List<string> AppendGitignore(string gitignorePath)
    {
        var existing = File.Exists(gitignorePath) ? File.ReadAllLines(gitignorePath) : [];
        var present = existing.Select(l => l.Trim()).ToHashSet(StringComparer.Ordinal);
        var missing = GitignoreLines.Where(l => !present.Contains(l)).ToList();
        if (missing.Count == 0) return missing;
        var text = File.Exists(gitignorePath) ? File.ReadAllText(gitignorePath) : "";
        var prefix = text.Length > 0 && !text.EndsWith('\n') ? "\n" : "";
        File.AppendAllText(gitignorePath, prefix + "# schedsync's sidecar files (lock, backups, temp files, embedded database)\n" + string.Join("\n", missing) + "\n");
        return missing;
    }
}
