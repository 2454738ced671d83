using System.Runtime.CompilerServices;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>
/// Keeps schedsync's state folder (embedded clusters, serve locks: see <c>StateDirectory</c>) of this test run out of
/// the real home and out of /var/lib: <c>XDG_STATE_HOME</c> points to a folder of the run under the temp folder,
/// for in-process servers and (inherited) for every child process. Mode 0755 so the <c>postgres</c> user, which
/// runs the clusters when the tests run as root, can reach the data folders beneath it.
/// </summary>
internal static class TestStateDirectory
{
    public static string Path { get; private set; } = "";

    [ModuleInitializer]
    internal static void Initialize()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "schedsync-state-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Path, (UnixFileMode)0b111_101_101);
        Environment.SetEnvironmentVariable("XDG_STATE_HOME", Path);
        Environment.SetEnvironmentVariable("STATE_DIRECTORY", null);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        };
    }
}
