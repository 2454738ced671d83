using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ScheduleSync.Tasks;

/// <summary>
/// The JSON style of everything ScheduleSync prints or serves: snake_case property names and enum values, dictionary
/// keys (task ids, args) as they are. One definition for the API, the event feed and the CLI's --json.
/// </summary>
internal static class SnakeCaseJson
{
    /// <summary>Applies the naming to options made elsewhere (ASP.NET Core's HTTP JSON options).</summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        return options;
    }

    /// <summary>Compact, as the API answers: the event feed's payloads.</summary>
    public static readonly JsonSerializerOptions Web = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    /// <summary>
    /// For a person reading a terminal (--json): indented, nulls left out, no escaping beyond what JSON needs (`"` is
    /// <c>\"</c>, `+` is `+`).
    /// </summary>
    public static readonly JsonSerializerOptions Readable = new(Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
