using System.CommandLine;

namespace ScheduleSync.Cli;

internal static class SchedSyncCommand
{
    public static RootCommand Build()
    {
        var root = new RootCommand("ScheduleSync keeps schedule_config.yml and PostgreSQL equal, in both directions.");
        return root;
    }
}
