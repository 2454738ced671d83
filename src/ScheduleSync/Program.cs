using System.CommandLine;
using ScheduleSync.Cli;

var parse = SchedSyncCommand.Build().Parse(args);
// serve stops through its host on SIGTERM/Ctrl+C (hosted services stop, the running sync finishes, the shutdown is
// logged); System.CommandLine's own handler would race it and end the process after 2 s, losing the last log lines.
var serve = parse.CommandResult.Command.Name == "serve";
return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = serve ? null : TimeSpan.FromSeconds(2) });
