using System.Security.Cryptography;
using System.Text;

namespace ScheduleSync.Hosting;

/// <summary>
/// Where schedsync keeps what is not configuration: the embedded cluster's data folder and the serve lock. They live
/// outside the config folder (which people keep in git), in a state folder of their own per config file:
/// <c>&lt;root&gt;/&lt;short hash of the absolute config path&gt;/</c>. The root is, first found:
/// <c>$STATE_DIRECTORY</c> (set by systemd's <c>StateDirectory=</c>, e.g. /var/lib/schedsync),
/// <c>$XDG_STATE_HOME/schedsync</c>, <c>/var/lib/schedsync</c> for root (the cluster then runs as <c>postgres</c>,
/// which cannot enter root's home), else <c>~/.local/state/schedsync</c>. The hash keeps the path short: the
/// cluster's Unix socket lives in the data folder and its path may not exceed 107 bytes.
/// </summary>
/// <remarks>
/// Installs made by older versions have the cluster in <c>&lt;config dir&gt;/.schedsync/pgdata</c>: while that folder
/// exists it stays in use (with its serve lock beside it), so nobody loses their database, and
/// <see cref="MoveHint"/> says how to move it.
/// </remarks>
internal static class StateDirectory
{
    private const string LegacyFolder = ".schedsync";

    /// <summary>The state root (see the class summary).</summary>
    public static string Root()
    {
        if (Environment.GetEnvironmentVariable("STATE_DIRECTORY") is { Length: > 0 } systemd)
            return Path.GetFullPath(systemd.Split(':')[0]);
        if (Environment.GetEnvironmentVariable("XDG_STATE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg))
            return Path.Combine(xdg, "schedsync");
        if (!OperatingSystem.IsWindows() && Environment.IsPrivilegedProcess)
            return "/var/lib/schedsync";
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home.Length > 0 ? home : Path.GetTempPath(), ".local", "state", "schedsync");
    }

    /// <summary>The state folder of one config file: the root plus 12 hex digits of SHA-256 of its absolute path.</summary>
    public static string ForConfig(string configPath)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(configPath)));
        return Path.Combine(Root(), Convert.ToHexStringLower(hash)[..12]);
    }

    /// <summary>Where older versions kept the cluster: inside the config folder.</summary>
    public static string LegacyDataDirectory(string configPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(configPath))!, LegacyFolder, "pgdata");

    /// <summary>True when an older install's cluster is inside the config folder (then it stays in use).</summary>
    public static bool UsesLegacy(string configPath) => Directory.Exists(LegacyDataDirectory(configPath));

    /// <summary>The embedded cluster's data folder when none is configured.</summary>
    public static string DefaultDataDirectory(string configPath) =>
        UsesLegacy(configPath) ? LegacyDataDirectory(configPath) : Path.Combine(ForConfig(configPath), "pgdata");

    /// <summary>The serve lock of a config file: in its state folder (beside an older install's cluster while that is used).</summary>
    public static string ServeLockPath(string configPath) =>
        UsesLegacy(configPath)
            ? Path.Combine(Path.GetDirectoryName(LegacyDataDirectory(configPath))!, Path.GetFileName(configPath) + ".serve.lock")
            : Path.Combine(ForConfig(configPath), "serve.lock");

    /// <summary>One line on how to move an older install's cluster out of the config folder, or null when there is none.</summary>
    public static string? MoveHint(string configPath)
    {
        if (!UsesLegacy(configPath))
            return null;
        var legacy = LegacyDataDirectory(configPath);
        var target = ForConfig(configPath);
        return
            $"the database is in {legacy}, inside the config folder (git sees it); to move it out, stop schedsync, " +
            $"then: mkdir -p {target} && mv {legacy} {target}/ (and delete {Path.GetDirectoryName(legacy)}); " +
            "or set SCHEDSYNC_DATA_DIR to keep it where it is";
    }
}
