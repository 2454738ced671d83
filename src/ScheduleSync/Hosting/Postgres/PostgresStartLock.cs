using ScheduleSync.Files;

namespace ScheduleSync.Hosting;

/// <summary>
/// The two lock files next to a cluster's data folder (see <see cref="EmbeddedPostgres"/>): <c>&lt;data&gt;.lock</c>,
/// the start lock, and <c>&lt;data&gt;.users</c>, on which every user of the cluster holds a <see cref="SharedFileLock"/>.
/// </summary>
internal static class PostgresStartLock
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    public static string UsersLockPath(string dataDir) => dataDir + ".users";

    /// <summary>Takes <c>&lt;data&gt;.lock</c>, held while a process starts, checks or stops the server.</summary>
    public static async Task<FileLock> AcquireAsync(string dataDir, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(dataDir) ?? dataDir);
        var lockPath = dataDir + ".lock";
        try
        {
            // FileLock.Acquire blocks while it waits: keep that off the caller's (possibly request-serving) thread.
            return await Task.Run(() => FileLock.Acquire(lockPath, Timeout), cancellationToken);
        }
        catch (FileLockTimeoutException ex)
        {
            throw new EmbeddedPostgresException(
                $"Another process has been starting or stopping PostgreSQL in {dataDir} for over " +
                $"{Timeout.TotalSeconds:0} s (it holds {lockPath}).", ex);
        }
    }
}
