using System.Globalization;
using Microsoft.Extensions.Configuration;
using ScheduleSync.Hosting;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>
/// The configuration an in-process server is built from (<see cref="ServerHost.BuildServerAsync"/>): the keys a user
/// would set, in memory, so tests go through the same binding and checks as <c>schedsync serve</c>.
/// </summary>
internal static class TestConfiguration
{
    public static IConfigurationRoot For(string configPath, string? database, string dataDirectory, ServerOptions? server = null)
    {
        var values = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            [AppConfiguration.ConfigKey] = configPath,
            [AppConfiguration.DatabaseKey] = database,
            [AppConfiguration.DataDirectoryKey] = dataDirectory,
        };
        if (server is not null)
        {
            const string s = AppConfiguration.ServerSection;
            values[$"{s}:Urls"] = server.Urls;
            values[$"{s}:Token"] = server.Token;
            values[$"{s}:TokenFile"] = server.TokenFile;
            values[$"{s}:PeriodicInterval"] = server.PeriodicInterval.ToString("c", CultureInfo.InvariantCulture);
            values[$"{s}:WatchDebounce"] = server.WatchDebounce.ToString("c", CultureInfo.InvariantCulture);
            values[$"{s}:PollInterval"] = server.PollInterval.ToString("c", CultureInfo.InvariantCulture);
            values[$"{s}:MaxRequestBodyBytes"] = server.MaxRequestBodyBytes.ToString(CultureInfo.InvariantCulture);
            for (var i = 0; i < server.AllowedHosts.Length; i++) values[$"{s}:AllowedHosts:{i}"] = server.AllowedHosts[i];
            for (var i = 0; i < server.AllowedOrigins.Length; i++) values[$"{s}:AllowedOrigins:{i}"] = server.AllowedOrigins[i];
        }
        return new ConfigurationBuilder().AddInMemoryCollection(values.Where(v => v.Value is not null)).Build();
    }
}
