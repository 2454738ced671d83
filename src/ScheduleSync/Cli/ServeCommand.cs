using System.CommandLine;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;

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
            var settings = CliSettings.From(parse);
            var server = new ServerOptions();
            CliSettings.Configuration().GetSection("ScheduleSync:Server").Bind(server);
            server.Urls = parse.GetValue(urls) ?? NonEmpty(Environment.GetEnvironmentVariable("SCHEDSYNC_URLS"))
                ?? NonEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_URLS")) ?? server.Urls;
            WebApplication? app = null;
            try
            {
                CliErrors.Preflight(settings);
                CheckPortsFree(server.Urls);
                server.Token = ResolveToken(parse.GetValue(token), parse.GetValue(tokenFile)) ?? server.Token;
                server.LogFormat = ServerLogging.ResolveFormat(parse.GetValue(logFormat), CliSettings.Configuration());
                app = await ServerHost.BuildServerAsync(settings, server, ct: ct);
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
                Console.Error.WriteLine($"schedsync: cannot listen on {server.Urls}: {e.Message} (check --urls or SCHEDSYNC_URLS)");
                return ExitCodes.Error;
            }
            catch (Exception e) when (e is TokenFileException || CliErrors.Describe(e, settings) is not null)
            {
                Console.Error.WriteLine($"schedsync: {(e is TokenFileException ? e.Message : CliErrors.Describe(e, settings))}");
                return e is CliException cli ? cli.ExitCode : ExitCodes.Error;
            }
            finally
            {
                if (app is not null) await app.DisposeAsync();
            }
        });
        return command;
    }

    /// <summary>A flag wins over the environment; a token given twice at the same level is an error, not a guess.</summary>
    private static string? ResolveToken(string? flag, string? flagFile)
    {
        if (flag is not null && flagFile is not null) throw new TokenFileException("give --token or --token-file, not both");
        if (flag is not null) return NonEmpty(flag) ?? throw new TokenFileException("--token is empty");
        if (flagFile is not null) return ReadTokenFile(flagFile, "--token-file");
        var env = NonEmpty(Environment.GetEnvironmentVariable("SCHEDSYNC_TOKEN"));
        var envFile = NonEmpty(Environment.GetEnvironmentVariable("SCHEDSYNC_TOKEN_FILE"));
        if (env is not null && envFile is not null) throw new TokenFileException("set SCHEDSYNC_TOKEN or SCHEDSYNC_TOKEN_FILE, not both");
        return env ?? (envFile is null ? null : ReadTokenFile(envFile, "SCHEDSYNC_TOKEN_FILE"));
    }

    private static string ReadTokenFile(string path, string source)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            // The message names the file, never its content.
            throw new TokenFileException($"cannot read the token file {path} ({source}): {e.Message}");
        }
        var trimmed = text.TrimEnd('\r', '\n');
        if (trimmed.Trim().Length == 0) throw new TokenFileException($"the token file {path} ({source}) is empty");
        if (trimmed.Any(char.IsControl) || trimmed.Trim().Length != trimmed.Length)
            throw new TokenFileException($"the token file {path} ({source}) must hold the token alone on one line (no spaces or control characters around it)");
        return trimmed;
    }

    /// <summary>
    /// Fails before the database is started when an address of <paramref name="urls"/> is already taken (Kestrel would
    /// find out only after the start-up sync, and log its stack trace). Names it cannot bind itself are left to Kestrel.
    /// </summary>
    private static void CheckPortsFree(string urls)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            Microsoft.AspNetCore.Http.BindingAddress address;
            try
            {
                address = Microsoft.AspNetCore.Http.BindingAddress.Parse(url);
            }
            catch (FormatException e)
            {
                throw new CliException($"--urls: '{url}' is not a URL like http://127.0.0.1:5080 ({e.Message})");
            }
            if (address.IsUnixPipe || address.Port == 0) continue;
            System.Net.IPAddress ip;
            if (address.Host is "*" or "+" or "0.0.0.0") ip = System.Net.IPAddress.Any;
            else if (address.Host is "localhost") ip = System.Net.IPAddress.Loopback;
            else if (!System.Net.IPAddress.TryParse(address.Host.Trim('[', ']'), out ip!)) continue;
            var listener = new System.Net.Sockets.TcpListener(ip, address.Port) { ExclusiveAddressUse = false };
            try
            {
                listener.Start();
            }
            catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
            {
                throw new CliException($"cannot listen on {url}: the address is already in use — another program (perhaps another `schedsync serve`) has port {address.Port}; stop it or choose another address with --urls or SCHEDSYNC_URLS");
            }
            catch (System.Net.Sockets.SocketException)
            {
                continue; // not ours to judge (no such interface, permission): Kestrel says what is wrong
            }
            finally
            {
                listener.Stop();
            }
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private sealed class TokenFileException(string message) : Exception(message);
}
