using System.Text.RegularExpressions;
using ScheduleSync.Tests.Docs;

namespace ScheduleSync.Tests;

/// <summary>
/// The folders of src/ScheduleSync depend one way (issue 12, README "Layout"). A folder's references are read from its
/// .cs files: <c>using ScheduleSync.X</c> (also <c>static</c> and <c>global</c>) and qualified names in code
/// (<c>ScheduleSync.X.T</c>, or <c>X.T</c> where T is a type declared in namespace ScheduleSync.X); comments and
/// string literals are ignored.
/// </summary>
public sealed partial class ArchitectureTests
{
    /// <summary>
    /// The allowed direction: a folder may use only folders of a lower layer. Bottom: Files (file-system code) and Tasks
    /// (the model); then Yaml, Database and Events (the event log); Sync; the HTTP surfaces Api and Ui; Hosting, the one
    /// composition root, wires them; Cli, the commands, builds its services through Hosting; Program.cs starts it.
    /// </summary>
    private static readonly Dictionary<string, int> Layers = new(StringComparer.Ordinal)
    {
        ["Files"] = 0,
        ["Tasks"] = 0,
        ["Yaml"] = 1,
        ["Database"] = 1,
        ["Events"] = 1,
        ["Sync"] = 2,
        ["Api"] = 3,
        ["Ui"] = 3,
        ["Hosting"] = 4,
        ["Cli"] = 5,
        [RootFolder] = 6,
    };

    private const string RootFolder = "(root)";

    [Fact]
    public void Folders_of_src_have_no_dependency_cycle()
    {
        var graph = FolderGraph.Read(SourceRoot);
        Assert.True(graph.Edges.Count > 5, $"read too few references under {SourceRoot}: {graph.Describe()}");

        var cycles = graph.Cycles();

        Assert.True(cycles.Count == 0,
            "folders that depend on each other (each line: a cycle, then the references that make it):\n" +
            string.Join("\n", cycles.Select(graph.DescribeCycle)));
    }

