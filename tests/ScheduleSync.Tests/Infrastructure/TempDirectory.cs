namespace ScheduleSync.Tests.Infrastructure;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "schedsync-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        // The state folder (embedded cluster, serve lock) of a config file in here goes too.
        Delete(ScheduleSync.Hosting.StateDirectory.ForConfig(File("schedule_config.yml")));
        Delete(Path);
    }

    private static void Delete(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (IOException)
        {
            // Something may still be closing a file in it (a server that is shutting down): once more, then leave it.
            Thread.Sleep(200);
            try
            {
                Directory.Delete(path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
