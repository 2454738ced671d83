using System.CommandLine;
using ScheduleSync.Yaml;

namespace ScheduleSync.Cli;

/// <summary>Exit codes of every command (SPEC §7).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Error = 1;
    public const int ConflictsOpen = 2;
    public const int InvalidFile = 3;
}

internal static class SchedSyncCommand
{
    public static readonly Option<string?> Config = new("--config")
    {
        Description = "The YAML file (env SCHEDSYNC_CONFIG; default ./schedule_config.yml)",
        Recursive = true,
    };

    public static readonly Option<string?> Database = new("--database")
    {
        Description = "An Npgsql connection string (env SCHEDSYNC_DATABASE); absent: a private embedded PostgreSQL cluster",
        Recursive = true,
    };

    public static readonly Option<string?> Replica = new("--replica")
    {
        Description = "This copy's name among several instances on one database (env SCHEDSYNC_REPLICA; default <hostname>:<absolute config path>)",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json") { Description = "Machine-readable output", Recursive = true };

    public static RootCommand Build()
    {
        var root = new RootCommand("ScheduleSync keeps schedule_config.yml and PostgreSQL equal, in both directions.")
        {
            Config, Database, Replica, Json,
            ValidateCommand(),
            ServeCommand.Build(),
            DbCommand.Build(),
            InitCommand.Build(),
            ReplicasCommand.Build(),
        };
        foreach (var command in SyncCommands.All())
            root.Subcommands.Add(command);
        return root;
    }

    private static Command ValidateCommand()
    {
        var command = new Command("validate", "Check the YAML file; prints one line per problem as path:line:column: message");
        command.SetAction(parse =>
        {
            var settings = CliSettings.From(parse);
            if (!File.Exists(settings.ConfigPath))
            {
                Console.Error.WriteLine($"{settings.ConfigPath}: no such file");
                return ExitCodes.Error;
            }
            var document = ScheduleLoader.LoadFile(settings.ConfigPath);
            if (settings.Json)
            {
                CliJson.Print(new
                {
                    path = settings.ConfigPath,
                    valid = document.IsValid,
                    tasks = document.Entries.Count,
                    problems = document.Problems.Select(p => new { line = p.Line, column = p.Column, message = p.Message, task_id = p.TaskId }),
                });
                return document.IsValid ? ExitCodes.Success : ExitCodes.InvalidFile;
            }
            foreach (var line in document.FormatProblems())
                Console.WriteLine(line);
            if (!document.IsValid)
            {
                Console.Error.WriteLine($"{settings.ConfigPath}: invalid ({document.Problems.Count} problem(s))");
                return ExitCodes.InvalidFile;
            }
            Console.WriteLine($"{settings.ConfigPath}: valid, {document.Entries.Count} task(s)");
            return ExitCodes.Success;
        });
        return command;
    }
}
