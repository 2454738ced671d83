using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;
using System.Collections;

namespace ScheduleSync.Hosting;

/// <summary>
/// The one configuration every command reads (README "Configuration"). Sources, later wins:
/// <list type="number">
/// <item><c>appsettings.json</c> in the working directory;</item>
/// <item><c>appsettings.json</c> next to the config file (read once when that is the same folder);</item>
/// <item>the environment: <c>ASPNETCORE_*</c> (prefix removed), then every variable by its .NET name
/// (<c>ScheduleSync__Server__Urls</c>, <c>Kestrel__Endpoints__…</c>), then the <c>SCHEDSYNC_*</c> names of
/// <see cref="EnvironmentMappings"/>;</item>
/// <item>the command line, through <see cref="SwitchMappings"/>.</item>
/// </list>
/// Where the config file is (<c>ScheduleSync:Config</c>) is decided before the file next to it is read, so only the
/// command line, the environment and the working directory's <c>appsettings.json</c> can set it.
/// </summary>
internal static class AppConfiguration
{
    public const string Section = "ScheduleSync";
    public const string ConfigKey = "ScheduleSync:Config";
    public const string DatabaseKey = "ScheduleSync:Database";
    public const string DataDirectoryKey = "ScheduleSync:DataDirectory";
    public const string ReplicaKey = "ScheduleSync:Replica";
    public const string ServerSection = "ScheduleSync:Server";
    public const string UrlsKey = "ScheduleSync:Server:Urls";
    public const string TokenKey = "ScheduleSync:Server:Token";
    public const string TokenFileKey = "ScheduleSync:Server:TokenFile";
    public const string SyncSection = "ScheduleSync:Sync";
    public const string EventsSection = "ScheduleSync:Events";
    public const string LogFormatKey = "ScheduleSync:Logging:Format";
    public const string FileName = "appsettings.json";

    /// <summary>Environment variable → key; a later line wins over an earlier one for the same key. Empty values are unset.</summary>
    public static readonly IReadOnlyList<(string Variable, string Key)> EnvironmentMappings =
    [
        ("SCHEDSYNC_CONFIG", ConfigKey),
        ("SCHEDSYNC_DATABASE", DatabaseKey),
        ("SCHEDSYNC_DATA_DIR", DataDirectoryKey),
        ("SCHEDSYNC_REPLICA", ReplicaKey),
        ("ASPNETCORE_URLS", UrlsKey),
        ("SCHEDSYNC_URLS", UrlsKey),
        ("SCHEDSYNC_TOKEN", TokenKey),
        ("SCHEDSYNC_TOKEN_FILE", TokenFileKey),
        ("SCHEDSYNC_LOG_FORMAT", LogFormatKey),
    ];

