using Microsoft.Extensions.Options;
using ScheduleSync.Files;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>
/// Watches the config file's directory (editors replace the file by rename, so watching the file itself would lose
/// it), debounces, and asks for a sync when the content differs from what the last sync saw or wrote — our own writes
/// are recognised by checksum, never by a time window. A periodic stat (and checksum when the stat moved) covers file
/// systems without events; the watcher is re-created after an error or a buffer overflow.
/// </summary>
internal sealed partial class FileWatcherService(SyncCoordinator coordinator, IOptions<ServerOptions> options, ILogger<FileWatcherService> logger) : BackgroundService
{
    // Never disposed: the watcher's threads may still raise an event while the service is being disposed, and a
    // semaphore without a wait handle holds nothing to release.
    private readonly SemaphoreSlim _signal = new(0);
    private volatile bool _restart;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await coordinator.Started.WaitAsync(stoppingToken);
        var path = coordinator.Runner.Store.ConfigPath;
        var directory = Path.GetDirectoryName(path)!;
        var name = Path.GetFileName(path);
        var debounce = options.Value.WatchDebounce;
        var poll = options.Value.PollInterval;
        (DateTime, long) lastStat = Stat(path);

        while (!stoppingToken.IsCancellationRequested)
        {
            using var watcher = CreateWatcher(directory, name);
            _restart = false;
            while (!stoppingToken.IsCancellationRequested && !_restart)
            {
                var signalled = await _signal.WaitAsync(poll, stoppingToken).ConfigureAwait(false);
                if (signalled)
                {
                    // Let the editor finish (several events per save), then look once.
                    await Task.Delay(debounce, stoppingToken);
                    while (_signal.CurrentCount > 0) await _signal.WaitAsync(stoppingToken);
                }
                var stat = Stat(path);
                if (!signalled && stat == lastStat) continue;
                lastStat = stat;
                try
                {
                    var checksum = Checksum();
                    if (checksum == coordinator.LastFileChecksum) continue;
                    Log.FileChanged(logger, path, signalled ? "event" : "poll");
                    await coordinator.RequestAsync("watch", stoppingToken);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Log.ReadFailed(logger, path, e.Message);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Already reported by the coordinator as a sync_error; keep watching.
                }
            }
        }
    }

    private FileSystemWatcher CreateWatcher(string directory, string name)
    {
        var watcher = new FileSystemWatcher(directory)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            InternalBufferSize = 64 * 1024,
        };
        void OnEvent(object sender, FileSystemEventArgs e)
        {
            if (e.Name == name || (e is RenamedEventArgs r && r.OldName == name)) _signal.Release();
        }
        watcher.Changed += OnEvent;
        watcher.Created += OnEvent;
        watcher.Deleted += OnEvent;
        watcher.Renamed += (sender, e) => OnEvent(sender, e);
        watcher.Error += (_, e) =>
        {
            Log.WatcherError(logger, e.GetException());
            _restart = true;
            _signal.Release();
        };
        watcher.EnableRaisingEvents = true;
        return watcher;
    }

    private static (DateTime, long) Stat(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
    }

    /// <summary>
    /// The file's checksum as the sync would read it (only a regular file, at most the size limit; a FIFO never
    /// blocks): anything the store refuses gets a marker that equals no checksum, so it is handed to a sync, which
    /// reports it.
    /// </summary>
    private string Checksum()
    {
        try
        {
            return coordinator.Runner.Store.Read().Checksum;
        }
        catch (FileStoreException e)
        {
            return "unreadable: " + e.Cause;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "{Path} changed ({How}); syncing")]
        public static partial void FileChanged(ILogger logger, string path, string how);

        [LoggerMessage(Level = LogLevel.Warning, Message = "could not read {Path}: {Reason}")]
        public static partial void ReadFailed(ILogger logger, string path, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "file watcher failed; re-creating it")]
        public static partial void WatcherError(ILogger logger, Exception exception);
    }
}
