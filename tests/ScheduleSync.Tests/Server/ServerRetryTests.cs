using System.Net;
using System.Runtime.Versioning;
using ScheduleSync.Tests.Files;
using Xunit.Abstractions;

namespace ScheduleSync.Tests.Server;

/// <summary>
/// Odd files and held locks in a running server (issue 10, items 4 and 7): nothing hangs, the reason is told
/// (export header, POST /api/sync, /readyz), and a failed run is retried with backoff until it succeeds, so an API
/// write reaches the file soon after the cause is gone, not at the 5-minute safety net.
/// </summary>
[Collection(ServerCollection.Name)]
[SupportedOSPlatform("linux")]
public sealed class ServerRetryTests(ITestOutputHelper output)
{
    private const string NewTask = """{ "id": "added-meanwhile", "schedule": "@daily", "command": "x" }""";

    private static readonly TimeSpan Eventually = TimeSpan.FromSeconds(60);

    /// <summary>No periodic sync within the test: only a retry can export.</summary>
    private static void NoSafetyNet(ScheduleSync.Hosting.ServerOptions o) => o.PeriodicInterval = TimeSpan.FromHours(1);

    private async Task<string> CreateAndReadExportHeaderAsync(ServerFixture server)
    {
        using var client = server.NewClient();
        client.Timeout = TimeSpan.FromSeconds(40); // the write's own sync waits at most the 10 s lock timeout
        using var response = await client.PostAsync("/api/tasks", ServerFixture.RawJson(NewTask));
        var export = ServerFixture.Header(response, "ScheduleSync-Export");
        output.WriteLine($"POST /api/tasks -> {(int)response.StatusCode}, ScheduleSync-Export: {export}");
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(1L, await server.ScalarAsync<long>("SELECT count(*) FROM scheduled_tasks WHERE id = 'added-meanwhile'"));
        return export;
    }

    private static Task WaitForExportAsync(ServerFixture server) =>
        ServerFixture.WaitUntilAsync(() => File.Exists(server.ConfigPath) && File.ReadAllText(server.ConfigPath).Contains("added-meanwhile:", StringComparison.Ordinal),
            Eventually, "the API write to be exported by a retried sync");

    [Fact]
    public async Task Fifo_in_place_of_the_file_is_refused_without_hanging_reported_by_readyz_and_the_write_exported_once_it_is_a_file_again()
    {
        await using var server = await ServerFixture.StartAsync("retry_fifo", options: NoSafetyNet);
        var original = server.FileBytes();
        File.Delete(server.ConfigPath);
        Assert.Equal(0, Processes.Run("mkfifo", server.ConfigPath).ExitCode);

        var export = await CreateAndReadExportHeaderAsync(server);
        Assert.StartsWith("pending; sync failed", export, StringComparison.Ordinal);
        Assert.Contains("FIFO (named pipe), not a regular file", export, StringComparison.Ordinal);

        using (var client = server.NewClient())
        {
            client.Timeout = TimeSpan.FromSeconds(40);
            using var sync = await client.PostAsync("/api/sync", null);
            var text = await sync.Content.ReadAsStringAsync();
            output.WriteLine($"POST /api/sync -> {(int)sync.StatusCode} {text}");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, sync.StatusCode);
            Assert.Contains(server.ConfigPath, text, StringComparison.Ordinal);
            Assert.Contains("FIFO", text, StringComparison.Ordinal);

            using var ready = await client.GetAsync("/readyz");
            var readiness = await ready.Content.ReadAsStringAsync();
            output.WriteLine($"GET /readyz -> {(int)ready.StatusCode} {readiness}");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("FIFO (named pipe), not a regular file", readiness, StringComparison.Ordinal);
        }

        File.Delete(server.ConfigPath);
        await File.WriteAllBytesAsync(server.ConfigPath, original);
        await WaitForExportAsync(server);
        using var readyAgain = await server.Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, readyAgain.StatusCode);
    }

    [Fact]
    public async Task Write_whose_sync_timed_out_on_the_lock_is_exported_once_the_holder_lets_go()
    {
        await using var server = await ServerFixture.StartAsync("retry_lock", options: NoSafetyNet);
        var go = Path.Combine(server.Folder, "go");
        using var holder = Processes.Start("flock", server.LockPath, "-c", $"echo locked; while [ ! -e '{go}' ]; do sleep 0.05; done");
        try
        {
            Assert.Equal("locked", Processes.WaitForLine(holder));

            var export = await CreateAndReadExportHeaderAsync(server);
            Assert.StartsWith("pending; sync failed", export, StringComparison.Ordinal);
            Assert.Contains("Timed out", export, StringComparison.Ordinal);
            Assert.DoesNotContain("added-meanwhile:", File.ReadAllText(server.ConfigPath), StringComparison.Ordinal);
        }
        finally
        {
            await File.WriteAllTextAsync(go, "");
            Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(30)));
        }

        await WaitForExportAsync(server);
        Assert.Equal(await server.DatabaseHashesAsync(), server.FileHashes());
    }

    /// <summary>
    /// The file replaced by a directory, then restored byte for byte: the same checksum as the server's last write,
    /// but not the server's own write (that was before the directory) — it is synced, and the write made meanwhile
    /// is exported.
    /// </summary>
    [Fact]
    public async Task File_replaced_by_a_directory_and_restored_byte_identical_is_synced_and_the_write_made_meanwhile_exported()
    {
        await using var server = await ServerFixture.StartAsync("retry_directory", options: NoSafetyNet);
        var original = server.FileBytes();
        File.Delete(server.ConfigPath);
        Directory.CreateDirectory(server.ConfigPath);

        var export = await CreateAndReadExportHeaderAsync(server);
        Assert.StartsWith("pending; sync failed", export, StringComparison.Ordinal);
        Assert.Contains("it is a directory, not a regular file", export, StringComparison.Ordinal);

        Directory.Delete(server.ConfigPath);
        await File.WriteAllBytesAsync(server.ConfigPath, original);
        await WaitForExportAsync(server);
        Assert.Equal(await server.DatabaseHashesAsync(), server.FileHashes());
    }
}
