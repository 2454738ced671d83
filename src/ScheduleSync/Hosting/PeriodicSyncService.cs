using Microsoft.Extensions.Options;
using ScheduleSync.Sync;

namespace ScheduleSync.Hosting;

/// <summary>The safety net: a sync every <see cref="ServerOptions.PeriodicInterval"/> (default 5 minutes).</summary>
internal sealed class PeriodicSyncService(SyncCoordinator coordinator, IOptions<ServerOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await coordinator.Started.WaitAsync(stoppingToken);
        using var timer = new PeriodicTimer(options.Value.PeriodicInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                coordinator.Trigger("periodic");
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
