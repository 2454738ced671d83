using System.Diagnostics;
using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace ScheduleSync.Yaml;

/// <summary>
/// An exclusive <c>flock(2)</c> on a sidecar lock file (<c>schedule_config.yml.lock</c>), the same lock that
/// <c>flock(1)</c> and Python's <c>fcntl.flock</c> take, so cooperating scripts and ScheduleSync exclude each other.
/// The lock file is created once (mode 0640) and never deleted: deleting it would let two processes lock two
/// different inodes under the same name. The fd is opened with a raw <c>open(2)</c> because FileStream takes a flock
/// of its own on what it opens. Not re-entrant: a second <see cref="Acquire"/> of the same path, even in the same
/// process, waits for the first to be disposed.
/// </summary>
internal sealed class FileLock : IDisposable
{
    private readonly SafeFileHandle _handle;

    private FileLock(string lockPath, SafeFileHandle handle)
    {
        LockPath = lockPath;
        _handle = handle;
    }

    public string LockPath { get; }

    public bool IsHeld => !_handle.IsClosed;

    /// <summary>Called once when the lock is released.</summary>
    internal Action? Released { get; set; }

    /// <summary>Takes the lock, retrying with backoff until <paramref name="timeout"/> has passed.</summary>
    /// <exception cref="FileLockTimeoutException">Another process held the lock for the whole timeout.</exception>
    public static FileLock Acquire(string lockPath, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        var handle = OpenLockFile(lockPath);
        try
        {
            long start = Stopwatch.GetTimestamp();
            int delayMs = 1;
            while (true)
            {
                int result = Posix.Flock(Fd(handle), Posix.LockEx | Posix.LockNb);
                if (result == 0) return new FileLock(lockPath, handle);
                if (result != -Posix.EAgain)
                {
                    throw new FileStoreException(lockPath, "lock", lockPath, $"flock failed: {Posix.Describe(-result)}",
                        -result, targetUnchanged: true);
                }
                var remaining = timeout - Stopwatch.GetElapsedTime(start);
                if (remaining <= TimeSpan.Zero) throw new FileLockTimeoutException(lockPath, timeout);
                // Polling with a short, jittered, growing delay keeps the uncontended path to one syscall and stops
                // waiters from retrying in lock-step; capped so a waiter notices a release within ~25 ms.
                int sleep = Math.Min(delayMs + Random.Shared.Next(0, delayMs + 1), (int)Math.Ceiling(remaining.TotalMilliseconds));
                Thread.Sleep(sleep);
                delayMs = Math.Min(delayMs * 2, 16);
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Takes the lock only if it is free right now; null when another process holds it.</summary>
    public static FileLock? TryAcquire(string lockPath)
    {
        try
        {
            return Acquire(lockPath, TimeSpan.Zero);
        }
        catch (FileLockTimeoutException)
        {
            return null;
        }
    }

    /// <summary>Releases the lock (closing the fd alone would too, but only once every duplicate of it is closed).</summary>
    public void Dispose()
    {
        if (_handle.IsClosed) return;
        _ = Posix.Flock(Fd(_handle), Posix.LockUn);
        _handle.Dispose();
        Released?.Invoke();
    }

    private static int Fd(SafeFileHandle handle) => (int)handle.DangerousGetHandle();

    private static SafeFileHandle OpenLockFile(string lockPath)
    {
        while (true)
        {
            // Read-only is enough for flock and works on a lock file owned by another user.
            int fd = Posix.Open(lockPath, Posix.ORdOnly);
            if (fd >= 0) return Posix.OwnHandle(fd);
            if (fd != -Posix.ENoEnt) throw OpenFailed(lockPath, -fd);

            fd = Posix.Open(lockPath, Posix.ORdOnly | Posix.OCreat | Posix.OExcl, 0b110_100_000);
            if (fd >= 0)
            {
                var handle = Posix.OwnHandle(fd);
                _ = Posix.Fchmod(fd, 0b110_100_000); // 0640 whatever the umask
                return handle;
            }
            if (fd != -Posix.EExist) throw OpenFailed(lockPath, -fd);
            // Somebody created it between our two opens: open theirs.
        }
    }

    private static FileStoreException OpenFailed(string lockPath, int errno) =>
        new(lockPath, "open lock file", lockPath, $"cannot open or create the lock file: {Posix.Describe(errno)}",
            errno, targetUnchanged: true);
}

/// <summary>The sidecar lock stayed held by someone else for the whole timeout.</summary>
public sealed class FileLockTimeoutException : TimeoutException
{
    public FileLockTimeoutException()
    {
        LockPath = "";
    }

    public FileLockTimeoutException(string message) : base(message)
    {
        LockPath = "";
    }

    public FileLockTimeoutException(string message, Exception innerException) : base(message, innerException)
    {
        LockPath = "";
    }

    public FileLockTimeoutException(string lockPath, TimeSpan timeout)
        : base(string.Create(CultureInfo.InvariantCulture,
            $"Timed out after {timeout.TotalSeconds:0.###} s waiting for the exclusive lock on '{lockPath}'. " +
            $"Another process holds it (another schedsync, a script using flock(1) or fcntl.flock); " +
            $"try again, or find the holder with: lslocks, or fuser -v '{lockPath}'"))
    {
        LockPath = lockPath;
        Timeout = timeout;
    }

    public string LockPath { get; }

    public TimeSpan Timeout { get; }
}
