using System.CommandLine;
using System.Globalization;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

/// <summary><c>schedsync replicas</c>: the copies of the file syncing with this database (SPEC §8), and forgetting one.</summary>
internal static class ReplicasCommand
{
    public static Command Build()
    {
        var command = new Command("replicas", "The replicas (instances, each with its own copy of the file) syncing with this database: last sync, how far behind, what waits");
        command.SetAction((parse, ct) => WithHost(parse, ct, async (host, settings) =>
        {
            var replicas = await Replicas.ListAsync(host.DataSource, host.Runner.Replica, ct);
            if (settings.Json)
            {
                CliJson.Print(replicas);
                return ExitCodes.Success;
            }
            if (replicas.Count == 0)
                Console.WriteLine("no replica has synced with this database yet");
            foreach (var r in replicas)
            {
                var who = r.Name.Length == 0 ? "(from before replicas: the first replica that syncs adopts it)" : r.Name;
                var last = r.LastSyncAt is { } at ? at.ToString("u", CultureInfo.InvariantCulture) : "never";
                var failed = r.LastRunStatus == "failed" ? $"; last run failed: {r.LastError}" : "";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(r.Current ? "*" : " ")} {who}: last sync {last}, {r.ChangesBehind} change(s) behind, {r.PendingExports} pending export(s), {r.OpenConflicts} open conflict(s){failed}"));
            }
            return ExitCodes.Success;
        }));

        var name = new Argument<string>("name") { Description = "The replica to forget (as `schedsync replicas` lists it)" };
        var forget = new Command("forget", "Drop a replica gone for good and its state (base, sync state, conflicts); its run history stays") { name };
        forget.SetAction((parse, ct) => WithHost(parse, ct, async (host, settings) =>
        {
            var replica = parse.GetValue(name)!;
            if (!await Replicas.ForgetAsync(host.DataSource, replica, ct))
                throw new CliException($"no replica named '{replica}' (`schedsync replicas` lists them)");
            if (settings.Json) CliJson.Print(new { forgotten = replica });
            else Console.WriteLine($"forgot replica '{replica}'");
            return ExitCodes.Success;
        }));
        command.Subcommands.Add(forget);
        return command;
    }

    private static Task<int> WithHost(ParseResult parse, CancellationToken ct, Func<CliHost, CliSettings, Task<int>> body)
    {
        var settings = CliSettings.From(parse);
        return CliErrors.GuardAsync(settings, async () =>
        {
            CliErrors.Preflight(settings, needsConfigFolder: settings.Database is null);
            await using var host = await CliHost.OpenAsync(settings, ct);
            return await body(host, settings);
        });
    }
}
