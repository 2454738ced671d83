using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace ScheduleSync.Files;

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

    /// <summary>
    /// Takes the lock, waiting up to <paramref name="timeout"/>. A free lock costs one non-blocking <c>flock</c>; a
    /// held one is waited for in the kernel (a blocking <c>flock</c> on a thread of its own), like <c>flock(1)</c> and
    /// Python's waiters, so this waiter is woken by a release instead of polling and losing the lock to them.
    /// </summary>
    /// <exception cref="FileLockTimeoutException">Another process held the lock for the whole timeout.</exception>
    public static FileLock Acquire(string lockPath, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        var handle = OpenLockFile(lockPath);
        int result = Posix.Flock(Fd(handle), Posix.LockEx | Posix.LockNb);
        if (result == 0) return new FileLock(lockPath, handle);
        if (result != -Posix.EAgain)
        {
            handle.Dispose();
            throw FlockFailed(lockPath, -result);
        }
        if (timeout == TimeSpan.Zero)
        {
            handle.Dispose();
            throw new FileLockTimeoutException(lockPath, timeout);
        }
        // A waiter an earlier attempt gave up on may still be queued in the kernel: take it over (it keeps its place,
        // and no second thread waits for the same path) instead of starting another.
        var waiter = KernelWaiter.Adopt(lockPath);
        if (waiter is null) waiter = KernelWaiter.Start(lockPath, handle);
        else handle.Dispose();
        return waiter.Wait(timeout) is { } acquired
            ? new FileLock(lockPath, acquired)
            : throw new FileLockTimeoutException(lockPath, timeout);
    }

    /// <summary>
    /// A blocking <c>flock(LOCK_EX)</c> on a dedicated thread with its own fd. Linux has no timed flock, and closing
    /// the fd does not interrupt one that is waiting; so on timeout the attempt is only marked abandoned. When the
    /// kernel grants the lock later, the thread releases it at once (closing its fd) — unless a newer attempt has
    /// adopted the waiter meanwhile, which then gets the lock.
    /// </summary>
    private sealed class KernelWaiter
    {
        private static readonly Dictionary<string, List<KernelWaiter>> Abandoned = new(StringComparer.Ordinal);

        private readonly string _lockPath;
        private readonly SafeFileHandle _handle;
        private readonly ManualResetEventSlim _done = new();
        private bool _abandoned;
        private bool _finished;
        private int _result;

        private KernelWaiter(string lockPath, SafeFileHandle handle)
        {
            _lockPath = lockPath;
            _handle = handle;
        }

        public static KernelWaiter Start(string lockPath, SafeFileHandle handle)
        {
            var waiter = new KernelWaiter(lockPath, handle);
            new Thread(waiter.Run) { IsBackground = true, Name = "flock wait" }.Start();
            return waiter;
        }

        /// <summary>Takes over an abandoned waiter of the path that is still waiting in the kernel; null when none is.</summary>
        public static KernelWaiter? Adopt(string lockPath)
        {
            lock (Abandoned)
            {
                if (!Abandoned.TryGetValue(lockPath, out var list)) return null;
                foreach (var waiter in list)
                {
                    lock (waiter)
                    {
                        if (waiter._finished) continue;
                        waiter._abandoned = false;
                    }
                    list.Remove(waiter);
                    if (list.Count == 0) Abandoned.Remove(lockPath);
                    return waiter;
                }
                return null;
            }
        }

        /// <summary>The handle holding the lock, or null after <paramref name="timeout"/> (the waiter is then abandoned).</summary>
        public SafeFileHandle? Wait(TimeSpan timeout)
        {
            _done.Wait(timeout);
            lock (Abandoned)
            {
                lock (this)
                {
                    if (!_finished)
                    {
                        _abandoned = true;
                        if (!Abandoned.TryGetValue(_lockPath, out var list)) Abandoned[_lockPath] = list = [];
                        list.Add(this);
                        return null;
                    }
                }
            }
            if (_result == 0) return _handle;
            _handle.Dispose();
            throw FlockFailed(_lockPath, -_result);
        }

        private void Run()
        {
            int result = Posix.Flock(Fd(_handle), Posix.LockEx);
            bool abandoned;
            lock (this)
            {
                _result = result;
                _finished = true;
                abandoned = _abandoned;
            }
            if (!abandoned)
            {
                _done.Set();
                return;
            }
            // Nobody wants it any more: closing the fd releases the lock the kernel just granted.
            lock (Abandoned)
            {
                if (Abandoned.TryGetValue(_lockPath, out var list) && list.Remove(this) && list.Count == 0) Abandoned.Remove(_lockPath);
            }
            _handle.Dispose();
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

    private static FileStoreException FlockFailed(string lockPath, int errno) =>
        new(lockPath, "lock", lockPath, $"flock failed: {Posix.Describe(errno)}", errno, targetUnchanged: true);

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
