using System.Diagnostics;
using System.Globalization;
using System.Net;
using ScheduleSync.Tests.Server;

namespace ScheduleSync.Tests.Infrastructure;

/// <summary>A running <c>schedsync serve</c>: started, waited for (healthz on 127.0.0.1), stopped with SIGTERM.</summary>
internal sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stdout;
    private readonly Task<string> _stderr;

    private ServeProcess(Process process)
    {
        _process = process;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public static async Task<ServeProcess> StartAsync(IEnumerable<string> args, string folder, int port, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var server = new ServeProcess(SchedSyncProcess.Start(args, folder, environment ?? new Dictionary<string, string?>()));
        using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        var started = Stopwatch.StartNew();
        while (true)
        {
            if (server._process.HasExited)
                Assert.Fail($"serve exited with {server._process.ExitCode}:\n{await server._stdout}\n{await server._stderr}");
            try
            {
                using var response = await probe.GetAsync("/healthz");
                if (response.StatusCode == HttpStatusCode.OK) return server;
            }
            catch (HttpRequestException)
            {
            }
            if (started.Elapsed > TimeSpan.FromSeconds(60))
            {
                await server.DisposeAsync();
                Assert.Fail($"serve did not answer on port {port} within 60 s:\n{await server._stdout}\n{await server._stderr}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>SIGTERM (a graceful stop, so every log line is written), then the whole output.</summary>
    public async Task<(string Stdout, string Stderr)> StopAsync()
    {
        if (!_process.HasExited)
        {
            await ServerFixture.RunAsync("kill", "-TERM", _process.Id.ToString(CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync(timeout.Token);
        }
        return (await _stdout, await _stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
