using System.Diagnostics;
using System.Runtime.Versioning;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Sync;

namespace ScheduleSync.Tests.Files;

/// <summary>
/// The sidecar lock under contention from other programs (issue 10, item 11). flock(1) and Python wait for the lock
/// in the kernel and are woken by a release; a waiter that polls (try, sleep, try) only wins if its try falls in the
/// instant between one holder's release and the next waiter's wake-up, so with a few of them taking turns it starved
/// until its 10 s timeout. Waiting in the kernel too, every sync gets its turn.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class FileLockContentionTests
{
    private const string PythonLoop = """
        import fcntl, os, sys, time
        while not os.path.exists(sys.argv[2]):
            with open(sys.argv[1], 'a') as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                time.sleep(0.03)
                fcntl.flock(f, fcntl.LOCK_UN)
        """;

    [Fact]
    public async Task Schedsync_sync_loops_get_the_lock_between_flock1_and_python_holders_taking_turns()
    {
        await using var bed = await SyncTestBed.CreateAsync("lock_contention");
        var lockPath = bed.ConfigPath + ".lock";
        var stop = Path.Combine(bed.Folder, "stop-holders");
        // Warm-up: the first sync imports the file, so the contended ones below are the plain runs a cron job makes.
        var first = await SchedSyncProcess.RunAsync(["sync", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder);
        Assert.True(first.ExitCode == 0, first.ToString());

        // Three flock(1) loops and (where there is python3) two Python loops: each takes the lock, holds it 30 ms,
        // lets go and immediately asks again, so the lock is almost never free and a release always has waiters.
        var holders = new List<Process>();
        for (var i = 0; i < 3; i++)
            holders.Add(Processes.Start("sh", "-c", $"while [ ! -e '{stop}' ]; do flock '{lockPath}' sleep 0.03; done"));
        if (Processes.HasPython)
        {
            for (var i = 0; i < 2; i++)
                holders.Add(Processes.Start("python3", "-c", PythonLoop, lockPath, stop));
        }

        List<ProcessOutcome>[] loops;
        try
        {
            // Three `schedsync sync` loops, three runs each, next to the holders.
            loops = await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
            {
                var outcomes = new List<ProcessOutcome>();
                for (var run = 0; run < 3; run++)
                    outcomes.Add(await SchedSyncProcess.RunAsync(["sync", "--config", bed.ConfigPath, "--database", bed.ConnectionString], bed.Folder));
                return outcomes;
            }));
        }
        finally
        {
            await File.WriteAllTextAsync(stop, "");
            foreach (var holder in holders)
            {
                if (!holder.WaitForExit(TimeSpan.FromSeconds(30))) holder.Kill(entireProcessTree: true);
                holder.Dispose();
            }
        }

        var outcomesAll = loops.SelectMany(l => l).ToList();
        Assert.Equal(9, outcomesAll.Count);
        Assert.All(outcomesAll, outcome =>
        {
            Assert.DoesNotContain("Timed out", outcome.Stderr, StringComparison.Ordinal);
            Assert.True(outcome.ExitCode == 0 && !outcome.TimedOut, outcome.ToString());
        });
    }

    /// <summary>
    /// A kernel wait that timed out cannot be cancelled (Linux has no timed flock): it is abandoned, and the lock it is
    /// granted later is let go at once — or handed to the next attempt in this process, which adopts the waiter.
    /// Either way nobody is left holding the lock.
    /// </summary>
    [Fact]
    public async Task Timed_out_wait_leaves_no_lock_behind_and_the_next_attempt_gets_the_lock_when_released()
    {
        using var folder = new TempFolder();
        var lockPath = folder.File("schedule_config.yml.lock");
        var go = folder.File("go");
        using var holder = Processes.Start("flock", lockPath, "-c", $"echo locked; while [ ! -e '{go}' ]; do sleep 0.01; done");
        Assert.Equal("locked", Processes.WaitForLine(holder));

        Assert.Throws<ScheduleSync.Files.FileLockTimeoutException>(() => ScheduleSync.Files.FileLock.Acquire(lockPath, TimeSpan.FromMilliseconds(100)));
        var next = Task.Run(() => ScheduleSync.Files.FileLock.Acquire(lockPath, TimeSpan.FromSeconds(60)));
        File.WriteAllText(go, "");
        using (var acquired = await next)
        {
            Assert.True(acquired.IsHeld);
            Assert.Equal(1, Processes.Run("flock", "-n", lockPath, "true").ExitCode); // held by us, so flock -n fails
        }
        Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(30)));

        // Released: another process takes it at once (an abandoned waiter that kept it would make this fail).
        Assert.Equal(0, Processes.Run("flock", "-w", "30", lockPath, "true").ExitCode);
    }
}
