using System.CommandLine;
using ScheduleSync.Hosting;

namespace ScheduleSync.Cli;

internal static class ServeCommand
{
    public static Command Build()
    {
        var token = new Option<string?>("--token") { Description = "API bearer token (env SCHEDSYNC_TOKEN; visible in process listings: prefer --token-file); without one, only loopback addresses are allowed" };
        var tokenFile = new Option<string?>("--token-file") { Description = "Read the API bearer token from this file (env SCHEDSYNC_TOKEN_FILE); a trailing newline is ignored" };
        var urls = new Option<string?>("--urls") { Description = "Where to listen (env SCHEDSYNC_URLS or ASPNETCORE_URLS; default http://127.0.0.1:5080)" };
        var logFormat = new Option<string?>("--log-format") { Description = "Log lines as text (default) or json, one object per line (env SCHEDSYNC_LOG_FORMAT)" };
        logFormat.AcceptOnlyFromAmong(ServerLogging.Text, ServerLogging.Json);
        var command = new Command("serve", "Run the server: REST API, WebSocket events, file watcher, NOTIFY listener, periodic sync, /metrics") { token, tokenFile, urls, logFormat };
        command.SetAction(async (parse, ct) =>
        {
            // --token, --token-file, --urls and --log-format reach the server through the configuration (AppConfiguration.SwitchMappings).
            var settings = CliSettings.From(parse);
            WebApplication? app = null;
            try
            {
                CliErrors.Preflight(settings);
                app = await ServerHost.BuildServerAsync(settings.App.Configuration, ct: ct);
                try
                {
                    await app.StartAsync(CancellationToken.None);
                }
                catch
                {
                    // Started hosted services (and the embedded cluster) are stopped before saying why.
                    await app.StopAsync(CancellationToken.None);
                    throw;
                }
                // SIGINT reaches System.CommandLine, which cancels ct: that stops the server (SIGTERM reaches the host itself).
                await app.WaitForShutdownAsync(ct);
                return ExitCodes.Success;
            }
            catch (System.Net.Sockets.SocketException e)
            {
                // Kestrel could not bind (an address of no interface here, say): the address is the thing to fix.
                var urls = settings.App.Configuration[AppConfiguration.UrlsKey] is { Length: > 0 } configured ? configured : new ServerOptions().Urls;
                Console.Error.WriteLine($"schedsync: cannot listen on {urls}: {e.Message} (check --urls or SCHEDSYNC_URLS)");
                return ExitCodes.Error;
            }
            catch (Exception e) when (CliErrors.Describe(e, settings) is { } message)
            {
                Console.Error.WriteLine($"schedsync: {message}");
                return e is CliException cli ? cli.ExitCode : ExitCodes.Error;
            }
            finally
            {
                if (app is not null) await app.DisposeAsync();
            }
        });
        return command;
    }
}
