namespace ScheduleSync.Files;

/// <summary>
/// A step of reading or safely writing the config file failed. The message names the file, the step and the
/// cause, and says whether the file is still as it was.
/// </summary>
public sealed class FileStoreException : IOException
{
    public FileStoreException()
    {
    }

    public FileStoreException(string message) : base(message)
    {
    }

    public FileStoreException(string message, Exception innerException) : base(message, innerException)
    {
    }

    internal FileStoreException(string filePath, string step, string stepPath, string cause, int? errno,
        bool targetUnchanged, Exception? innerException = null)
        : base(Format(filePath, step, stepPath, cause, targetUnchanged), innerException)
    {
        FilePath = filePath;
        Step = step;
        Cause = cause;
        Errno = errno;
        TargetUnchanged = targetUnchanged;
    }

    /// <summary>The file the operation was about (the config file, or the lock file).</summary>
    public string FilePath { get; } = "";

    /// <summary>The step that failed, e.g. "write temp file", "rename temp file over target".</summary>
    public string Step { get; } = "";

    /// <summary>Why the step failed, without the file and step around it ("it is a directory, not a regular file…").</summary>
    public string Cause { get; } = "";

    /// <summary>The Linux errno, when a system call failed.</summary>
    public int? Errno { get; }

    /// <summary>True when the failure happened before the file was replaced, so it still has its old content.</summary>
    public bool TargetUnchanged { get; }

    private static string Format(string filePath, string step, string stepPath, string cause, bool targetUnchanged)
    {
        string where = stepPath == filePath ? "" : $" (at '{stepPath}')";
        string outcome = targetUnchanged
            ? "The file is unchanged."
            : "The new content was already renamed into place; it may not be durable or may have been changed since.";
        return $"'{filePath}': step '{step}' failed{where}: {cause}. {outcome}";
    }
}
