using Microsoft.Extensions.Options;
using Npgsql;
using ScheduleSync.Database;
using ScheduleSync.Events;
using ScheduleSync.Sync;
using ScheduleSync.Files;

namespace ScheduleSync.Hosting;

/// <summary>
/// The services every command is made of, one method per feature; <see cref="ServerHost"/> (serve) and
/// <see cref="CommandHost"/> (the one-shot commands) call the same ones. Options are bound from the one configuration
/// and validated when the host starts, so a bad value stops every command before it touches anything.
/// </summary>
internal static class AppServices
{
    /// <summary>The settings of every command: where (<see cref="AppSettings"/>) and how (the options classes).</summary>
    public static IServiceCollection AddAppSettings(this IServiceCollection services, AppSettings settings)
    {
        services.AddSingleton(settings);
        services.AddSingleton(settings.Replica);
        services.AddSingleton(TimeProvider.System);
        services.AddChecked<ServerOptions>(AppConfiguration.ServerSection, OptionsChecks.Server);
        return services;
    }

    /// <summary>The config file (its lock, backups, atomic writes).</summary>
    public static IServiceCollection AddFileStore(this IServiceCollection services) =>
        services.AddSingleton(sp => ConfigFileStore.Open(sp.GetRequiredService<AppSettings>().ConfigPath));

    /// <summary>The tasks table. Needs an <see cref="NpgsqlDataSource"/> (the command's or the server's database).</summary>
    public static IServiceCollection AddTaskStore(this IServiceCollection services) => services.AddSingleton<TaskStore>();

    /// <summary>The sync runner (section "ScheduleSync:Sync") and the conflict resolver; <paramref name="progress"/> reports a long run's phases.</summary>
    public static IServiceCollection AddSync(this IServiceCollection services, Func<IServiceProvider, IProgress<SyncProgress>?> progress)
    {
        services.AddChecked<SyncOptions>(AppConfiguration.SyncSection, OptionsChecks.Sync);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<SyncOptions>>().Value);
        services.AddSingleton(sp =>
        {
            var runner = ActivatorUtilities.CreateInstance<SyncRunner>(sp);
            runner.Progress = progress(sp);
            return runner;
        });
        services.AddSingleton<ConflictService>();
        return services;
    }

    /// <summary>The event log and live feed (section "ScheduleSync:Events").</summary>
    public static IServiceCollection AddEvents(this IServiceCollection services)
    {
        services.AddChecked<EventOptions>(AppConfiguration.EventsSection, OptionsChecks.Events);
        // A plain instance too (what EventHub takes); a test registering its own EventOptions after this wins.
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<EventOptions>>().Value);
        services.AddSingleton<EventHub>();
        return services;
    }

    /// <summary>Binds <typeparamref name="T"/> to <paramref name="section"/>, checked by <paramref name="check"/> when the host starts.</summary>
    public static OptionsBuilder<T> AddChecked<T>(this IServiceCollection services, string section, Func<T, IEnumerable<string>> check) where T : class
    {
        services.AddSingleton<IValidateOptions<T>>(new OptionsCheck<T>(check));
        return services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();
    }

    /// <summary>Binds and checks <typeparamref name="T"/> now, for what must be known before a host exists (the server's addresses).</summary>
    public static T ReadChecked<T>(IConfiguration configuration, string section, Func<T, IEnumerable<string>> check) where T : class, new()
    {
        var value = configuration.GetSection(section).Get<T>() ?? new T();
        var problems = check(value).ToList();
        if (problems.Count > 0) throw new OptionsValidationException(section, typeof(T), problems);
        return value;
    }

    private sealed class OptionsCheck<T>(Func<T, IEnumerable<string>> check) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options) =>
            check(options).ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}

/// <summary>What each options class must hold; every message names the key to fix.</summary>
internal static class OptionsChecks
{
    public static IEnumerable<string> Server(ServerOptions o)
    {
        const string s = AppConfiguration.ServerSection;
        var urls = o.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (urls.Length == 0) yield return $"{s}:Urls is empty: give at least one address like http://127.0.0.1:5080";
        foreach (var url in urls)
        {
            string? problem = null;
            try
            {
                Microsoft.AspNetCore.Http.BindingAddress.Parse(url);
            }
            catch (FormatException e)
            {
                problem = $"{s}:Urls: '{url}' is not a URL like http://127.0.0.1:5080 ({e.Message})";
            }
            if (problem is not null) yield return problem;
        }
        foreach (var problem in Positive(s, (nameof(o.PeriodicInterval), o.PeriodicInterval), (nameof(o.PollInterval), o.PollInterval)))
            yield return problem;
        if (o.WatchDebounce < TimeSpan.Zero) yield return $"{s}:WatchDebounce is {o.WatchDebounce}: it must not be negative";
        if (o.MaxRequestBodyBytes <= 0) yield return $"{s}:MaxRequestBodyBytes is {o.MaxRequestBodyBytes}: it must be more than 0";
    }

    public static IEnumerable<string> Sync(SyncOptions o)
    {
        const string s = AppConfiguration.SyncSection;
        if (!Enum.IsDefined(o.OnInvalid)) yield return $"{s}:OnInvalid is {o.OnInvalid}: use RejectFile or SkipTask";
        if (!(o.MassDeleteShare is > 0 and <= 1)) yield return $"{s}:MassDeleteShare is {o.MassDeleteShare}: it must be more than 0 and at most 1";
        if (o.MassDeleteMinimum < 0) yield return $"{s}:MassDeleteMinimum is {o.MassDeleteMinimum}: it must not be negative";
    }

    public static IEnumerable<string> Events(EventOptions o)
    {
        const string s = AppConfiguration.EventsSection;
        if (o.ClientQueue <= 0) yield return $"{s}:ClientQueue is {o.ClientQueue}: it must be more than 0";
        if (o.RetainEvents <= 0) yield return $"{s}:RetainEvents is {o.RetainEvents}: it must be more than 0";
        foreach (var problem in Positive(s, (nameof(o.RetainAge), o.RetainAge), (nameof(o.PruneInterval), o.PruneInterval), (nameof(o.PollInterval), o.PollInterval)))
            yield return problem;
    }

    private static IEnumerable<string> Positive(string section, params (string Name, TimeSpan Value)[] values) =>
        values.Where(v => v.Value <= TimeSpan.Zero).Select(v => $"{section}:{v.Name} is {v.Value}: it must be more than zero (e.g. 00:05:00)");
}
