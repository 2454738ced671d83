using System.Text;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>The output of a child process drained into a StringBuilder by its output handlers, which run on other threads.</summary>
internal static class DrainedOutput
{
    /// <summary>What was printed so far, read under the same lock the handlers append under.</summary>
    public static string Locked(this StringBuilder output)
    {
        lock (output) return output.ToString();
    }
}
