namespace ScheduleSync.Tests;

public class SmokeTests
{
    [Fact]
    public void Root_command_has_a_description() =>
        Assert.False(string.IsNullOrEmpty(ScheduleSync.Cli.SchedSyncCommand.Build().Description));
}
