using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Cli;

/// <summary><c>schedsync init</c>: a minimal valid file (or the database's tasks), and the .gitignore lines for the sidecar files.</summary>
public class InitCommandTests
{
    private static async Task<ProcessOutcome> CliAsync(SyncTestBed bed, params string[] args) =>
        await SchedSyncProcess.RunAsync([.. args, "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);

    private static void AssertExit(int expected, ProcessOutcome outcome) =>
        Assert.True(outcome.ExitCode == expected && !outcome.TimedOut, $"expected exit {expected}, got {outcome}");

    [Fact]
    public async Task Init_with_an_empty_database_creates_a_minimal_valid_file_and_offers_the_gitignore_lines()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_init_empty", yaml: null);

        var outcome = await CliAsync(bed, "init");

        AssertExit(0, outcome);
        Assert.Equal("version: 1\ntasks: {}\n", bed.ReadFile());
        Assert.Contains($"created {bed.ConfigPath} (no tasks yet)", outcome.Stdout, StringComparison.Ordinal);
        foreach (var line in (string[])["*.lock", "*.bak", ".schedsync-backups/"])
            Assert.Contains("\n  " + line + "\n", outcome.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(bed.Folder, ".gitignore")));
        AssertExit(0, await CliAsync(bed, "validate"));
        AssertExit(0, await CliAsync(bed, "status"));
    }

    [Fact]
    public async Task Init_with_tasks_in_the_database_writes_them_and_records_the_sync()
    {
        await using var bed = await SyncTestBed.SyncedAsync("cli_init_db");
        File.Delete(bed.ConfigPath);

        var outcome = await CliAsync(bed, "init");

        AssertExit(0, outcome);
        Assert.Contains("with the database's 3 task(s)", outcome.Stdout, StringComparison.Ordinal);
        await bed.AssertConvergedAsync();
        var status = await CliAsync(bed, "status");
        AssertExit(0, status);
        Assert.Contains("pending: 0 to the database, 0 to the file", status.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Init_gitignore_appends_only_the_missing_lines_and_keeps_an_existing_file_as_it_is()
    {
        await using var bed = await SyncTestBed.CreateAsync("cli_init_gitignore");
        var gitignore = Path.Combine(bed.Folder, ".gitignore");
        File.WriteAllText(gitignore, "build/\n*.lock");
        var before = bed.ReadFileBytes();

        var first = await CliAsync(bed, "init", "--gitignore");
        var second = await CliAsync(bed, "init", "--gitignore");

        AssertExit(0, first);
        AssertExit(0, second);
        Assert.Equal(before, bed.ReadFileBytes());
        Assert.Contains("already exists; left as it is", first.Stdout, StringComparison.Ordinal);
        var lines = File.ReadAllLines(gitignore);
        Assert.Equal("build/", lines[0]);
        Assert.Equal(1, lines.Count(l => l == "*.lock"));
        Assert.Contains("*.bak", lines);
        Assert.Contains(".schedsync-backups/", lines);
        Assert.Contains("already ignores", second.Stdout, StringComparison.Ordinal);
    }
}
