using System.Net;
using System.Net.Sockets;

namespace ScheduleSync.Hosting;

/// <summary>A setting the server cannot start with; the message says which and what to do (the CLI prints it, exit 1).</summary>
internal sealed class StartupException(string message) : Exception(message);

/// <summary>What <c>serve</c> checks before it starts anything: the token, the log format, the ports.</summary>
internal static class ServerStartChecks
{
    /// <summary>
    /// The token: <c>ScheduleSync:Server:Token</c>, or the content of <c>ScheduleSync:Server:TokenFile</c>, whichever
    /// comes from the source that wins (a flag over the environment over a file); both in the same source is an error.
    /// </summary>
    public static string? ResolveToken(IConfiguration configuration)
    {
        var tokenFrom = AppConfiguration.Winner(configuration, AppConfiguration.TokenKey);
        var fileFrom = AppConfiguration.Winner(configuration, AppConfiguration.TokenFileKey);
        if (configuration is not IConfigurationRoot root)
            return NonEmpty(configuration[AppConfiguration.TokenKey]);
        if (tokenFrom is null && fileFrom is null) return null;
        var providers = root.Providers.ToList();
        if (tokenFrom is not null && tokenFrom == fileFrom)
            throw new StartupException($"set {AppConfiguration.Describe(tokenFrom, AppConfiguration.TokenKey)} or {AppConfiguration.Describe(fileFrom, AppConfiguration.TokenFileKey)}, not both");
        if (fileFrom is null || (tokenFrom is not null && providers.IndexOf(tokenFrom) > providers.IndexOf(fileFrom)))
        {
            var token = configuration[AppConfiguration.TokenKey];
            return NonEmpty(token?.Trim()) is null
                ? throw new StartupException($"{AppConfiguration.Describe(tokenFrom!, AppConfiguration.TokenKey)} is empty")
                : token;
        }
        return ReadTokenFile(configuration[AppConfiguration.TokenFileKey] ?? "", AppConfiguration.Describe(fileFrom, AppConfiguration.TokenFileKey));
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
            throw new StartupException($"cannot read the token file {path} ({source}): {e.Message}");
        }
        var trimmed = text.TrimEnd('\r', '\n');
        if (trimmed.Trim().Length == 0) throw new StartupException($"the token file {path} ({source}) is empty");
        if (trimmed.Any(char.IsControl) || trimmed.Trim().Length != trimmed.Length)
            throw new StartupException($"the token file {path} ({source}) must hold the token alone on one line (no spaces or control characters around it)");
        return trimmed;
    }

    /// <summary>
    /// Fails before the database is started when an address of <paramref name="urls"/> is already taken (Kestrel would
    /// find out only after the start-up sync, and log its stack trace). Names it cannot bind itself are left to Kestrel.
    /// </summary>
    public static void CheckPortsFree(string urls)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var address = BindingAddress.Parse(url); // checked by OptionsChecks.Server
            if (address.IsUnixPipe || address.Port == 0) continue;
            IPAddress ip;
            if (address.Host is "*" or "+" or "0.0.0.0") ip = IPAddress.Any;
            else if (address.Host is "localhost") ip = IPAddress.Loopback;
            else if (!IPAddress.TryParse(address.Host.Trim('[', ']'), out ip!)) continue;
            var listener = new TcpListener(ip, address.Port) { ExclusiveAddressUse = false };
            try
            {
                listener.Start();
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                throw new StartupException($"cannot listen on {url}: the address is already in use — another program (perhaps another `schedsync serve`) has port {address.Port}; stop it or choose another address with --urls or SCHEDSYNC_URLS");
            }
            catch (SocketException)
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
}
