using System.CommandLine;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;

namespace ScheduleSync.Cli;

internal static class ServeCommand
{
    public static Command Build()
    {
        var token = new Option<string?>("--token") { Description = "API bearer token (env SCHEDSYNC_TOKEN); without one, only loopback addresses are allowed" };
        var urls = new Option<string?>("--urls") { Description = "Where to listen (env SCHEDSYNC_URLS; default http://127.0.0.1:5080)" };
        var command = new Command("serve", "Run the server: REST API, WebSocket events, file watcher, NOTIFY listener, periodic sync") { token, urls };
        command.SetAction(async (parse, ct) =>
        {
            var settings = CliSettings.From(parse);
            var server = new ServerOptions();
            CliSettings.Configuration().GetSection("ScheduleSync:Server").Bind(server);
            server.Token = parse.GetValue(token) ?? NonEmpty(Environment.GetEnvironmentVariable("SCHEDSYNC_TOKEN")) ?? server.Token;
            server.Urls = parse.GetValue(urls) ?? NonEmpty(Environment.GetEnvironmentVariable("SCHEDSYNC_URLS")) ?? server.Urls;
            try
            {
                await using var app = await ServerHost.BuildServerAsync(settings, server, ct: ct);
                await app.RunAsync();
                return ExitCodes.Success;
            }
            catch (Exception e) when (e is InvalidOperationException or EmbeddedPostgresException or Npgsql.NpgsqlException or IOException)
            {
                Console.Error.WriteLine($"schedsync: {e.Message}");
                return ExitCodes.Error;
            }
        });
        return command;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
