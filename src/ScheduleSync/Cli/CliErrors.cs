using System.Net.Sockets;
using Npgsql;
using ScheduleSync.Files;
using ScheduleSync.Hosting;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;

namespace ScheduleSync.Cli;

/// <summary>An expected failure of a command: its message is what the person reads, its exit code what a script sees.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Error) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// Turns the failures a person can act on into one line on stderr and an exit code (never a stack trace), and checks
/// the settings before anything is started (a mistyped --config must not start a cluster or create a folder).
/// </summary>
internal static class CliErrors
{
    /// <summary>Checks what can be checked without touching anything: the connection string's syntax, the config folder.</summary>
    public static void Preflight(CliSettings settings, bool needsConfigFolder = true)
    {
        try
        {
            _ = settings.Replica;
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
        if (settings.Database is { } database)
        {
            try
            {
                _ = new NpgsqlConnectionStringBuilder(database);
            }
            catch (ArgumentException e)
            {
                // The string itself is not repeated: it may hold a password.
                throw new CliException($"the database connection string (--database or SCHEDSYNC_DATABASE) is malformed: {e.Message} Expected e.g. \"Host=localhost;Port=5432;Username=schedsync;Database=schedsync\"");
            }
        }
        if (needsConfigFolder)
        {
            var folder = Path.GetDirectoryName(settings.ConfigPath)!;
            if (!Directory.Exists(folder))
                throw new CliException($"{settings.ConfigPath}: the folder {folder} does not exist (check --config or SCHEDSYNC_CONFIG)");
        }
    }

    /// <summary>The line to print for an expected failure, or null for a bug (which keeps its stack trace).</summary>
    public static string? Describe(Exception e, CliSettings? settings)
    {
        switch (e)
        {
            case CliException or StartupException or Microsoft.Extensions.Options.OptionsValidationException:
                return e.Message;
            case AggregateException aggregate when aggregate.InnerExceptions.All(i => i is Microsoft.Extensions.Options.OptionsValidationException):
                return string.Join("; ", aggregate.InnerExceptions.Select(i => i.Message));
            case PostgresException pg:
                return $"the database refused: {pg.MessageText} ({pg.SqlState})";
            case NpgsqlException when Find<SocketException>(e) is not null || e.InnerException is TimeoutException or IOException:
                return CannotConnect(settings, e);
            case NpgsqlException:
                return e.Message;
            case IOException when Find<Microsoft.AspNetCore.Connections.AddressInUseException>(e) is not null:
                return $"{e.Message.TrimEnd('.')} — another program (perhaps another `schedsync serve`) uses that port; stop it or choose another address with --urls or SCHEDSYNC_URLS";
            case EmbeddedPostgresException or FileLockTimeoutException or ResolutionException or FieldValueException or ConflictNotFoundException
                or IOException or InvalidOperationException or InvalidDataException or UnauthorizedAccessException:
                return e.Message;
            default:
                return null;
        }
    }

    /// <summary>Runs a command body; expected failures become a line on stderr and their exit code.</summary>
    public static async Task<int> GuardAsync(CliSettings? settings, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (Describe(e, settings) is { } message)
        {
            Console.Error.WriteLine($"schedsync: {message}");
            return e is CliException cli ? cli.ExitCode : ExitCodes.Error;
        }
    }

    private static string CannotConnect(CliSettings? settings, Exception e)
    {
        var where = "the database server";
        if (settings?.Database is { } database)
        {
            var builder = new NpgsqlConnectionStringBuilder(database);
            where = $"{builder.Host ?? "localhost"}:{builder.Port}";
        }
        var reason = Find<SocketException>(e)?.Message ?? e.InnerException?.Message ?? e.Message;
        return $"cannot connect to {where} — is PostgreSQL running? set --database or SCHEDSYNC_DATABASE ({reason})";
    }

    private static T? Find<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = e.InnerException)
            if (e is T found) return found;
        return null;
    }
}
