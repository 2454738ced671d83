using System.Globalization;
using ScheduleSync.Files;

namespace ScheduleSync.Hosting;

/// <summary>
/// One <c>serve</c> per replica (SPEC §8: "a second serve on the same replica refuses to start"): an exclusive
/// <c>flock</c> on <c>serve.lock</c> in the config's state folder (see <see cref="StateDirectory"/>), held for the server's lifetime (the
/// kernel drops it when the process dies, however it dies). The file holds the holder's PID and addresses, so the
/// refusal can name them. One-shot commands do not take it: they run alongside a server. The default replica (one per
/// host and config file) has <c>serve.lock</c>; a named one (<c>--replica</c>) its own lock file beside it, so several
/// named replicas may serve one shared file.
/// </summary>
internal sealed class ServeLock : IDisposable
{
    private const int OTrunc = 0x200;

    private readonly FileLock _lock;

    private ServeLock(FileLock fileLock) => _lock = fileLock;

    public string LockPath => _lock.LockPath;

    /// <exception cref="InvalidOperationException">Another server holds the lock (the message names its PID and address).</exception>
    public static ServeLock Acquire(string configPath, string urls, Sync.ReplicaName? replica = null)
    {
        var configDirectory = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        if (!Directory.Exists(configDirectory))
            throw new InvalidOperationException($"the folder of {configPath} does not exist");
        var lockPath = StateDirectory.ServeLockPath(configPath);
        if (replica is not null && replica != Sync.ReplicaName.Default(configPath))
        {
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(replica.Name)))[..12];
            lockPath = Path.Combine(Path.GetDirectoryName(lockPath)!, $"serve-{hash}.lock");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);

        if (FileLock.TryAcquire(lockPath) is not { } held)
            throw new InvalidOperationException(AlreadyServing(configPath, lockPath, replica));
        var serveLock = new ServeLock(held);
        serveLock.Describe(urls);
        return serveLock;
    }

    /// <summary>Records where this server listens (once Kestrel has bound, the real addresses).</summary>
    public void Describe(string urls)
    {
        if (!_lock.IsHeld)
            return;
        // A raw open: a FileStream would take a flock of its own (unless file locking is off) and collide with ours.
        var fd = Posix.Open(LockPath, Posix.OWrOnly | OTrunc | Posix.OCloExec);
        if (fd < 0)
            throw new IOException($"could not write {LockPath}: {Posix.Describe(-fd)}");
        using var handle = Posix.OwnHandle(fd);
        var written = Posix.WriteAll(fd, System.Text.Encoding.UTF8.GetBytes(
            string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId}\n{urls}\n")));
        if (written < 0)
            throw new IOException($"could not write {LockPath}: {Posix.Describe(-written)}");
    }

    public void Dispose() => _lock.Dispose();

    private static string AlreadyServing(string configPath, string lockPath, Sync.ReplicaName? replica)
    {
        // The holder writes its PID right after taking the lock: give it a moment if we came in between.
        string[] lines = [];
        for (var attempt = 0; attempt < 20 && lines.Length < 2; attempt++)
        {
            try
            {
                lines = File.ReadAllLines(lockPath);
            }
            catch (IOException)
            {
            }

            if (lines.Length < 2)
                Thread.Sleep(50);
        }

        var who = lines.Length >= 2 ? $"pid {lines[0].Trim()}, listening on {lines[1].Trim()}" : "pid unknown";
        var which = replica is null ? "" : $" as replica '{replica.Name}'";
        return $"another schedsync serve ({who}) is already running on {configPath}{which} (it holds {lockPath}); " +
            "stop it first, or run one-shot commands (sync, status, …) alongside it";
    }
}
