using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Npgsql;

namespace ScheduleSync.Hosting;

internal sealed class BearerTokenOptions : AuthenticationSchemeOptions
{
    /// <summary>The API token; null or empty: none configured (the server then listens on loopback only).</summary>
    public string? Token { get; set; }
}

/// <summary>
/// <c>Authorization: Bearer &lt;token&gt;</c> (scheme case-insensitive, token compared in constant time). A browser
/// cannot set headers on a WebSocket, so <c>/ws</c> also takes <c>?access_token=</c> (SignalR's convention); the query
/// is never logged (see <see cref="ServerSecurity.AddServerSecurity"/>). With no token configured every caller is
/// "local": the loopback rule is then what keeps others out.
/// </summary>
internal sealed class BearerTokenHandler(IOptionsMonitor<BearerTokenOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<BearerTokenOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";
    public const string QueryParameter = "access_token";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (string.IsNullOrEmpty(Options.Token))
            return Task.FromResult(Success("local"));

        string? given = null;
        var header = Request.Headers.Authorization.ToString();
        if (header.Length > 0)
        {
            var space = header.IndexOf(' ', StringComparison.Ordinal);
            if (space < 0 || !header.AsSpan(0, space).Equals(SchemeName, StringComparison.OrdinalIgnoreCase))
                return Task.FromResult(AuthenticateResult.Fail("the Authorization header is not a Bearer token"));
            given = header[(space + 1)..].Trim();
        }
        else if (Request.Path.StartsWithSegments("/ws") && Request.Query.TryGetValue(QueryParameter, out var query))
        {
            given = query.ToString();
        }
        if (given is null) return Task.FromResult(AuthenticateResult.NoResult());
        return Task.FromResult(TokenEquals(given, Options.Token) ? Success("api") : AuthenticateResult.Fail("invalid token"));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = SchemeName;
        await Results.Problem("a valid 'Authorization: Bearer <token>' header is required", statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized")
            .ExecuteAsync(Context);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        await Results.Problem("this request is not allowed", statusCode: StatusCodes.Status403Forbidden, title: "Forbidden").ExecuteAsync(Context);

    private AuthenticateResult Success(string name) =>
        AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName)), SchemeName));

    /// <summary>Both sides hashed first, so the comparison takes the same time whatever the lengths.</summary>
    private static bool TokenEquals(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}

/// <summary>Authentication, authorization and the browser rules (<see cref="BrowserGuard"/>), wired in one place.</summary>
internal static class ServerSecurity
{
    public static IServiceCollection AddServerSecurity(this IServiceCollection services, ILoggingBuilder logging, string? token)
    {
        // AddAuthenticationCore, not AddAuthentication: the latter brings Data Protection, which writes a key ring to
        // the home folder on start-up, for cookies this server does not use.
        services.AddWebEncoders();
        services.AddAuthenticationCore(o => o.DefaultScheme = BearerTokenHandler.SchemeName);
        new AuthenticationBuilder(services)
            .AddScheme<BearerTokenOptions, BearerTokenHandler>(BearerTokenHandler.SchemeName, o => o.Token = token);
        // Closed by default: an endpoint that says nothing about authorization needs an authenticated caller. Only
        // endpoints marked AllowAnonymous (health probes, the web page's static files) are open.
        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(BearerTokenHandler.SchemeName).RequireAuthenticatedUser().Build());
        services.AddSingleton<ListenState>();
        services.AddHostedService<ListenAddressCheck>();
        // The hosting diagnostics log each request's URL, which for /ws may carry ?access_token=: never at any level.
        // (A provider-specific rule in the configuration would outrank a general one, hence the console rule too.)
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        logging.AddFilter<ConsoleLoggerProvider>("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        return services;
    }

    public static WebApplication UseServerSecurity(this WebApplication app)
    {
        app.UseMiddleware<BrowserGuard>();
        app.UseAuthentication();
        app.UseAuthorization();
        return app;
    }

    /// <summary>A connection string fit for a log line or a message: the password removed.</summary>
    public static string WithoutPassword(string connectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString) { Password = null }.ConnectionString;
        }
        catch (ArgumentException)
        {
            return "(unparseable connection string)";
        }
    }
}
