using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using ScheduleSync.Database;
using ScheduleSync.Sync;
using ScheduleSync.Tasks;

namespace ScheduleSync.Api;

/// <summary>A task as the API shows it: its fields plus the row's version (also the ETag) and metadata.</summary>
internal sealed record TaskDto(
    string Id, string Name, string? Description, string Schedule, string Timezone, string Command,
    IReadOnlyDictionary<string, object> Args, bool Enabled, int? TimeoutSeconds, int MaxRetries, IReadOnlyList<string> Tags,
    long Version, DateTime CreatedAt, DateTime UpdatedAt, string? UpdatedBy, string ContentHash)
{
    /// <summary>True for a row that breaks a rule (written with plain SQL): shown as stored, with its problems, not exported.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Invalid { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Problems { get; init; }

    public static TaskDto From(StoredTask stored)
    {
        if (stored.Task is null) return FromInvalid(stored);
        var t = stored.Task;
        return new TaskDto(t.Id, t.Name, t.Description, t.Schedule, t.Timezone, t.Command,
            t.Args.ToDictionary(a => a.Key, a => a.Value.ToObject(), StringComparer.Ordinal), t.Enabled, t.TimeoutSeconds, t.MaxRetries,
            t.Tags, stored.Version, stored.CreatedAt, stored.UpdatedAt, stored.UpdatedBy, t.ContentHash);
    }

    private static TaskDto FromInvalid(StoredTask stored)
    {
        var r = stored.Raw!;
        return new TaskDto(stored.Id, r.Name ?? stored.Id, r.Description, r.Schedule ?? "", r.Timezone ?? "", r.Command ?? "",
            (r.Args ?? []).ToDictionary(a => a.Key, a => a.Value.ToObject(), StringComparer.Ordinal), r.Enabled ?? true,
            r.TimeoutSeconds is { } timeout ? (int)timeout : null, (int)(r.MaxRetries ?? 0), r.Tags ?? [],
            stored.Version, stored.CreatedAt, stored.UpdatedAt, stored.UpdatedBy, "")
        {
            Invalid = true,
            Problems = stored.Problems,
        };
    }
}

/// <summary>/api/tasks: CRUD through the same data layer and audit as everything else, then exported to the file.</summary>
internal static class TasksApi
{
    public static IEndpointRouteBuilder MapTasks(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks").WithTags("Tasks");
        group.MapGet("/", List);
        group.MapGet("/{id}", Get);
        group.MapPost("/", Create);
        group.MapPut("/{id}", Replace);
        group.MapDelete("/{id}", Delete);
        group.MapGet("/{id}/history", History);
        group.MapGet("/{id}/next-runs", NextRuns);
        return app;
    }

