using System.CommandLine;
using System.Diagnostics;
using Npgsql;
using ScheduleSync.Hosting;

namespace ScheduleSync.Cli;

/// <summary>
/// <c>schedsync db</c>: how the owner reaches the database on purpose (SPEC §5) — the private embedded cluster has no
/// TCP port and no password, so the connection string names its socket folder, which only its owner can enter.
/// </summary>
internal static class DbCommand
{
    public static Command Build()
    {
        var command = new Command("db", "Print the database connection string (password removed); `db psql [args…]` runs psql on it")
        {
            Psql(),
        };
        command.SetAction(parse =>
        {
            var settings = CliSettings.From(parse);
            try
            {
                CliErrors.Preflight(settings, needsConfigFolder: false);
            }
            catch (CliException e)
            {
                Console.Error.WriteLine($"schedsync: {e.Message}");
                return e.ExitCode;
            }
            var (connectionString, embedded, running) = settings.Database is { } configured
                ? (WithoutPassword(configured), false, (bool?)null)
                : (EmbeddedPostgres.OwnerConnectionString(settings.DataDirectory), true, EmbeddedPostgres.IsRunning(settings.DataDirectory));
            if (settings.Json)
            {
                CliJson.Print(new
                {
                    connection_string = connectionString,
                    embedded,
                    data_directory = embedded ? Path.GetFullPath(settings.DataDirectory) : null,
                    running,
                });
                return ExitCodes.Success;
            }

            Console.WriteLine(connectionString);
            if (running == false)
                Console.Error.WriteLine("(the embedded cluster is not running now: `schedsync db psql` starts it for its session; a running `schedsync serve` keeps it up)");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Psql()
    {
        var command = new Command("psql", "Run psql on the database (arguments after `psql` go to psql, e.g. -c 'select 1')")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(async (parse, ct) =>
        {
            var settings = CliSettings.From(parse);
            try
            {
                CliErrors.Preflight(settings, needsConfigFolder: settings.Database is null);
                if (settings.Database is { } configured)
                    return await RunPsqlAsync(EmbeddedPostgres.FindPsql(null), configured, parse.UnmatchedTokens);
                // The cluster runs for the session (started if need be) and stops after it if nobody else uses it.
                await using var cluster = await EmbeddedPostgres.StartAsync(settings.DataDirectory, cancellationToken: ct);
                return await RunPsqlAsync(EmbeddedPostgres.FindPsql(cluster.DataDirectory), cluster.ConnectionString, parse.UnmatchedTokens);
            }
            catch (Exception e) when (e is EmbeddedPostgresException or IOException or System.ComponentModel.Win32Exception or CliException)
            {
                Console.Error.WriteLine($"schedsync: {e.Message}");
                return ExitCodes.Error;
            }
        });
        return command;
    }

    /// <summary>Runs psql with the terminal attached; the connection goes in PG* variables so no password shows in a process listing.</summary>
    private static async Task<int> RunPsqlAsync(string psql, string connectionString, IReadOnlyList<string> args)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var startInfo = new ProcessStartInfo(psql) { UseShellExecute = false };
        foreach (var arg in args)
            startInfo.ArgumentList.Add(arg);
        void Set(string name, string? value)
        {
            if (!string.IsNullOrEmpty(value))
                startInfo.Environment[name] = value;
        }

        Set("PGHOST", builder.Host);
        Set("PGPORT", builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Set("PGUSER", builder.Username);
        Set("PGDATABASE", builder.Database);
        Set("PGPASSWORD", builder.Password);
        using var process = Process.Start(startInfo) ?? throw new IOException($"could not run {psql}");
        // psql handles Ctrl-C itself (it cancels the query): wait for it whatever happens to us.
        await process.WaitForExitAsync(CancellationToken.None);
        return process.ExitCode;
    }

    /// <summary>The connection string as it may be printed or logged: without its password.</summary>
    internal static string WithoutPassword(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Password = null };
        return builder.ConnectionString;
    }
}
