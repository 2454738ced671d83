using System.Text.Json;

namespace ScheduleSync.Api;

/// <summary>
/// Checks a parsed JSON body for what <see cref="JsonDocument"/> lets through but nothing downstream can use: strings
/// and keys that are not valid text (invalid UTF-8, a lone UTF-16 surrogate written as <c>\ud800</c>) and keys given
/// twice in one object (at any depth: <c>args</c> is held to the same rule as the top level). Every problem is listed,
/// keyed by its path.
/// </summary>
internal static class JsonBodyCheck
{
    public static Dictionary<string, string[]> Problems(JsonElement root)
    {
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        Walk(root, "", errors);
        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static void Walk(JsonElement element, string path, Dictionary<string, List<string>> errors)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var property in element.EnumerateObject())
                {
                    if (!TryText(() => property.Name, out var name))
                    {
                        Add(errors, path.Length == 0 ? "(key)" : path, $"a key {(path.Length == 0 ? "of the body" : $"in '{path}'")} is not valid text: {Why}");
                        continue;
                    }
                    var childPath = path.Length == 0 ? name : $"{path}.{name}";
                    if (!seen.Add(name)) Add(errors, childPath, $"'{name}' is given twice{(path.Length == 0 ? "" : $" in '{path}'")}");
                    Walk(property.Value, childPath, errors);
                }
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                    Walk(item, $"{path}[{index++}]", errors);
                break;
            case JsonValueKind.String:
                if (!TryText(element.GetString, out _))
                    Add(errors, path.Length == 0 ? "(body)" : path, $"'{(path.Length == 0 ? "the body" : path)}' is not valid text: {Why}");
                break;
        }
    }

    private const string Why = "it holds invalid UTF-8 or a lone UTF-16 surrogate (such as \\ud800)";

    /// <summary>Decodes a string or key; false when it is not valid UTF-8 or decodes to a lone surrogate.</summary>
    private static bool TryText(Func<string?> read, out string text)
    {
        try
        {
            text = read() ?? "";
        }
        catch (InvalidOperationException)
        {
            text = "";
            return false;
        }
        // In case an escape decodes without complaint to a lone surrogate: not text either (it cannot be stored).
        return !HasLoneSurrogate(text);
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) return true;
        }
        return false;
    }

    private static void Add(Dictionary<string, List<string>> errors, string key, string message)
    {
        if (!errors.TryGetValue(key, out var list)) errors[key] = list = [];
        list.Add(message);
    }
}
