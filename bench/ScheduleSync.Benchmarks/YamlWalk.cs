using YamlDotNet.Core;
using SY = SharpYaml;
using YD = YamlDotNet.Core.Events;

namespace ScheduleSync.Benchmarks;

/// <summary>
/// The YAML parser choice: each parser's event stream walked the way our loader walks it — every event pulled, its
/// type switched on, start and end positions (index, line, column) read, scalar value, style, anchor and tag looked at.
/// Each walk returns a digest of what it saw, so the walks can be checked against each other and are not optimised away.
/// </summary>
internal static class YamlWalk
{
    public static int YamlDotNetEvents(string text)
    {
        var parser = new Parser(new StringReader(text));
        var digest = 0;
        while (parser.MoveNext())
        {
            var e = parser.Current!;
            digest = digest * 31 + (int)e.Start.Index + (int)e.End.Line + (int)e.Start.Column;
            switch (e)
            {
                case YD.Scalar s:
                    digest += s.Value.Length + (int)s.Style + (s.Anchor.IsEmpty ? 0 : 1) + (s.Tag.IsEmpty ? 0 : 2);
                    break;
                case YD.MappingStart m:
                    digest += (int)m.Style + (m.Anchor.IsEmpty ? 0 : 1) + (m.Tag.IsEmpty ? 0 : 2);
                    break;
                case YD.SequenceStart q:
                    digest += (int)q.Style + (q.Anchor.IsEmpty ? 0 : 1) + (q.Tag.IsEmpty ? 0 : 2);
                    break;
                case YD.AnchorAlias:
                    digest += 7;
                    break;
            }
        }
        return digest;
    }

    /// <summary>SharpYaml 3.x, the classic event API (<c>Parser.CreateParser</c> → <c>IParser</c>).</summary>
    public static int SharpYamlEvents(string text)
    {
        var parser = SY.Parser.CreateParser(new StringReader(text));
        var digest = 0;
        while (parser.MoveNext())
        {
            var e = parser.Current!;
            digest = digest * 31 + e.Start.Index + e.End.Line + e.Start.Column;
            switch (e)
            {
                case SY.Events.Scalar s:
                    digest += s.Value.Length + (int)s.Style + (string.IsNullOrEmpty(s.Anchor) ? 0 : 1) + (string.IsNullOrEmpty(s.Tag) ? 0 : 2);
                    break;
                case SY.Events.MappingStart m:
                    digest += (int)m.Style + (string.IsNullOrEmpty(m.Anchor) ? 0 : 1) + (string.IsNullOrEmpty(m.Tag) ? 0 : 2);
                    break;
                case SY.Events.SequenceStart q:
                    digest += (int)q.Style + (string.IsNullOrEmpty(q.Anchor) ? 0 : 1) + (string.IsNullOrEmpty(q.Tag) ? 0 : 2);
                    break;
                case SY.Events.AnchorAlias:
                    digest += 7;
                    break;
            }
        }
        return digest;
    }

    /// <summary>SharpYaml 3.x, the System.Text.Json-style token reader (<c>Serialization.YamlReader</c>).</summary>
    public static int SharpYamlReader(string text)
    {
        var reader = SY.Serialization.YamlReader.Create(text, new SY.YamlSerializerOptions());
        var digest = 0;
        while (reader.Read())
        {
            digest = digest * 31 + reader.Start.Index + reader.End.Line + reader.Start.Column;
            switch (reader.TokenType)
            {
                case SY.Serialization.YamlTokenType.Scalar:
                    digest += (reader.ScalarValue?.Length ?? 0) + (int)reader.ScalarStyle + (string.IsNullOrEmpty(reader.Anchor) ? 0 : 1) + (string.IsNullOrEmpty(reader.Tag) ? 0 : 2);
                    break;
                case SY.Serialization.YamlTokenType.StartMapping or SY.Serialization.YamlTokenType.StartSequence:
                    digest += (string.IsNullOrEmpty(reader.Anchor) ? 0 : 1) + (string.IsNullOrEmpty(reader.Tag) ? 0 : 2);
                    break;
                case SY.Serialization.YamlTokenType.Alias:
                    digest += 7;
                    break;
            }
        }
        return digest;
    }

    /// <summary>Event counts and scalar text of each walk, to show the three see the same document.</summary>
    public static (int Events, int Scalars, long ScalarChars) Census(string text, string which)
    {
        int events = 0, scalars = 0;
        long chars = 0;
        switch (which)
        {
            case "YamlDotNet":
                var yd = new Parser(new StringReader(text));
                while (yd.MoveNext())
                {
                    events++;
                    if (yd.Current is YD.Scalar s) { scalars++; chars += s.Value.Length; }
                }
                break;
            case "SharpYaml events":
                var sy = SY.Parser.CreateParser(new StringReader(text));
                while (sy.MoveNext())
                {
                    events++;
                    if (sy.Current is SY.Events.Scalar s) { scalars++; chars += s.Value.Length; }
                }
                break;
            default:
                var reader = SY.Serialization.YamlReader.Create(text, new SY.YamlSerializerOptions());
                while (reader.Read())
                {
                    events++;
                    if (reader.TokenType == SY.Serialization.YamlTokenType.Scalar) { scalars++; chars += reader.ScalarValue?.Length ?? 0; }
                }
                break;
        }
        return (events, scalars, chars);
    }
}