    private static async Task<Results<Ok<List<TaskDto>>, ValidationProblem>> List(TaskStore store, string? tag, string? enabled, CancellationToken ct)
    {
        // Bound by hand: a value the framework cannot bind gets a bare 400 with no word on which parameter was wrong.
        bool? enabledFilter = enabled switch
        {
            null => null,
            "true" => true,
            "false" => false,
            _ => null,
        };
        if (enabled is not null && enabledFilter is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["enabled"] = [$"enabled must be true or false, got '{enabled}'"] },
                title: "Invalid query parameter");
        var tasks = await store.ListAsync(ct);
        // Invalid rows (plain SQL) are listed too, flagged with their problems.
        return TypedResults.Ok(tasks
            .Select(TaskDto.From)
            .Where(t => tag is null || t.Tags.Contains(tag))
            .Where(t => enabledFilter is null || t.Enabled == enabledFilter)
            .ToList());
    }

    private static async Task<Results<Ok<TaskDto>, ProblemHttpResult>> Get(string id, TaskStore store, HttpContext http, CancellationToken ct)
    {
        var stored = await store.GetAsync(id, ct);
        if (stored is null) return NotFound(id);
        http.Response.Headers.ETag = ETag(stored.Version);
        return TypedResults.Ok(TaskDto.From(stored));
    }

    private static async Task<Results<Created<TaskDto>, ValidationProblem, ProblemHttpResult>> Create(
        HttpContext http, TaskStore store, SyncCoordinator coordinator, CancellationToken ct)
    {
        var body = await ReadBodyAsync(http, ct);
        if (body.Problem is not null) return body.Problem;
        var (task, errors) = TaskInput.Parse(body.Json, null, coordinator.DefaultTimezone);
        if (task is null) return TypedResults.ValidationProblem(errors, title: "The task is invalid; nothing was stored");
        using var write = coordinator.BeginWrite();
        StoredTask stored;
        try
        {
            stored = await store.CreateAsync(task, new ChangeContext("api", Actor(http)), ct);
        }
        catch (TaskExistsException e)
        {
            return TypedResults.Problem(e.Message + "; use PUT to replace it", statusCode: StatusCodes.Status409Conflict, title: "Task exists");
        }
        await ExportAsync(http, coordinator, write, task.Id, ct);
        http.Response.Headers.ETag = ETag(stored.Version);
        return TypedResults.Created($"/api/tasks/{Uri.EscapeDataString(task.Id)}", TaskDto.From(stored));
    }

    private static async Task<Results<Ok<TaskDto>, ValidationProblem, ProblemHttpResult>> Replace(
        string id, HttpContext http, TaskStore store, SyncCoordinator coordinator, CancellationToken ct)
    {
        var body = await ReadBodyAsync(http, ct);
        if (body.Problem is not null) return body.Problem;
        var (task, errors) = TaskInput.Parse(body.Json, id, coordinator.DefaultTimezone);
        if (task is null) return TypedResults.ValidationProblem(errors, title: "The task is invalid; nothing was stored");
        if (!TryIfMatch(http, out var expected, out var badIfMatch)) return badIfMatch!;
        using var write = coordinator.BeginWrite();
        StoredTask stored;
        try
        {
            stored = await store.UpdateAsync(task, expected, new ChangeContext("api", Actor(http)), ct);
        }
        catch (TaskNotFoundException)
        {
            return NotFound(id);
        }
        catch (VersionMismatchException e)
        {
            return PreconditionFailed(http, e);
        }
        await ExportAsync(http, coordinator, write, id, ct);
        http.Response.Headers.ETag = ETag(stored.Version);
        return TypedResults.Ok(TaskDto.From(stored));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(
        string id, HttpContext http, TaskStore store, SyncCoordinator coordinator, CancellationToken ct)
    {
        if (!TryIfMatch(http, out var expected, out var badIfMatch)) return badIfMatch!;
        using var write = coordinator.BeginWrite();
        long version;
        try
        {
            version = await store.DeleteAsync(id, expected, new ChangeContext("api", Actor(http)), ct);
        }
        catch (TaskNotFoundException)
        {
            return NotFound(id);
        }
        catch (VersionMismatchException e)
        {
            return PreconditionFailed(http, e);
        }
        await ExportAsync(http, coordinator, write, id, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<IReadOnlyList<AuditEntry>>, ProblemHttpResult>> History(string id, TaskStore store, int? limit, CancellationToken ct)
    {
        var entries = await store.HistoryAsync(id, Math.Clamp(limit ?? 200, 1, 10_000), ct);
        return entries.Count == 0 ? NotFound(id) : TypedResults.Ok(entries);
    }

    private static async Task<Results<Ok<NextRunsDto>, ProblemHttpResult, ValidationProblem>> NextRuns(
        string id, TaskStore store, TimeProvider time, int? count, CancellationToken ct)
    {
        var n = count ?? 5;
        if (n is < 1 or > 1000)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["count"] = ["count must be between 1 and 1000"] });
        var stored = await store.GetAsync(id, ct);
        if (stored is null) return NotFound(id);
        if (stored.Task is not { } task)
            return TypedResults.Problem($"task '{id}' is invalid in the database: {string.Join("; ", stored.Problems)}", statusCode: StatusCodes.Status409Conflict, title: "Invalid task");
        TaskRules.TryFindTimeZone(task.Timezone, out var zone);
        var cron = TaskRules.ParseSchedule(task.Schedule);
        var runs = new List<DateTimeOffset>(n);
        var from = time.GetUtcNow().UtcDateTime;
        while (runs.Count < n && cron.GetNextOccurrence(from, zone) is { } next)
        {
            runs.Add(TimeZoneInfo.ConvertTime(new DateTimeOffset(next, TimeSpan.Zero), zone));
            from = next;
        }
        return TypedResults.Ok(new NextRunsDto(task.Id, task.Schedule, task.Timezone, runs));
    }

    internal sealed record NextRunsDto(string Id, string Schedule, string Timezone, IReadOnlyList<DateTimeOffset> Runs);

    /// <summary>
    /// The database change is committed; now it is written to the file by a sync that starts after it (coalesced with
    /// other writes). When the file can't be written (invalid, being edited), the response says the export is pending;
    /// when an open conflict freezes the task, that nothing is exported until it is resolved (<c>frozen; conflict N</c>).
    /// </summary>
    private static async Task ExportAsync(HttpContext http, SyncCoordinator coordinator, SyncCoordinator.WriteTicket write, string id, CancellationToken ct)
    {
        string? pending;
        long? frozenBy = null;
        try
        {
            var result = await coordinator.RequestAsync("api", write, ct);
            pending = result.Status switch
            {
                SyncStatus.InvalidFile => "file invalid; exported once it is valid again",
                SyncStatus.Refused => "sync refused: " + result.Error,
                _ => null,
            };
            // The run knows whether any conflict is open: only then is the task's own looked up (not on every write).
            if (pending is null && result.OpenConflicts > 0) frozenBy = await OpenConflictAsync(coordinator, id, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            pending = "sync failed: " + e.Message;
        }
        // A header value must be one line of visible ASCII; the reason comes from messages that may not be.
        http.Response.Headers["ScheduleSync-Export"] =
            frozenBy is { } conflict ? string.Create(CultureInfo.InvariantCulture, $"frozen; conflict {conflict}")
            : pending is null ? "done" : "pending; " + HeaderSafe(pending);
    }

    /// <summary>The open conflict that freezes the task (nothing of it is exported until it is resolved), if any.</summary>
    private static async Task<long?> OpenConflictAsync(SyncCoordinator coordinator, string id, CancellationToken ct)
    {
        await using var command = coordinator.Runner.DataSource.CreateCommand("SELECT id FROM sync_conflicts WHERE task_id = $1 AND status = 'open' AND replica = $2");
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = id });
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = coordinator.Runner.Replica }); // this server's copy of the file
        return await command.ExecuteScalarAsync(ct) is long conflict ? conflict : null;
    }

    private static string HeaderSafe(string text)
    {
        var safe = new string([.. text.Select(c => c is >= ' ' and <= '~' ? c : ' ')]);
        return safe.Length <= 300 ? safe : safe[..300];
    }

    private static string Actor(HttpContext http) =>
        http.Request.Headers["X-Actor"] is { Count: > 0 } actor && actor[0] is { Length: > 0 and <= 100 } name
            ? "api:" + name
            : "api";

    private static string ETag(long version) => $"\"{version.ToString(CultureInfo.InvariantCulture)}\"";

    private static bool TryIfMatch(HttpContext http, out long? expected, out ProblemHttpResult? problem)
    {
        expected = null;
        problem = null;
        var header = http.Request.Headers.IfMatch.ToString();
        if (header.Length == 0 || header == "*") return true;
        if (long.TryParse(header.Trim().TrimStart('W', '/').Trim('"'), NumberStyles.None, CultureInfo.InvariantCulture, out var v))
        {
            expected = v;
            return true;
        }
        problem = TypedResults.Problem($"If-Match '{header}' is not a version ETag such as \"3\"", statusCode: StatusCodes.Status400BadRequest, title: "Bad If-Match");
        return false;
    }

    private static ProblemHttpResult PreconditionFailed(HttpContext http, VersionMismatchException e)
    {
        http.Response.Headers.ETag = ETag(e.Actual);
        return TypedResults.Problem(e.Message + "; reload it and try again", statusCode: StatusCodes.Status412PreconditionFailed, title: "Stale version");
    }

    private static ProblemHttpResult NotFound(string id) =>
        TypedResults.Problem($"task '{id}' does not exist", statusCode: StatusCodes.Status404NotFound, title: "Not found");

    internal readonly record struct Body(JsonElement Json, ProblemHttpResult? Problem);

    /// <summary>
    /// Reads the body as JSON; a malformed or oversized body becomes a problem response, and so does text that is not
    /// text (a string or key with invalid UTF-8 or a lone surrogate such as <c>"\ud800"</c>) or a key given twice
    /// in any object, each named by its path (<c>args.target</c>, <c>fields.schedule</c>).
    /// </summary>
    internal static async Task<Body> ReadBodyAsync(HttpContext http, CancellationToken ct)
    {
        try
        {
            using var document = await JsonDocument.ParseAsync(http.Request.Body, new JsonDocumentOptions { MaxDepth = 16 }, ct);
            var errors = JsonBodyCheck.Problems(document.RootElement);
            if (errors.Count > 0)
            {
                return new Body(default, TypedResults.Problem(new HttpValidationProblemDetails(errors)
                {
                    Title = "The body has invalid text or a key given twice; nothing was changed",
                    Status = StatusCodes.Status400BadRequest,
                }));
            }
            return new Body(document.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return new Body(default, TypedResults.Problem($"the body is not valid JSON: {e.Message}", statusCode: StatusCodes.Status400BadRequest, title: "Malformed JSON"));
        }
        catch (BadHttpRequestException e)
        {
            return new Body(default, TypedResults.Problem(e.Message, statusCode: e.StatusCode, title: "Bad request"));
        }
    }
}
