using System.Diagnostics;

namespace ScheduleSync.Hosting;

/// <summary>Whether a PID is a live PostgreSQL server, a zombie, gone or something else (read from <c>/proc</c>).</summary>
internal static class ProcStat
{
    /// <summary>Whether <paramref name="pid"/> is a running (not zombie) PostgreSQL server process.</summary>
    public static bool IsPostmasterAlive(int pid) => GetProcessState(pid) == ProcessState.RunningPostgres;

    public enum ProcessState
    {
        Gone,
        Zombie,
        RunningPostgres,
        RunningOther,
    }

    /// <summary>What <paramref name="pid"/> is, from <c>/proc/&lt;pid&gt;/stat</c> (elsewhere: whether it runs).</summary>
    public static ProcessState GetProcessState(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return process.HasExited ? ProcessState.Gone : ProcessState.RunningPostgres;
            }
            catch (ArgumentException)
            {
                return ProcessState.Gone;
            }
        }

        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return ProcessState.Gone;
        }

        // "pid (comm) state ...": comm may itself contain spaces or parentheses.
        var open = stat.IndexOf('(', StringComparison.Ordinal);
        var close = stat.LastIndexOf(')');
        if (open < 0 || close < open || close + 2 >= stat.Length)
            return ProcessState.Gone;
        var comm = stat[(open + 1)..close];
        return stat[close + 2] switch
        {
            'Z' or 'X' => ProcessState.Zombie,
            _ when comm is "postgres" or "postmaster" => ProcessState.RunningPostgres,
            _ => ProcessState.RunningOther,
        };
    }
}
