using System.Net;
using ScheduleSync.Tests.Server;

namespace ScheduleSync.Tests.Ui;

/// <summary>The page and its assets come out of the executable itself, open to anyone, with a strict content policy.</summary>
[Collection(ServerCollection.Name)]
public sealed class UiServingTests
{
    [Theory]
    [InlineData("/", "text/html", "<script type=\"module\" src=\"/ui/app.js\">")]
    [InlineData("/ui/app.js", "text/javascript", "hashchange")]
    [InlineData("/ui/app.css", "text/css", "@media")]
    [InlineData("/ui/sync.js", "text/javascript", "/api/sync/conflicts/")]
    public async Task Page_and_assets_are_served_from_the_executable_without_the_token(string path, string type, string contains)
    {
        await using var server = await ServerFixture.StartAsync("ui_serve", options: o => o.Token = "page-token");
        using var anonymous = server.NewClient();

        using var response = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(contains, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", ServerFixture.Header(response, "Content-Security-Policy"), StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", ServerFixture.Header(response, "Content-Security-Policy"), StringComparison.Ordinal);
        Assert.Equal("nosniff", ServerFixture.Header(response, "X-Content-Type-Options"));

        // The data stays behind the token.
        using var api = await anonymous.GetAsync("/api/tasks");
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
    }

    [Theory]
    [InlineData("/ui/no-such-file.js")]
    [InlineData("/ui/../ScheduleSync.Ui.UiEndpoints.cs")]
    [InlineData("/ui/%2e%2e/appsettings.json")]
    [InlineData("/ui/")]
    public async Task Unknown_asset_is_not_found(string path)
    {
        await using var server = await ServerFixture.StartAsync("ui_404");
        using var response = await server.Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Unchanged_asset_is_answered_304_with_its_etag()
    {
        await using var server = await ServerFixture.StartAsync("ui_etag");
        using var first = await server.Http.GetAsync("/ui/app.js");
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/ui/app.js");
        request.Headers.IfNoneMatch.Add(etag);
        using var second = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotModified, second.StatusCode);
    }
}
