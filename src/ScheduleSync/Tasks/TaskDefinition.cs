using System.Collections.Immutable;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ScheduleSync.Tasks;

/// <summary>The kind of a scalar value in a task's <c>args</c> map.</summary>
public enum ArgKind { String, Integer, Float, Boolean }

/// <summary>One scalar argument value; <see cref="Text"/> is its canonical text.</summary>
public readonly record struct ArgValue(ArgKind Kind, string Text)
{
    public static ArgValue Of(string value) => new(ArgKind.String, value);
    public static ArgValue Of(long value) => new(ArgKind.Integer, value.ToString(CultureInfo.InvariantCulture));
    // -0.0 would be written as "-0", which reads back as the integer 0: it is 0.
    public static ArgValue Of(double value) => new(ArgKind.Float, (value == 0 ? 0d : value).ToString("R", CultureInfo.InvariantCulture));
    public static ArgValue Of(bool value) => new(ArgKind.Boolean, value ? "true" : "false");

    public object ToObject() => Kind switch
    {
        ArgKind.Integer => long.Parse(Text, CultureInfo.InvariantCulture),
        ArgKind.Float => double.Parse(Text, CultureInfo.InvariantCulture),
        ArgKind.Boolean => Text == "true",
        _ => Text,
    };
}

/// <summary>
/// A scheduled task in its normal form: defaults applied (name, timezone, enabled, max_retries), args sorted by key.
/// Two tasks are equal when their normal forms are equal; <see cref="ContentHash"/> identifies that form.
/// </summary>
public sealed record TaskDefinition
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public string? Description { get; init; }
    public required string Schedule { get; init; }
    public required string Timezone { get; init; }
    public required string Command { get; init; }
    public ImmutableSortedDictionary<string, ArgValue> Args { get; init; } = ImmutableSortedDictionary.Create<string, ArgValue>(StringComparer.Ordinal);
    public bool Enabled { get; init; } = true;
    public int? TimeoutSeconds { get; init; }
    public int MaxRetries { get; init; }
    public ImmutableArray<string> Tags { get; init; } = [];

    public bool Equals(TaskDefinition? other) =>
        other is not null && Id == other.Id && ContentHash == other.ContentHash;

    public override int GetHashCode() => HashCode.Combine(Id, ContentHash);

    // Cached; the copy constructor below leaves it empty so a `with` copy never carries a stale hash.
    private string? _contentHash;

    public TaskDefinition() { }

    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    private TaskDefinition(TaskDefinition original)
    {
        Id = original.Id;
        Name = original.Name;
        Description = original.Description;
        Schedule = original.Schedule;
        Timezone = original.Timezone;
        Command = original.Command;
        Args = original.Args;
        Enabled = original.Enabled;
        TimeoutSeconds = original.TimeoutSeconds;
        MaxRetries = original.MaxRetries;
        Tags = original.Tags;
    }

    /// <summary>
    /// Lowercase hex SHA-256 of <see cref="CanonicalJson"/>: stable across runs, machines and the key order of the source.
    /// </summary>
    public string ContentHash => _contentHash ??= ComputeHash();

    /// <summary>
    /// Takes the hash stored with this content (the database keeps it next to the row, the base next to its content)
    /// instead of computing it: a sync compares thousands of them.
    /// </summary>
    internal void AdoptStoredHash(string hash) => _contentHash ??= hash;

    /// <summary>
    /// The canonical serialisation that the content hash covers: compact UTF-8 JSON, fields in the order of
    /// <see cref="TaskFields.All"/>,
    /// every field present (null when absent), args keys sorted ordinally, numbers as their canonical text.
    /// The id is not part of it: the hash says what a task is, the id says which task.
    /// </summary>
    public byte[] CanonicalJson() => WriteCanonical().WrittenSpan.ToArray();

    private string ComputeHash()
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(WriteCanonical().WrittenSpan, hash);
        return Convert.ToHexStringLower(hash);
    }

    // One buffer and writer per thread: hashing every task of a large file allocates nothing but the hash string.
    [ThreadStatic] private static System.Buffers.ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    private System.Buffers.ArrayBufferWriter<byte> WriteCanonical()
    {
        var buffer = t_buffer ??= new System.Buffers.ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var json = t_writer ??= new Utf8JsonWriter(buffer, JsonOptions);
        json.Reset(buffer);
        json.WriteStartObject();
        foreach (var field in TaskFields.All)
        {
            json.WritePropertyName(field.Name);
            field.WriteJson(json, this);
        }
        json.WriteEndObject();
        json.Flush();
        return buffer;
    }

    // Only the escapes JSON requires (quote, backslash, control characters): '+', '<' or non-ASCII text stay as they are.
    internal static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    internal static void WriteArg(Utf8JsonWriter json, string key, ArgValue value)
    {
        json.WritePropertyName(key);
        switch (value.Kind)
        {
            case ArgKind.Integer:
            case ArgKind.Float:
                json.WriteRawValue(value.Text, skipInputValidation: true);
                break;
            case ArgKind.Boolean:
                json.WriteBooleanValue(value.Text == "true");
                break;
            default:
                json.WriteStringValue(value.Text);
                break;
        }
    }

    /// <summary>The args as a compact JSON object, the form stored in the database.</summary>
    public string ArgsJson()
    {
        var buffer = new MemoryStream(64);
        using (var json = new Utf8JsonWriter(buffer, JsonOptions))
        {
            json.WriteStartObject();
            foreach (var (key, value) in Args)
                WriteArg(json, key, value);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
