namespace ScheduleSync.Tests.Docs;

/// <summary>docs/cli.md is the output of scripts/cli-reference.sh: it cannot drift from the commands' --help.</summary>
public sealed class DocsCliReferenceTests
{
    [Fact]
    public async Task Cli_reference_matches_the_current_help_output()
    {
        var current = await DocsFiles.RunAsync("bash", [DocsFiles.Path("scripts/cli-reference.sh"), "-"],
            new Dictionary<string, string> { ["SCHEDSYNC"] = DocsFiles.SchedSyncCommand });
        var committed = await File.ReadAllTextAsync(DocsFiles.Path("docs/cli.md"));

        Assert.Contains("## `schedsync conflicts resolve`", current, StringComparison.Ordinal);
        Assert.True(committed == current,
            "docs/cli.md does not match `schedsync … --help`: run scripts/cli-reference.sh (after a Release build) and commit docs/cli.md\n"
            + DocsFiles.FirstDifference(committed, current));
    }
}
