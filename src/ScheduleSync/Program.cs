using ScheduleSync.Cli;

return await SchedSyncCommand.Build().Parse(args).InvokeAsync();
