using Microsoft.Win32.SafeHandles;
using ScheduleSync.Files;

namespace ScheduleSync.Hosting;

/// <summary>
/// A <c>flock(2)</c> held in shared or exclusive mode on a lock file that is never deleted: how the users of the
/// embedded cluster count themselves (each holds it shared; whoever gets it exclusive is alone). The lock belongs to
/// the open file description, so two instances in one process are two holders, like two processes.
/// </summary>
internal sealed class SharedFileLock : IDisposable
{
    private const int LockSh = 1;

    private readonly SafeFileHandle _handle;

    private SharedFileLock(SafeFileHandle handle) => _handle = handle;

    /// <summary>Takes a shared lock, waiting (in the kernel) while someone holds it exclusively — only ever briefly.</summary>
    public static SharedFileLock Acquire(string path) =>
        TryLock(path, LockSh) ?? throw new EmbeddedPostgresException($"Could not take a shared lock on {path}.");

    /// <summary>An exclusive lock if nobody holds any lock on <paramref name="path"/> right now; otherwise null.</summary>
    public static SharedFileLock? TryAcquireExclusive(string path) => TryLock(path, Posix.LockEx | Posix.LockNb);

    public void Dispose()
    {
        if (_handle.IsClosed)
            return;
        _ = Posix.Flock((int)_handle.DangerousGetHandle(), Posix.LockUn);
        _handle.Dispose();
    }

    private static SharedFileLock? TryLock(string path, int operation)
    {
        var fd = Posix.Open(path, Posix.ORdOnly | Posix.OCreat | Posix.OCloExec, 0b110_100_000);
        if (fd < 0)
            throw new EmbeddedPostgresException($"Could not open the lock file {path}: {Posix.Describe(-fd)}.");
        var handle = Posix.OwnHandle(fd);
        var result = Posix.Flock(fd, operation);
        if (result == 0)
            return new SharedFileLock(handle);
        handle.Dispose();
        return result == -Posix.EAgain
            ? null
            : throw new EmbeddedPostgresException($"Could not lock {path}: {Posix.Describe(-result)}.");
    }
}
