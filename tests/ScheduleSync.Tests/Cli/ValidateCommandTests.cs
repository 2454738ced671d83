using System.Diagnostics;
using System.Text;
using ScheduleSync.Yaml;

namespace ScheduleSync.Tests.Cli;

/// <summary>
/// <c>schedsync validate --config PATH</c>, run as the real executable in its own process: exit code 0 valid,
/// 3 invalid, 1 missing file (SPEC §7), and one <c>path:line:column: message</c> line per problem on stdout.
/// </summary>
public sealed class ValidateCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("schedsync-validate-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private sealed record Result(int ExitCode, string[] Stdout, string Stderr);

    private Result Validate(string configPath)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = _folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[Path.Combine(AppContext.BaseDirectory, "schedsync.dll"), "validate", "--config", configPath])
            start.ArgumentList.Add(argument);
        // Flags win over the environment anyway; this keeps a developer's own settings out of the test entirely.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SCHEDSYNC_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(name);

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("schedsync validate did not finish within 30 s");
        }
        var lines = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        return new Result(process.ExitCode, lines, stderr.Result);
    }

    private static string DotnetHost()
    {
        // The test host normally runs under the same dotnet that should run schedsync.dll.
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet") return current;
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "ScheduleSync.slnx")))
                return folder.FullName;
        }
        throw new InvalidOperationException($"no folder above {AppContext.BaseDirectory} holds ScheduleSync.slnx");
    }

    [Fact]
    public void Broken_file_exits_3_and_prints_each_problem_as_path_line_column_message()
    {
        var path = Path.Combine(_folder, "schedule_config.yml");
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes("""
            version: 1
            tasks:
              backup:
                shedule: "0 3 * * *"
                command: run
                enabled: no
              Report: { schedule: "@daily", command: report }

            """));

        var result = Validate(path);

        Assert.Equal(3, result.ExitCode);
        Assert.Equal(
            [
                $"{path}:3:3: task 'backup': schedule is required (a cron expression such as \"0 3 * * *\" or a macro such as @daily)",
                $"{path}:4:5: task 'backup': unknown field 'shedule' (did you mean 'schedule'?)",
                $"{path}:6:14: task 'backup': enabled: 'no' is not a boolean here; write true or false (YAML 1.1 yes/no/on/off are not accepted)",
                $"{path}:7:3: task 'Report': task id 'Report' must match ^[a-z0-9][a-z0-9._-]{{0,127}}$ (lowercase letters, digits, '.', '_', '-')",
            ],
            result.Stdout);
        Assert.Equal(ScheduleLoader.LoadFile(path).FormatProblems(), result.Stdout);
        Assert.Contains($"{path}: invalid (4 problem(s))", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void File_with_invalid_utf8_exits_3_and_names_the_bad_byte()
    {
        var path = Path.Combine(_folder, "schedule_config.yml");
        File.WriteAllBytes(path, [.. "tasks:\n  t:\n    command: r"u8, 0xFF, .. "un\n"u8]);

        var result = Validate(path);

        Assert.Equal(3, result.ExitCode);
        Assert.Equal([$"{path}:3:15: the file is not valid UTF-8 (bad byte 0xFF at byte offset 26)"], result.Stdout);
    }

    [Fact]
    public void Sample_config_in_the_repository_exits_0()
    {
        var path = Path.Combine(RepositoryRoot(), "config", "schedule_config.yml");

        var result = Validate(path);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal([$"{path}: valid, 10 task(s)"], result.Stdout);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void Missing_file_exits_1_and_says_so()
    {
        var path = Path.Combine(_folder, "no_such_schedule.yml");

        var result = Validate(path);

        Assert.Equal(1, result.ExitCode);
        Assert.Empty(result.Stdout);
        Assert.Contains($"{path}: no such file", result.Stderr, StringComparison.Ordinal);
    }
}
