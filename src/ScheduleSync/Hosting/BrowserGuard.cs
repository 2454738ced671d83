using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http.Features;

namespace ScheduleSync.Hosting;

/// <summary>
/// What keeps a web page the operator happens to visit from using the API (SPEC §5), with or without a token:
/// <list type="bullet">
/// <item>DNS rebinding: a <c>Host</c> the server does not answer to is refused (421), so a page served from an
/// attacker's name that now resolves to 127.0.0.1 reads nothing.</item>
/// <item>CSRF: a state-changing request, or the <c>/ws</c> upgrade, whose <c>Origin</c> is not the server's own (or a
/// configured one), or that the browser marks <c>Sec-Fetch-Site: cross-site</c>, is refused (403); a state-changing
/// request with a body must be JSON (415), which a browser cannot send cross-origin without a CORS preflight, and
/// this server answers no preflight.</item>
/// </list>
/// Requests also wait here until the bound addresses passed the loopback rule (<see cref="ListenAddressCheck"/>).
/// </summary>
internal sealed class BrowserGuard(RequestDelegate next, ListenState state)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!state.Ready.IsCompletedSuccessfully || !state.Ready.Result)
        {
            if (!await state.Ready.WaitAsync(context.RequestAborted))
            {
                context.Abort();
                return;
            }
        }
        var request = context.Request;
        if (!state.IsAllowedHost(request.Host))
        {
            await RefuseAsync(context, StatusCodes.Status421MisdirectedRequest, "Unknown host",
                $"this server does not answer to the host '{request.Host.Host}'; add it to ScheduleSync:Server:AllowedHosts if it should");
            return;
        }

        var changesState = !(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method) || HttpMethods.IsTrace(request.Method));
        var upgrade = request.Headers.Upgrade.Count > 0 || HttpMethods.IsConnect(request.Method) || request.Path.StartsWithSegments("/ws");
        if (changesState || upgrade)
        {
            if (ForeignOrigin(request) is { } foreign)
            {
                await RefuseAsync(context, StatusCodes.Status403Forbidden, "Cross-origin request refused",
                    $"{foreign}; add the page's origin to ScheduleSync:Server:AllowedOrigins if it should reach this server");
                return;
            }
        }
        if (changesState && HasBody(context) && !IsJson(request.ContentType))
        {
            await RefuseAsync(context, StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"a {request.Method} body must be application/json, not '{request.ContentType ?? "(no Content-Type)"}'");
            return;
        }
        await next(context);
    }

    /// <summary>Why the request comes from another site, or null when it does not (or says nothing: curl, scripts).</summary>
    private string? ForeignOrigin(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        if (origin.Length > 0)
        {
            var normalized = ListenState.NormalizeOrigin(origin);
            var own = ListenState.NormalizeOrigin($"{request.Scheme}://{request.Host.Value}");
            if (normalized is not null && (normalized == own || state.AllowedOrigins.Contains(normalized))) return null;
            return $"the request comes from the origin '{origin}', not from this server ({own ?? "unknown"})";
        }
        return string.Equals(request.Headers["Sec-Fetch-Site"].ToString(), "cross-site", StringComparison.OrdinalIgnoreCase)
            ? "the browser says the request comes from another site (Sec-Fetch-Site: cross-site)"
            : null;
    }

    private static bool HasBody(HttpContext context) =>
        context.Request.ContentLength > 0
        || (context.Request.ContentLength is null && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);

    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var parsed) && parsed.MediaType is { } type
        && (type.Equals("application/json", StringComparison.OrdinalIgnoreCase) || (type.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && type.EndsWith("+json", StringComparison.OrdinalIgnoreCase)));

    private static Task RefuseAsync(HttpContext context, int status, string title, string detail) =>
        Results.Problem(detail, statusCode: status, title: title).ExecuteAsync(context);
}
