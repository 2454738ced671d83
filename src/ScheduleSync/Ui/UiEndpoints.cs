using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace ScheduleSync.Ui;

/// <summary>
/// The web page: <c>/</c> and its assets under <c>/ui/</c>, embedded in the executable (Ui/wwwroot, through the
/// embedded-files manifest), so <c>schedsync serve</c> needs nothing beside itself. The page is plain HTML, CSS and
/// JavaScript modules that talk to the same /api and /ws as every other client.
/// </summary>
internal static class UiEndpoints
{
    private static readonly Lazy<IFileProvider> Files = new(() => new ManifestEmbeddedFileProvider(typeof(UiEndpoints).Assembly, "Ui/wwwroot"));
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    // Everything the page loads comes from this server; no inline script, no framing (clickjacking), no referrer.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

    public static IEndpointRouteBuilder MapUi(this IEndpointRouteBuilder app)
    {
        // The page and its assets carry no data: anyone may load them; the data behind /api and /ws stays guarded.
        app.MapGet("/", (HttpContext http) => Serve(http, "index.html")).AllowAnonymous().ExcludeFromDescription();
        app.MapGet("/ui/{**path}", (HttpContext http, string? path) => Serve(http, path ?? "")).AllowAnonymous().ExcludeFromDescription();
        return app;
    }

    private static async Task Serve(HttpContext http, string path)
    {
        var file = path.Length == 0 || path.Contains("..", StringComparison.Ordinal) ? null : Files.Value.GetFileInfo(path);
        if (file is not { Exists: true } || file.IsDirectory)
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var headers = http.Response.Headers;
        headers.ContentType = ContentTypes.TryGetContentType(path, out var type) ? type + (type.StartsWith("text/", StringComparison.Ordinal) || type.EndsWith("javascript", StringComparison.Ordinal) ? "; charset=utf-8" : "") : "application/octet-stream";
        // Small files from the executable itself: always revalidate so a new build is picked up at once.
        var etag = new EntityTagHeaderValue($"\"{file.LastModified.ToUnixTimeSeconds():x}-{file.Length:x}\"");
        headers.ETag = etag.ToString();
        headers.CacheControl = "no-cache";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XFrameOptions = "DENY";
        if (http.Request.Headers.IfNoneMatch.ToString() == etag.ToString())
        {
            http.Response.StatusCode = StatusCodes.Status304NotModified;
            return;
        }
        headers.ContentLength = file.Length;
        await using var stream = file.CreateReadStream();
        await stream.CopyToAsync(http.Response.Body, http.RequestAborted);
    }
}