    /// <summary>Command-line option → key (the options themselves are declared by the commands).</summary>
    public static readonly IReadOnlyDictionary<string, string> SwitchMappings = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--config"] = ConfigKey,
        ["--database"] = DatabaseKey,
        ["--replica"] = ReplicaKey,
        ["--urls"] = UrlsKey,
        ["--token"] = TokenKey,
        ["--token-file"] = TokenFileKey,
        ["--log-format"] = LogFormatKey,
    };

    /// <summary>
    /// Builds the configuration from the sources above; <paramref name="switches"/> are the command-line options given
    /// (option name as in <see cref="SwitchMappings"/> → value).
    /// </summary>
    public static IConfigurationRoot Build(IEnumerable<KeyValuePair<string, string?>> switches, string? workingDirectory = null, IDictionary? environment = null)
    {
        workingDirectory ??= Directory.GetCurrentDirectory();
        environment ??= Environment.GetEnvironmentVariables();
        var commandLine = switches
            .Where(s => SwitchMappings.ContainsKey(s.Key) && s.Value is not null)
            .Select(s => new KeyValuePair<string, string?>(SwitchMappings[s.Key], s.Value))
            .ToList();

        // First pass, without the file next to the config file: where is the config file?
        var first = Sources(new ConfigurationBuilder(), workingDirectory, null, environment, commandLine).Build();
        var configFolder = Path.GetDirectoryName(ConfigPath(first, workingDirectory));
        return Sources(new ConfigurationBuilder(), workingDirectory, configFolder, environment, commandLine).Build();
    }

    /// <summary>The config file's absolute path (relative paths are from the working directory).</summary>
    public static string ConfigPath(IConfiguration configuration, string? workingDirectory = null) =>
        Path.GetFullPath(configuration[ConfigKey] is { Length: > 0 } configured ? configured : "schedule_config.yml",
            workingDirectory ?? Directory.GetCurrentDirectory());

    private static IConfigurationBuilder Sources(IConfigurationBuilder builder, string workingDirectory, string? configFolder,
        IDictionary environment, IReadOnlyList<KeyValuePair<string, string?>> commandLine)
    {
        var here = Path.GetFullPath(Path.Combine(workingDirectory, FileName));
        builder.AddJsonFile(here, optional: true, reloadOnChange: false);
        if (configFolder is not null && Path.GetFullPath(Path.Combine(configFolder, FileName)) is var besideConfig && besideConfig != here)
            builder.AddJsonFile(besideConfig, optional: true, reloadOnChange: false);
        builder.AddEnvironmentVariables("ASPNETCORE_");
        builder.AddEnvironmentVariables();
        builder.Add(new MappedEnvironmentSource(environment));
        builder.Add(new CommandLineSource(commandLine));
        return builder;
    }

    /// <summary>
    /// What set <paramref name="key"/>, for messages: the option (<c>--urls</c>), the variable (<c>SCHEDSYNC_URLS</c>,
    /// <c>ScheduleSync__Server__Urls</c>), or the key and its file; just the key when unknown.
    /// </summary>
    public static string Describe(IConfiguration configuration, string key)
    {
        if (configuration is not IConfigurationRoot root) return key;
        foreach (var provider in root.Providers.Reverse())
        {
            if (!provider.TryGet(key, out _)) continue;
            return Describe(provider, key);
        }
        return key;
    }

    /// <summary>The provider that wins for <paramref name="key"/>, or null when no source sets it.</summary>
    public static IConfigurationProvider? Winner(IConfiguration configuration, string key) =>
        configuration is IConfigurationRoot root ? root.Providers.Reverse().FirstOrDefault(p => p.TryGet(key, out _)) : null;

    public static string Describe(IConfigurationProvider provider, string key) => provider switch
    {
        CommandLineProvider => SwitchMappings.FirstOrDefault(m => string.Equals(m.Value, key, StringComparison.OrdinalIgnoreCase)).Key ?? key,
        MappedEnvironmentProvider mapped => mapped.VariableFor(key) ?? key,
        EnvironmentVariablesConfigurationProvider => key.Replace(":", "__", StringComparison.Ordinal) + " (environment)",
        JsonConfigurationProvider json => $"{key} in {Path.Combine(json.Source.FileProvider is Microsoft.Extensions.FileProviders.PhysicalFileProvider p ? p.Root : "", json.Source.Path ?? FileName)}",
        _ => key,
    };

    /// <summary>The <c>SCHEDSYNC_*</c> variables (and <c>ASPNETCORE_URLS</c>) of <see cref="EnvironmentMappings"/>.</summary>
    private sealed class MappedEnvironmentSource(IDictionary environment) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => new MappedEnvironmentProvider(environment);
    }

    private sealed class MappedEnvironmentProvider(IDictionary environment) : ConfigurationProvider
    {
        private readonly Dictionary<string, string> _variables = new(StringComparer.OrdinalIgnoreCase);

        public override void Load()
        {
            Data.Clear();
            _variables.Clear();
            foreach (var (variable, key) in EnvironmentMappings)
            {
                if (environment[variable] is not string { Length: > 0 } value) continue;
                Data[key] = value;
                _variables[key] = variable;
            }
        }

        public string? VariableFor(string key) => _variables.GetValueOrDefault(key);
    }

    private sealed class CommandLineSource(IReadOnlyList<KeyValuePair<string, string?>> values) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => new CommandLineProvider(values);
    }

    private sealed class CommandLineProvider(IReadOnlyList<KeyValuePair<string, string?>> values) : ConfigurationProvider
    {
        public override void Load()
        {
            foreach (var (key, value) in values) Data[key] = value;
        }
    }
}
