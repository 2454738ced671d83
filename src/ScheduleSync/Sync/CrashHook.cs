using System.Diagnostics;

namespace ScheduleSync.Sync;

/// <summary>Kills the process at a named step of a run when the crash-ordering tests ask for it (SPEC §4).</summary>
internal static class CrashHook
{
    /// <summary>Environment variable naming a step at which the process kills itself (<c>pause:STEP</c>: stops there until killed).</summary>
    public const string Variable = "SCHEDSYNC_FAULT";

    public static void At(string step)
    {
        var fault = Environment.GetEnvironmentVariable(Variable);
        if (fault == step)
            Process.GetCurrentProcess().Kill(); // SIGKILL: no finally blocks, no flush — a real crash.
        if (fault == "pause:" + step)
            Thread.Sleep(Timeout.Infinite); // what others can do while a run stands at this step; the test kills it
    }
}
