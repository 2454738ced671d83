using System.CommandLine;
using System.CommandLine.Parsing;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

/// <summary>
/// A command's settings: the one configuration (<see cref="AppConfiguration"/>: appsettings.json in the working
/// directory, then next to the config file, then the environment, then the options given on the command line) and
/// whether to print JSON.
/// </summary>
internal sealed record CliSettings(AppSettings App, bool Json)
{
    public string ConfigPath => App.ConfigPath;
    public string? Database => App.Database;
    public string DataDirectory => App.DataDirectory;
    public string? DataDirectoryHint => App.DataDirectoryHint;

    public static CliSettings From(ParseResult parse) =>
        new(AppSettings.From(AppConfiguration.Build(Switches(parse))), parse.GetValue(SchedSyncCommand.Json));

    /// <summary>The options given on the command line (not their defaults), by name: the command-line source.</summary>
    private static IEnumerable<KeyValuePair<string, string?>> Switches(ParseResult parse)
    {
        for (SymbolResult? result = parse.CommandResult; result is not null; result = result.Parent)
        {
            if (result is not CommandResult command) continue;
            foreach (var option in command.Children.OfType<OptionResult>())
            {
                if (option.Implicit || option.Option.ValueType != typeof(string)) continue;
                yield return new(option.Option.Name, option.GetValueOrDefault<string?>());
            }
        }
    }

    /// <summary>This copy's replica name (SPEC §8); throws <see cref="ArgumentException"/> naming the setting when it is not a valid name.</summary>
    public ReplicaName Replica => App.Replica;
}
