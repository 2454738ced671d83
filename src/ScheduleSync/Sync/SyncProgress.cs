using System.Diagnostics;
using System.Globalization;

namespace ScheduleSync.Sync;

/// <summary>
/// Where a long run is (issue 14): a phase, and for phases that handle items, how many of how many. The runner
/// reports once per phase and every <see cref="Every"/> items, so reporting costs nothing measurable.
/// <paramref name="Large"/>: the run handles at least <see cref="LargeRun"/> tasks (or a file of that size), the runs
/// a server logs and a terminal shows however fast they go.
/// </summary>
internal readonly record struct SyncProgress(string Phase, long Done = 0, long Total = 0, string Unit = "", bool Large = false)
{
    /// <summary>Items between two reports within a phase.</summary>
    public const int Every = 5_000;

    /// <summary>A run of this many tasks is large.</summary>
    public const int LargeRun = 5_000;

    /// <summary>A file of this size counts as large before it is parsed (a task takes about 100 bytes).</summary>
    public const long LargeFileBytes = LargeRun * 100L;

    /// <summary>Reported when the run is over (the terminal clears its progress line).</summary>
    public const string FinishedPhase = "finished";

    public bool IsFinished => Phase == FinishedPhase;

    /// <summary>"planning 20,000 tasks" at a phase's start, "validating: 5,000/20,000 tasks" within it.</summary>
    public override string ToString() => Total <= 0 ? Phase
        : Done == 0 ? string.Create(CultureInfo.InvariantCulture, $"{Phase} {Total:N0} {Unit}").TrimEnd()
        : string.Create(CultureInfo.InvariantCulture, $"{Phase}: {Done:N0}/{Total:N0} {Unit}").TrimEnd();
}

/// <summary>
/// Progress on a terminal: one line on stderr, rewritten in place, only when stderr is a terminal, and only once the
/// work has taken about a second (or is large); cleared when the run is over, so results print on a clean line.
/// </summary>
internal sealed class TerminalProgress : IProgress<SyncProgress>
{
    private static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    private readonly TextWriter _writer;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private bool _shown;

    private TerminalProgress(TextWriter writer) => _writer = writer;

    /// <summary>A reporter on stderr when it is a terminal; null (report nothing) when it is a pipe or a file.</summary>
    public static TerminalProgress? ForStandardError() =>
        Console.IsErrorRedirected ? null : new TerminalProgress(Console.Error);

    public void Report(SyncProgress value)
    {
        lock (_gate)
        {
            if (value.IsFinished)
            {
                if (_shown)
                    _writer.Write("\r\u001b[K");
                _shown = false;
                _writer.Flush();
                return;
            }

            if (!value.Large && _clock.Elapsed < Delay)
                return;
            _writer.Write($"\rschedsync: {value}…\u001b[K");
            _writer.Flush();
            _shown = true;
        }
    }
}

/// <summary>Progress in a server's log: a line per phase of a large run (a start-up sync of 50,000 tasks, say).</summary>
internal sealed partial class LoggingProgress(ILogger logger) : IProgress<SyncProgress>
{
    public void Report(SyncProgress value)
    {
        // Phase starts only: a line per phase, not per few thousand items.
        if (value.Large && value.Done == 0 && !value.IsFinished)
            Log.Phase(logger, value.ToString());
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "sync progress: {Progress}")]
        public static partial void Phase(ILogger logger, string progress);
    }
}
