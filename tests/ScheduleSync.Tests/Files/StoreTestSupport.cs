using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text;
using ScheduleSync.Files;

namespace ScheduleSync.Tests.Files;

/// <summary>A fresh folder under /tmp per test, removed afterwards.</summary>
[SupportedOSPlatform("linux")]
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = Directory.CreateTempSubdirectory("schedsync-store-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Files whose names mark them as temp files of a safe write, anywhere below the folder.</summary>
    public IReadOnlyList<string> TempFiles() =>
        Directory.EnumerateFiles(Path, "*", SearchOption.AllDirectories)
            .Where(f => System.IO.Path.GetFileName(f).Contains(".tmp-", StringComparison.Ordinal))
            .ToList();

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A test that failed with a mount still in place: leave the folder rather than hide the failure.
        }
    }
}

internal sealed record ProcessResult(int ExitCode, string Output, string Error);

[SupportedOSPlatform("linux")]
internal static class Processes
{
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host
        ? host
        : "dotnet";

    /// <summary>The helper process, built next to this test assembly via a ProjectReference that is not referenced.</summary>
    public static string WorkerDll
    {
        get
        {
            var tfmDir = new DirectoryInfo(AppContext.BaseDirectory);
            string configuration = tfmDir.Parent!.Name;
            string path = System.IO.Path.Combine(tfmDir.Parent.Parent!.Parent!.Parent!.FullName,
                "ScheduleSync.Worker", "bin", configuration, tfmDir.Name, "ScheduleSync.Worker.dll");
            return System.IO.File.Exists(path)
                ? path
                : throw new FileNotFoundException($"The worker is not built at {path}", path);
        }
    }

    public static Process Start(string fileName, params string[] arguments)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}");
    }

    public static Process StartWorker(params string[] arguments) => Start(Dotnet, [WorkerDll, .. arguments]);

    public static ProcessResult Run(string fileName, params string[] arguments)
    {
        using var process = Start(fileName, arguments);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish in 60 s");
        }
        return new ProcessResult(process.ExitCode, output.Result, error.Result);
    }

    public static ProcessResult RunWorker(params string[] arguments) => Run(Dotnet, [WorkerDll, .. arguments]);

    /// <summary>Waits for one line of standard output (e.g. "locked") or fails the test after 20 s.</summary>
    public static string WaitForLine(Process process)
    {
        var line = process.StandardOutput.ReadLineAsync();
        if (!line.Wait(TimeSpan.FromSeconds(20)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("the process never wrote its ready line: " + process.StandardError.ReadToEnd());
        }
        return line.Result ?? throw new InvalidOperationException("the process ended before its ready line: " +
                                                                   process.StandardError.ReadToEnd());
    }

    public static bool IsRoot => Posix.GetEuid() == 0;

    public static bool CanMount { get; } = ProbeMount();

    public static bool HasStrace { get; } = OnPath("strace");

    public static bool HasPython { get; } = OnPath("python3");

    public static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
        .Any(dir => dir.Length > 0 && System.IO.File.Exists(System.IO.Path.Combine(dir, program)));

    private static bool ProbeMount()
    {
        if (!IsRoot) return false;
        string dir = Directory.CreateTempSubdirectory("schedsync-mount-probe-").FullName;
        try
        {
            if (Run("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dir).ExitCode != 0) return false;
            Run("umount", dir);
            return true;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no mount binary
        }
        finally
        {
            Directory.Delete(dir);
        }
    }
}

/// <summary>A tmpfs mounted on a fresh folder for the life of a test.</summary>
[SupportedOSPlatform("linux")]
internal sealed class Tmpfs : IDisposable
{
    public Tmpfs(TempFolder parent, string options)
    {
        Path = parent.File("mnt");
        Directory.CreateDirectory(Path);
        var result = Processes.Run("mount", "-t", "tmpfs", "-o", options, "tmpfs", Path);
        Assert.True(result.ExitCode == 0, $"mount failed: {result.Error}");
    }

    public string Path { get; }

    public void RemountReadOnly()
    {
        var result = Processes.Run("mount", "-o", "remount,ro", Path);
        Assert.True(result.ExitCode == 0, $"remount failed: {result.Error}");
    }

    public void Dispose()
    {
        if (Processes.Run("umount", Path).ExitCode != 0) Processes.Run("umount", "-l", Path);
    }
}

/// <summary>A fact that needs root and permission to mount (tmpfs, bind mounts), else it is skipped.</summary>
public sealed class MountFactAttribute : FactAttribute
{
    public MountFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Processes.CanMount) Skip = "needs root with the right to mount tmpfs";
    }
}

/// <summary>A fact that needs root (to run a child process as the 'nobody' user with runuser).</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Processes.IsRoot || !Processes.OnPath("runuser")) Skip = "needs root and runuser";
    }
}

public sealed class StraceFactAttribute : FactAttribute
{
    public StraceFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Processes.HasStrace) Skip = "strace is not installed (apt-get install strace)";
    }
}

public sealed class PythonFactAttribute : FactAttribute
{
    public PythonFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Processes.HasPython) Skip = "python3 is not installed";
    }
}

internal static class Bytes
{
    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
