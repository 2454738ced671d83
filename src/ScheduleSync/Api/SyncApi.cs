using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ScheduleSync.Files;
using ScheduleSync.Sync;

namespace ScheduleSync.Api;

/// <summary>/api/sync: run now, status, dry-run plan, conflicts and their resolution.</summary>
internal static class SyncApi
{
    public static IEndpointRouteBuilder MapSync(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/sync").WithTags("Sync");
        group.MapPost("/", RunNow);
        group.MapGet("/status", async (SyncCoordinator coordinator, CancellationToken ct) =>
            TypedResults.Ok(await SyncStatusReader.ReadAsync(coordinator.Runner, ct, "api")));
        group.MapGet("/plan", Plan);
        group.MapGet("/conflicts", ListConflicts);
        group.MapGet("/conflicts/{id:long}", GetConflict);
        group.MapPost("/conflicts/{id:long}/resolve", Resolve);
        return app;
    }

    /// <summary>
    /// Runs a sync now. A run that could not happen for a passing cause (the file lock held by someone else, the file
    /// not a regular file or too large, the file unreadable) answers 503 with the reason; the server retries it.
    /// </summary>
    private static async Task<Results<Ok<object>, ProblemHttpResult>> RunNow(HttpContext http, SyncCoordinator coordinator,
        [FromQuery(Name = "allow_mass_delete")] bool? allowMassDelete, CancellationToken ct)
    {
        try
        {
            return TypedResults.Ok<object>(SyncJson.Summary(await coordinator.RequestAsync("api", ct, allowMassDelete ?? false)));
        }
        catch (Exception e) when (e is IOException or FileLockTimeoutException)
        {
            http.Response.Headers.RetryAfter = "1";
            return TypedResults.Problem(e.Message + " (the server retries the sync until it succeeds)",
                statusCode: StatusCodes.Status503ServiceUnavailable, title: "Sync could not run");
        }
    }

    private static async Task<Results<Ok<IEnumerable<object>>, ValidationProblem>> ListConflicts(ConflictService conflicts, string? status, CancellationToken ct)
    {
        if (status is not (null or "open" or "resolved" or "all"))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["status"] = [$"status must be open, resolved or all, got '{status}'"] },
                title: "Invalid query parameter");
        var list = await conflicts.ListAsync(status is null or "open" ? "open" : status == "all" ? null : status, ct);
        return TypedResults.Ok(list.Select(SyncJson.Conflict));
    }

    private static async Task<Results<Ok<object>, ValidationProblem>> Plan(SyncCoordinator coordinator, CancellationToken ct)
    {
        var (document, plan) = await coordinator.Runner.PlanAsync(ct: ct, trigger: "api");
        if (plan is null)
            return TypedResults.ValidationProblem(
                document.Problems.GroupBy(p => $"{p.Line}:{p.Column}").ToDictionary(g => g.Key, g => g.Select(p => p.Message).ToArray()),
                title: "The file is invalid; a sync would change nothing");
        return TypedResults.Ok(SyncJson.Plan(plan));
    }

    private static async Task<Results<Ok<object>, ProblemHttpResult>> GetConflict(long id, ConflictService conflicts, CancellationToken ct)
    {
        var conflict = await conflicts.GetAsync(id, ct);
        return conflict is null
            ? TypedResults.Problem($"conflict {id} does not exist", statusCode: StatusCodes.Status404NotFound, title: "Not found")
            : TypedResults.Ok(SyncJson.Conflict(conflict));
    }

    private static async Task<Results<Ok<object>, ValidationProblem, NotFound<ProblemDetails>, ProblemHttpResult>> Resolve(
        long id, HttpContext http, ConflictService conflicts, SyncCoordinator coordinator, CancellationToken ct)
    {
        var body = await TasksApi.ReadBodyAsync(http, ct);
        if (body.Problem is not null) return body.Problem;
        var json = body.Json;
        var errors = new Dictionary<string, string[]>();
        ResolutionChoice? choice = null;
        if (json.ValueKind != JsonValueKind.Object) errors["choice"] = ["the body must be an object such as { \"choice\": \"keep_yaml\" }"];
        else
        {
            foreach (var property in json.EnumerateObject())
                if (property.Name is not ("choice" or "fields" or "shown")) errors[property.Name] = [$"unknown field '{property.Name}'"];
            choice = json.TryGetProperty("choice", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() switch
            {
                "keep_yaml" => ResolutionChoice.KeepYaml,
                "keep_db" => ResolutionChoice.KeepDb,
                "merge" => ResolutionChoice.Merge,
                _ => null,
            } : null;
            if (choice is null) errors["choice"] = ["choice must be \"keep_yaml\", \"keep_db\" or \"merge\""];
        }
        Dictionary<string, JsonElement>? fields = null;
        if (json.ValueKind == JsonValueKind.Object && json.TryGetProperty("fields", out var f) && f.ValueKind != JsonValueKind.Null)
        {
            if (f.ValueKind != JsonValueKind.Object) errors["fields"] = ["fields must be an object of field values"];
            else fields = f.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
        }
        // The two versions the client decided on, as GET /api/sync/conflicts/{id} gave them: if either is not what exists
        // now, nothing is applied (409) — the client has not seen what it would overwrite.
        ConflictService.ShownVersions? shown = null;
        if (json.ValueKind == JsonValueKind.Object && json.TryGetProperty("shown", out var s) && s.ValueKind != JsonValueKind.Null)
        {
            if (s.ValueKind != JsonValueKind.Object || s.EnumerateObject().Any(p => p.Name is not ("yaml" or "db")))
                errors["shown"] = ["shown must be an object { \"yaml\": …, \"db\": … } holding the two versions as the conflict showed them"];
            else
                shown = new(s.TryGetProperty("yaml", out var y) ? y.Clone() : null, s.TryGetProperty("db", out var d) ? d.Clone() : null);
        }
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors, title: "Invalid resolution; nothing was changed");
        try
        {
            var resolved = await conflicts.ResolveAsync(id, choice!.Value, fields, "api", ct, shown);
            coordinator.Trigger("api");
            return TypedResults.Ok(SyncJson.Conflict(resolved));
        }
        catch (ConflictNotFoundException e)
        {
            return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status404NotFound, title: "Not found");
        }
        catch (ResolutionException e) when (e.Errors.Count > 0)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>(e.Errors), detail: e.Message, title: "Invalid resolution; nothing was changed");
        }
        catch (ResolutionException e)
        {
            return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status409Conflict, title: "Cannot resolve");
        }
    }
}
