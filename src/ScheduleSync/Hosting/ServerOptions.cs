namespace ScheduleSync.Hosting;

/// <summary>Server settings (section "ScheduleSync:Server"; README "Configuration").</summary>
public sealed class ServerOptions
{
    public string Urls { get; set; } = "http://127.0.0.1:5080";
    /// <summary>The API bearer token: <see cref="TokenFile"/>'s content when that is the setting that wins.</summary>
    public string? Token { get; set; }
    /// <summary>A file holding the token (SCHEDSYNC_TOKEN_FILE, --token-file); read once at start.</summary>
    public string? TokenFile { get; set; }
    /// <summary>The safety-net sync interval.</summary>
    public TimeSpan PeriodicInterval { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>How long the watcher waits after a file event for the editor to finish.</summary>
    public TimeSpan WatchDebounce { get; set; } = TimeSpan.FromMilliseconds(50);
    /// <summary>Fallback poll of the file (stat, then checksum when it moved), for file systems without events.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;
    /// <summary>Host names the server answers to besides its bound addresses and localhost ("*.example.com" allowed).</summary>
    public string[] AllowedHosts { get; set; } = [];
    /// <summary>Origins (scheme://host:port) of a separately hosted UI that may send state-changing requests.</summary>
    public string[] AllowedOrigins { get; set; } = [];
}
