using System.Text.Json;
using System.Text.RegularExpressions;
using ScheduleSync.Tests.Infrastructure;
using ScheduleSync.Tests.Server;

namespace ScheduleSync.Tests.Docs;

/// <summary>docs/api.md is scripts/api-reference.py applied to a real server's GET /openapi.json.</summary>
[Collection(ServerCollection.Name)]
public sealed partial class DocsApiReferenceTests
{
    [GeneratedRegex(@"^## (GET|POST|PUT|PATCH|DELETE) (/\S*)$", RegexOptions.Multiline)]
    private static partial Regex Operation();

    [Fact]
    public async Task Api_reference_documents_exactly_the_paths_of_the_openapi_document()
    {
        await using var server = await ServerFixture.StartAsync("docs_api");
        var openApi = await server.Http.GetStringAsync("/openapi.json");
        using var document = JsonDocument.Parse(openApi);
        var served = document.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject().Select(method => $"{method.Name.ToUpperInvariant()} {path.Name}"))
            .Order(StringComparer.Ordinal).ToList();
        var committed = await File.ReadAllTextAsync(DocsFiles.Path("docs/api.md"));
        var documented = Operation().Matches(committed).Select(m => $"{m.Groups[1].Value} {m.Groups[2].Value}").Order(StringComparer.Ordinal).ToList();

        Assert.Contains("GET /api/tasks", served);
        Assert.True(served.SequenceEqual(documented),
            $"docs/api.md documents [{string.Join(", ", documented)}] but the server serves [{string.Join(", ", served)}]: run scripts/api-reference.sh");

        using var folder = new TempDirectory();
        var json = folder.File("openapi.json");
        await File.WriteAllTextAsync(json, openApi);
        var current = await DocsFiles.RunAsync("/usr/bin/python3", [DocsFiles.Path("scripts/api-reference.py"), json]);
        Assert.True(committed == current,
            "docs/api.md does not match the server's OpenAPI document: run scripts/api-reference.sh and commit docs/api.md\n"
            + DocsFiles.FirstDifference(committed, current));
    }
}
