using Microsoft.AspNetCore.Http.HttpResults;
using ScheduleSync.Sync;

namespace ScheduleSync.Api;

/// <summary>/api/replicas: the copies of the file syncing with this database (SPEC §8), and forgetting one.</summary>
internal static class ReplicasApi
{
    public static IEndpointRouteBuilder MapReplicas(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/replicas").WithTags("Replicas");
        group.MapGet("/", async (SyncRunner runner, CancellationToken ct) =>
            TypedResults.Ok(await Replicas.ListAsync(runner.DataSource, runner.Replica, ct)));
        group.MapDelete("/{name}", Forget);
        return app;
    }

    private static async Task<Results<NoContent, NotFound<Microsoft.AspNetCore.Mvc.ProblemDetails>>> Forget(string name, SyncRunner runner, CancellationToken ct)
    {
        if (await Replicas.ForgetAsync(runner.DataSource, name, ct)) return TypedResults.NoContent();
        return TypedResults.NotFound(new Microsoft.AspNetCore.Mvc.ProblemDetails
        {
            Status = StatusCodes.Status404NotFound,
            Title = "No such replica",
            Detail = $"no replica named '{name}' (GET /api/replicas lists them)",
        });
    }
}
