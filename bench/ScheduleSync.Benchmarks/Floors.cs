using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using ScheduleSync.Files;
using ScheduleSync.Tasks;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// The unavoidable costs, measured in the same run as the scenarios they bound: reading and hashing the file, the
/// YAML event scan alone, a bulk upsert of N rows alone into a fresh table, an atomic durable write alone, and one
/// durable single-row commit.
/// </summary>
internal static class Floors
{
    public static double Ms(long start) => Stopwatch.GetElapsedTime(start).TotalMilliseconds;

    /// <summary>Runs <paramref name="body"/> <paramref name="warmup"/> + <paramref name="runs"/> times; returns the timed samples in ms.</summary>
    public static List<double> Sample(int warmup, int runs, Action body)
    {
        for (var i = 0; i < warmup; i++) body();
        var samples = new List<double>(runs);
        for (var i = 0; i < runs; i++)
        {
            var start = Stopwatch.GetTimestamp();
            body();
            samples.Add(Ms(start));
        }
        return samples;
    }

    /// <summary>open + read into a pooled buffer + SHA-256: what any sync must do to know whether the file changed.</summary>
    public static string ReadAndHash(string path)
    {
        using var handle = File.OpenHandle(path);
        var length = (int)RandomAccess.GetLength(handle);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var read = 0;
            while (read < length)
            {
                var n = RandomAccess.Read(handle, buffer.AsSpan(read, length - read), read);
                if (n == 0) break;
                read += n;
            }
            return Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, read)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>UTF-8 decode + YamlDotNet's event stream, every event pulled and looked at: the floor of any loader on it.</summary>
    public static int ParseOnly(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes);
        return YamlWalk.YamlDotNetEvents(text);
    }

    /// <summary>temp file → write → fsync → rename → fsync of the directory: the floor of any durable atomic replace.</summary>
    public static void AtomicWrite(string path, ReadOnlySpan<byte> bytes)
    {
        var directory = Path.GetDirectoryName(path)!;
        var temp = Path.Combine(directory, "." + Path.GetFileName(path) + ".floor-tmp");
        var fd = Posix.Open(temp, Posix.OWrOnly | Posix.OCreat, 0b110_100_000);
        if (fd < 0) throw new IOException($"open {temp}: {Posix.Describe(-fd)}");
        try
        {
            Check(Posix.WriteAll(fd, bytes), "write");
            Check(Posix.Fsync(fd), "fsync");
        }
        finally
        {
            Posix.Close(fd);
        }
        Check(Posix.Rename(temp, path), "rename");
        var dir = Posix.Open(directory, Posix.ORdOnly | Posix.ODirectory);
        if (dir < 0) throw new IOException($"open {directory}: {Posix.Describe(-dir)}");
        try
        {
            Check(Posix.Fsync(dir), "fsync directory");
        }
        finally
        {
            Posix.Close(dir);
        }
    }

    private static void Check(int result, string step)
    {
        if (result < 0) throw new IOException($"{step}: {Posix.Describe(-result)}");
    }

    private const string TableColumns = """
        id text PRIMARY KEY, name text NOT NULL, description text, schedule text NOT NULL, timezone text NOT NULL,
        command text NOT NULL, args jsonb NOT NULL DEFAULT '{}', enabled boolean NOT NULL DEFAULT true,
        timeout_seconds integer, max_retries integer NOT NULL DEFAULT 0, tags text[] NOT NULL DEFAULT '{}', content_hash text
        """;

    private const string UpdateSet = """
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, schedule = EXCLUDED.schedule,
            timezone = EXCLUDED.timezone, command = EXCLUDED.command, args = EXCLUDED.args, enabled = EXCLUDED.enabled,
            timeout_seconds = EXCLUDED.timeout_seconds, max_retries = EXCLUDED.max_retries, tags = EXCLUDED.tags,
            content_hash = EXCLUDED.content_hash
        WHERE floor_tasks.content_hash IS DISTINCT FROM EXCLUDED.content_hash
        """;

    public static async Task ResetTableAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand($"DROP TABLE IF EXISTS floor_tasks; CREATE TABLE floor_tasks ({TableColumns})");
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>One multi-row statement over arrays (text[] for jsonb, tags joined and split), in a committed transaction.</summary>
    public static async Task<int> UpsertUnnestAsync(NpgsqlDataSource dataSource, IReadOnlyList<TaskDefinition> tasks)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand($"""
            INSERT INTO floor_tasks (id, name, description, schedule, timezone, command, args, enabled, timeout_seconds, max_retries, tags, content_hash)
            SELECT u.id, u.name, u.description, u.schedule, u.timezone, u.command, u.args::jsonb, u.enabled, u.timeout, u.retries,
                   string_to_array(u.tags, ','), u.hash
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::integer[], $10::integer[], $11::text[], $12::text[])
                AS u(id, name, description, schedule, timezone, command, args, enabled, timeout, retries, tags, hash)
            {UpdateSet}
            """, connection, tx);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Id).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Name).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Description).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Schedule).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Timezone).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Command).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.ArgsJson()).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.Enabled).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.TimeoutSeconds).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.MaxRetries).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => string.Join(',', t.Tags)).ToArray() });
        p.Add(new NpgsqlParameter { Value = tasks.Select(t => t.ContentHash).ToArray() });
        var rows = await command.ExecuteNonQueryAsync();
        await tx.CommitAsync();
        return rows;
    }

    /// <summary>Binary COPY into a temp table, then one INSERT … ON CONFLICT from it, in a committed transaction.</summary>
    public static async Task<int> UpsertCopyAsync(NpgsqlDataSource dataSource, IReadOnlyList<TaskDefinition> tasks)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE floor_stage (LIKE floor_tasks) ON COMMIT DROP", connection, tx))
            await create.ExecuteNonQueryAsync();
        await using (var import = await connection.BeginBinaryImportAsync(
            "COPY floor_stage (id, name, description, schedule, timezone, command, args, enabled, timeout_seconds, max_retries, tags, content_hash) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var t in tasks)
            {
                await import.StartRowAsync();
                await import.WriteAsync(t.Id, NpgsqlDbType.Text);
                await import.WriteAsync(t.Name, NpgsqlDbType.Text);
                if (t.Description is null) await import.WriteNullAsync();
                else await import.WriteAsync(t.Description, NpgsqlDbType.Text);
                await import.WriteAsync(t.Schedule, NpgsqlDbType.Text);
                await import.WriteAsync(t.Timezone, NpgsqlDbType.Text);
                await import.WriteAsync(t.Command, NpgsqlDbType.Text);
                await import.WriteAsync(t.ArgsJson(), NpgsqlDbType.Jsonb);
                await import.WriteAsync(t.Enabled, NpgsqlDbType.Boolean);
                if (t.TimeoutSeconds is { } timeout) await import.WriteAsync(timeout, NpgsqlDbType.Integer);
                else await import.WriteNullAsync();
                await import.WriteAsync(t.MaxRetries, NpgsqlDbType.Integer);
                await import.WriteAsync(t.Tags.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text);
                await import.WriteAsync(t.ContentHash, NpgsqlDbType.Text);
            }
            await import.CompleteAsync();
        }
        await using var upsert = new NpgsqlCommand($"INSERT INTO floor_tasks SELECT * FROM floor_stage {UpdateSet}", connection, tx);
        var rows = await upsert.ExecuteNonQueryAsync();
        await tx.CommitAsync();
        return rows;
    }

    /// <summary>One row, one autocommit statement: the WAL flush every durable write pays at least once.</summary>
    public static async Task CommitOneRowAsync(NpgsqlDataSource dataSource, int i)
    {
        await using var command = dataSource.CreateCommand(
            "INSERT INTO floor_commit (id, v) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v");
        command.Parameters.Add(new NpgsqlParameter { Value = i });
        await command.ExecuteNonQueryAsync();
    }

    public static async Task CreateCommitTableAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("CREATE TABLE IF NOT EXISTS floor_commit (id integer PRIMARY KEY, v integer)");
        await command.ExecuteNonQueryAsync();
    }
}
