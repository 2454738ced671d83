namespace ScheduleSync.Sync;

/// <summary>
/// The name of this copy of the file among several on one database (SPEC §8): the key of its base, sync state,
/// conflicts, recorded exports and runs, and of its advisory lock. Default <c>&lt;hostname&gt;:&lt;absolute config
/// path&gt;</c>, so the server and the CLI on one host and one file are the same replica without saying so.
/// </summary>
internal sealed record ReplicaName
{
    public const int MaxLength = 200;

    public string Name { get; }

    private ReplicaName(string name) => Name = name;

    public static ReplicaName Default(string configPath) => new($"{Environment.MachineName}:{Path.GetFullPath(configPath)}");

    /// <summary>The configured name (<c>--replica</c>, <c>SCHEDSYNC_REPLICA</c>), or the default when none is given.</summary>
    /// <exception cref="ArgumentException">The name is blank, too long or holds control characters (the message says which).</exception>
    public static ReplicaName From(string? configured, string configPath, string source = "--replica")
    {
        if (configured is null) return Default(configPath);
        if (string.IsNullOrWhiteSpace(configured))
            throw new ArgumentException($"{source}: the replica name is empty; give a name like web-1, or leave it out for the default <hostname>:<config path>");
        if (configured.Length > MaxLength)
            throw new ArgumentException($"{source}: the replica name is {configured.Length} characters long; at most {MaxLength} are allowed");
        if (configured.Any(char.IsControl) || configured.Trim() != configured)
            throw new ArgumentException($"{source}: the replica name '{configured.Trim()}' must not start or end with spaces or hold control characters");
        return new ReplicaName(configured);
    }

    public override string ToString() => Name;
}