    [Fact]
    public void Folders_of_src_only_use_lower_layers()
    {
        var graph = FolderGraph.Read(SourceRoot);
        var unknown = graph.Folders.Where(f => !Layers.ContainsKey(f)).ToList();
        Assert.True(unknown.Count == 0, $"folders without a layer (add them to {nameof(Layers)} and to README \"Layout\"): {string.Join(", ", unknown)}");

        var upward = graph.Edges
            .Where(e => Layers[e.Key.To] >= Layers[e.Key.From])
            .Select(e => $"{e.Key.From} (layer {Layers[e.Key.From]}) -> {e.Key.To} (layer {Layers[e.Key.To]}): {string.Join(", ", e.Value.Take(3))}")
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.True(upward.Count == 0, "references to a folder of the same or a higher layer:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void Every_file_declares_the_namespace_of_its_folder()
    {
        var wrong = new List<string>();
        foreach (var file in FolderGraph.SourceFiles(SourceRoot))
        {
            var folder = FolderGraph.FolderOf(SourceRoot, file);
            var expected = folder == RootFolder ? "ScheduleSync" : $"ScheduleSync.{folder}";
            foreach (Match m in NamespaceLine().Matches(File.ReadAllText(file)))
                if (m.Groups[1].Value != expected && !m.Groups[1].Value.StartsWith(expected + ".", StringComparison.Ordinal))
                    wrong.Add($"{Path.GetRelativePath(SourceRoot, file)}: namespace {m.Groups[1].Value}, expected {expected}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void Cycle_search_finds_cycles_longer_than_two()
    {
        var graph = new FolderGraph();
        graph.Add("A", "B", "a.cs:1");
        graph.Add("B", "C", "b.cs:1");
        graph.Add("C", "A", "c.cs:1");
        graph.Add("C", "D", "c.cs:2");
        graph.Add("D", "E", "d.cs:1");

        var cycle = Assert.Single(graph.Cycles());

        Assert.Equal(["A", "B", "C"], cycle.Order(StringComparer.Ordinal));
        Assert.Contains("A -> B -> C -> A", graph.DescribeCycle(cycle), StringComparison.Ordinal);
    }

    [Fact]
    public void Qualified_names_count_only_when_they_name_a_type_of_the_folder()
    {
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal)
        {
            ["Hosting"] = ["StateDirectory"],
            ["Tasks"] = ["TaskDefinition"],
        };
        const string code = """
            using ScheduleSync.Yaml;
            using static ScheduleSync.Database.TaskStore;
            // Hosting.StateDirectory in a comment does not count
            var a = Hosting.StateDirectory.DefaultDataDirectory(config);
            var b = host.Tasks.ListAsync(ct);
            var c = "Tasks.TaskDefinition";
            var d = global::ScheduleSync.Events.EventHub.Create();
            """;

        var references = FolderGraph.References(code, declared).Select(r => r.Folder).ToList();

        Assert.Equal(["Database", "Events", "Hosting", "Yaml"], references.Distinct().Order(StringComparer.Ordinal));
    }

    private static string SourceRoot => DocsFiles.Path(Path.Combine("src", "ScheduleSync"));

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceLine();
}

/// <summary>Which top folder of src/ScheduleSync references which, and where (file:line).</summary>
internal sealed partial class FolderGraph
{
    public SortedDictionary<(string From, string To), List<string>> Edges { get; } = new();

    public SortedSet<string> Folders { get; } = new(StringComparer.Ordinal);

    public void Add(string from, string to, string where)
    {
        Folders.Add(from);
        Folders.Add(to);
        if (from == to) return;
        if (!Edges.TryGetValue((from, to), out var list)) Edges[(from, to)] = list = [];
        list.Add(where);
    }

    public static IEnumerable<string> SourceFiles(string root) =>
        Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar).Any(p => p is "obj" or "bin"))
            .Order(StringComparer.Ordinal);

    public static string FolderOf(string root, string file)
    {
        var parts = Path.GetRelativePath(root, file).Split(Path.DirectorySeparatorChar);
        return parts.Length > 1 ? parts[0] : "(root)";
    }

    public static FolderGraph Read(string root)
    {
        var files = SourceFiles(root).Select(f => (Path: f, Folder: FolderOf(root, f), Code: Strip(File.ReadAllText(f)))).ToList();
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var ns = Namespace().Match(file.Code);
            if (!ns.Success || !ns.Groups[1].Value.StartsWith("ScheduleSync.", StringComparison.Ordinal)) continue;
            var top = ns.Groups[1].Value.Split('.')[1];
            if (!declared.TryGetValue(top, out var types)) declared[top] = types = new(StringComparer.Ordinal);
            foreach (Match m in TypeDeclaration().Matches(file.Code)) types.Add(m.Groups[1].Value);
        }

        var graph = new FolderGraph();
        foreach (var file in files)
        {
            graph.Folders.Add(file.Folder);
            foreach (var (folder, line) in References(file.Code, declared))
                graph.Add(file.Folder, folder, $"{Path.GetRelativePath(root, file.Path)}:{line}");
        }
        return graph;
    }

    /// <summary>The folders <paramref name="code"/> refers to, with the line of each reference.</summary>
    public static IEnumerable<(string Folder, int Line)> References(string code, IReadOnlyDictionary<string, HashSet<string>> declared)
    {
        code = Strip(code);
        foreach (Match m in UsingDirective().Matches(code))
            yield return (m.Groups[1].Value, LineOf(code, m.Index));
        foreach (Match m in QualifiedName().Matches(code))
        {
            if (code.AsSpan(0, m.Index).TrimEnd().EndsWith("using", StringComparison.Ordinal)) continue; // a using directive, counted above
            var folder = m.Groups[2].Value;
            var prefixed = m.Groups[1].Success;
            if (prefixed || (declared.TryGetValue(folder, out var types) && types.Contains(m.Groups[3].Value)))
                yield return (folder, LineOf(code, m.Index));
        }
    }

    /// <summary>The strongly connected components with more than one folder: each is one or more cycles.</summary>
    public List<List<string>> Cycles()
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<List<string>>();
        var next = 0;

        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in Successors(v))
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string x;
            do
            {
                x = stack.Pop();
                onStack.Remove(x);
                component.Add(x);
            } while (x != v);
            if (component.Count > 1) result.Add(component);
        }

        foreach (var folder in Folders)
            if (!index.ContainsKey(folder)) Visit(folder);
        return result;
    }

    /// <summary>"A -> B -> A" (a shortest cycle through the component's first folder), then every edge inside it with where it is made.</summary>
    public string DescribeCycle(List<string> component)
    {
        var members = component.ToHashSet(StringComparer.Ordinal);
        var start = component.Order(StringComparer.Ordinal).First();
        var path = ShortestCycle(start, members);
        var edges = Edges.Where(e => members.Contains(e.Key.From) && members.Contains(e.Key.To))
            .Select(e => $"  {e.Key.From} -> {e.Key.To}: {string.Join(", ", e.Value.Take(3))}{(e.Value.Count > 3 ? $" (+{e.Value.Count - 3})" : "")}");
        return $"{string.Join(" -> ", path)}\n{string.Join("\n", edges)}";
    }

    public string Describe() => string.Join("; ", Edges.Keys.Select(e => $"{e.From} -> {e.To}"));

    private IEnumerable<string> Successors(string v) => Edges.Keys.Where(e => e.From == v).Select(e => e.To);

    private List<string> ShortestCycle(string start, HashSet<string> members)
    {
        var previous = new Dictionary<string, string>(StringComparer.Ordinal);
        var queue = new Queue<string>([start]);
        while (queue.Count > 0)
        {
            var v = queue.Dequeue();
            foreach (var w in Successors(v).Where(members.Contains))
            {
                if (w == start)
                {
                    var path = new List<string> { start };
                    for (var x = v; x != start; x = previous[x]) path.Insert(1, x);
                    path.Add(start);
                    return path;
                }
                if (previous.TryAdd(w, v)) queue.Enqueue(w);
            }
        }
        return [start];
    }

    private static int LineOf(string code, int offset) => code.AsSpan(0, offset).Count('\n') + 1;

    /// <summary>Blanks comments and string/char literals (keeping line breaks, so line numbers stay right).</summary>
    private static string Strip(string code) =>
        CommentOrLiteral().Replace(code, m => Regex.Replace(m.Value, @"[^\n]", " "));

    [GeneratedRegex(@"""""""[\s\S]*?""""""|@""(?:[^""]|"""")*""|\$?""(?:[^""\\\n]|\\.)*""|'(?:[^'\\\n]|\\.)'|//[^\n]*|/\*[\s\S]*?\*/")]
    private static partial Regex CommentOrLiteral();

    [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?ScheduleSync\.(\w+)", RegexOptions.Multiline)]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"(?<![\w.])(?:global::)?(ScheduleSync\.)?(Api|Cli|Database|Events|Files|Hosting|Sync|Tasks|Ui|Yaml|\w+)\.(\w+)")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    [GeneratedRegex(@"\b(?:class|record|struct|enum|interface)\s+(\w+)")]
    private static partial Regex TypeDeclaration();
}
