namespace ScheduleSync.Hosting;

/// <summary>
/// Where the PostgreSQL server binaries (initdb, pg_ctl, postgres) are: <c>SCHEDSYNC_PG_BIN</c> or an explicit folder,
/// else the installed version under /usr/lib/postgresql that matches the cluster (else the highest), else PATH.
/// </summary>
internal static class PostgresBinaries
{
    public const string BinDirectoryVariable = "SCHEDSYNC_PG_BIN";

    /// <summary>psql from the server binaries' folder (matching the cluster's version), else psql on PATH.</summary>
    public static string FindPsql(string? dataDirectory)
    {
        try
        {
            var bin = ResolveBinDirectory(null, dataDirectory ?? "");
            var psql = Path.Combine(bin, ExecutableName("psql"));
            if (File.Exists(psql))
                return psql;
        }
        catch (EmbeddedPostgresException)
        {
            // No server binaries: a client-only machine may still have psql on PATH.
        }

        return "psql";
    }

    /// <summary>The folder of the server binaries for the cluster in <paramref name="dataDir"/>.</summary>
    public static string ResolveBinDirectory(string? explicitDirectory, string dataDir)
    {
        var configured = string.IsNullOrEmpty(explicitDirectory)
            ? Environment.GetEnvironmentVariable(BinDirectoryVariable)
            : explicitDirectory;
        if (!string.IsNullOrEmpty(configured))
        {
            return HasServerBinaries(configured)
                ? Path.GetFullPath(configured)
                : throw MissingBinaries($" in {configured}");
        }

        return FindDebianBinDirectory(dataDir) ?? FindOnPath() ?? throw MissingBinaries("");
    }

    private static EmbeddedPostgresException MissingBinaries(string where) => new(
        $"The PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found{where}. Install them " +
        $"(Debian/Ubuntu: apt-get install postgresql), or set {BinDirectoryVariable} to the folder that holds " +
        "them, or configure a database connection string to use an existing server.");

    private static string? FindDebianBinDirectory(string dataDir)
    {
        const string root = "/usr/lib/postgresql";
        if (!Directory.Exists(root))
            return null;

        // An existing cluster can only be run by its own major version, so prefer that one if it is installed.
        var versionFile = Path.Combine(dataDir, "PG_VERSION");
        if (File.Exists(versionFile))
        {
            var matching = Path.Combine(root, File.ReadAllText(versionFile).Trim(), "bin");
            if (HasServerBinaries(matching))
                return matching;
        }

        return Directory.EnumerateDirectories(root)
            .Select(dir => (Dir: Path.Combine(dir, "bin"), Version: ParseMajorVersion(Path.GetFileName(dir))))
            .Where(candidate => candidate.Version is not null && HasServerBinaries(candidate.Dir))
            .OrderByDescending(candidate => candidate.Version)
            .Select(candidate => candidate.Dir)
            .FirstOrDefault();
    }

    private static Version? ParseMajorVersion(string name) =>
        Version.TryParse(name.Contains('.', StringComparison.Ordinal) ? name : name + ".0", out var version)
            ? version
            : null;

    private static string? FindOnPath() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(HasServerBinaries);

    private static bool HasServerBinaries(string dir) =>
        new[] { "initdb", "pg_ctl", "postgres" }.All(name => File.Exists(Path.Combine(dir, ExecutableName(name))));

    public static string ExecutableName(string name) => OperatingSystem.IsWindows() ? name + ".exe" : name;
}
