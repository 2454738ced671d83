using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace ScheduleSync.Hosting;

/// <summary>
/// What the server answers to, known once Kestrel has bound: requests wait on <see cref="Ready"/> (so none is served
/// before the loopback rule was checked) and are then matched against <see cref="IsAllowedHost"/>.
/// </summary>
internal sealed class ListenState(IOptions<ServerOptions> options)
{
    private static readonly string[] LoopbackNames = ["localhost", "127.0.0.1", "::1"];
    private readonly TaskCompletionSource<bool> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private HashSet<string> _hosts = [];
    private string[] _hostSuffixes = [];
    private bool _anyHost;
    private bool _anyIpLiteral;

    /// <summary>True once the bound addresses passed the check; false when the server refused to run.</summary>
    public Task<bool> Ready => _ready.Task;

    public IReadOnlyList<string> AllowedOrigins { get; } = [.. options.Value.AllowedOrigins.Select(NormalizeOrigin).OfType<string>()];

    public void Open(IEnumerable<string> boundAddresses)
    {
        var hosts = new HashSet<string>(LoopbackNames, StringComparer.Ordinal);
        foreach (var address in boundAddresses)
        {
            if (ListenAddresses.HostOf(address) is not { } host) continue;
            // Bound to every interface: the machine's addresses are not known here, but an IP literal in Host cannot
            // be a rebinding attack (the page's origin is then that address itself), so any IP literal is accepted.
            if (host is "0.0.0.0" or "::" or "*" or "+") _anyIpLiteral = true;
            else hosts.Add(host);
        }
        var suffixes = new List<string>();
        foreach (var configured in options.Value.AllowedHosts.Select(NormalizeHost))
        {
            if (configured == "*") _anyHost = true;
            else if (configured.StartsWith("*.", StringComparison.Ordinal)) suffixes.Add(configured[1..]);
            else if (configured.Length > 0) hosts.Add(configured);
        }
        _hosts = hosts;
        _hostSuffixes = [.. suffixes];
        _ready.TrySetResult(true);
    }

    public void Refuse() => _ready.TrySetResult(false);

    public bool IsAllowedHost(HostString host)
    {
        // HTTP/1.0 without a Host header: not a browser, so not a rebinding attack.
        if (!host.HasValue) return true;
        var name = NormalizeHost(host.Host);
        if (_anyHost || _hosts.Contains(name)) return true;
        if (_anyIpLiteral && IPAddress.TryParse(name, out _)) return true;
        foreach (var suffix in _hostSuffixes)
            if (name.EndsWith(suffix, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>Lower case, no IPv6 brackets, no trailing dot ("LocalHost." is localhost).</summary>
    public static string NormalizeHost(string host) => host.Trim().TrimStart('[').TrimEnd(']').TrimEnd('.').ToLowerInvariant();

    /// <summary>"scheme://host:port" with the port made explicit, or null for something that is not an origin.</summary>
    public static string? NormalizeOrigin(string origin) =>
        Uri.TryCreate(origin.Trim(), UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
            ? $"{uri.Scheme}://{NormalizeHost(uri.Host)}:{uri.Port}"
            : null;
}

internal static class ListenAddresses
{
    /// <summary>
    /// True for an address only this machine can reach: a loopback IP, <c>localhost</c>, or a Unix socket. A wildcard
    /// (<c>*</c>, <c>+</c>, <c>0.0.0.0</c>, <c>[::]</c>) or anything else is not.
    /// </summary>
    public static bool IsLoopback(string address)
    {
        if (address.Contains("://unix:", StringComparison.OrdinalIgnoreCase)) return true;
        var host = HostOf(address);
        return host == "localhost" || (host is not null && IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>The host of a listen address such as <c>http://[::1]:5080</c> or <c>http://*:80</c>, normalized.</summary>
    public static string? HostOf(string address)
    {
        var rest = address.Trim();
        var scheme = rest.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return null;
        rest = rest[(scheme + 3)..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0) rest = rest[..slash];
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']', StringComparison.Ordinal);
            return close < 0 ? null : ListenState.NormalizeHost(rest[..(close + 1)]);
        }
        var colon = rest.LastIndexOf(':');
        return ListenState.NormalizeHost(colon >= 0 ? rest[..colon] : rest);
    }
}

/// <summary>
/// The loopback rule, checked on the addresses Kestrel actually bound, whatever configured them (<c>--urls</c>,
/// <c>SCHEDSYNC_URLS</c>, <c>ASPNETCORE_URLS</c>, a <c>Kestrel:Endpoints</c> section in a file or the environment):
/// without a token, one address beyond loopback stops the start before any request is served.
/// </summary>
internal sealed partial class ListenAddressCheck(IServer server, ListenState state, IOptions<ServerOptions> options, ILogger<ListenAddressCheck> logger)
    : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
        var list = string.Join(", ", addresses);
        if (string.IsNullOrEmpty(options.Value.Token))
        {
            var open = addresses.Where(a => !ListenAddresses.IsLoopback(a)).ToList();
            if (open.Count > 0 || addresses.Count == 0)
            {
                state.Refuse();
                var message = $"refusing to serve on {(open.Count > 0 ? string.Join(", ", open) : "unknown addresses")} without an API token: "
                    + "set --token, --token-file or SCHEDSYNC_TOKEN(_FILE), or listen on loopback only (127.0.0.1, [::1], localhost)";
                LogRefused(logger, message);
                throw new InvalidOperationException(message);
            }
            LogLoopbackOnly(logger, list);
        }
        else
        {
            LogListening(logger, list);
        }
        state.Open(addresses);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "listening on {Addresses}: loopback only, as no API token is configured (set --token or --token-file to listen elsewhere)")]
    private static partial void LogLoopbackOnly(ILogger logger, string addresses);

    [LoggerMessage(Level = LogLevel.Information, Message = "listening on {Addresses}; the API needs the bearer token")]
    private static partial void LogListening(ILogger logger, string addresses);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
