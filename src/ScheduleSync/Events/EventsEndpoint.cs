using System.Globalization;
using System.Net.WebSockets;
using System.Text;

namespace ScheduleSync.Events;

/// <summary>The WebSocket feed <c>/ws</c> (SPEC §6): one JSON text message per event; <c>?since=n</c> catches up from
/// the event log; a <c>since</c> that is not a whole number >= 0 is answered 400 before the upgrade.</summary>
internal static class EventsEndpoint
{
    public static IEndpointRouteBuilder MapEvents(this IEndpointRouteBuilder app)
    {
        app.Map("/ws", async (HttpContext context, EventHub hub, IHostApplicationLifetime lifetime) =>
        {
            long? since = null;
            if (context.Request.Query.TryGetValue("since", out var given))
            {
                if (given.Count != 1 || !long.TryParse(given[0], NumberStyles.None, CultureInfo.InvariantCulture, out var s))
                    return Results.ValidationProblem(
                        new Dictionary<string, string[]> { ["since"] = [$"since must be one whole number >= 0 (the last seq received), not '{given}'"] },
                        title: "Invalid query parameter");
                since = s;
            }
            if (!context.WebSockets.IsWebSocketRequest)
                return Results.Problem("this endpoint speaks WebSocket only", statusCode: StatusCodes.Status400BadRequest);
            // Subscribed before the upgrade is answered, so a connected client is also subscribed. Without since, "live"
            // means committed after this request: events committed before it that the feed has not broadcast yet (the
            // start-up sync's, say) are not sent; they are in the log for ?since=.
            var committed = since is null ? await hub.CommittedSeqAsync(context.RequestAborted) : 0;
            using var subscription = hub.Subscribe(since, committed);
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping, subscription.Dropped);
            var reading = DrainIncomingAsync(socket, stop);
            try
            {
                await foreach (var e in subscription.ReadAllAsync(stop.Token))
                    await socket.SendAsync(Encoding.UTF8.GetBytes(e.Json), WebSocketMessageType.Text, true, stop.Token);
            }
            catch (Exception e) when (e is SlowClientException || subscription.Dropped.IsCancellationRequested)
            {
                await CloseAsync(socket, WebSocketCloseStatus.PolicyViolation, "too slow: dropped, reconnect with ?since=");
                return Results.Empty;
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
                // Client gone or server stopping.
            }
            catch (Npgsql.NpgsqlException)
            {
                // The replay could not read the event log (the database is down): the client tries again later.
                await CloseAsync(socket, WebSocketCloseStatus.InternalServerError, "event log unavailable; reconnect with ?since=");
                return Results.Empty;
            }
            await CloseAsync(socket, WebSocketCloseStatus.NormalClosure, lifetime.ApplicationStopping.IsCancellationRequested ? "server stopping" : "bye");
            await reading;
            return Results.Empty;
        });
        return app;
    }

    /// <summary>Reads (and ignores) what the client sends, so a close from its side is noticed.</summary>
    private static async Task DrainIncomingAsync(WebSocket socket, CancellationTokenSource stop)
    {
        var buffer = new byte[1024];
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var result = await socket.ReceiveAsync(buffer, stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
        }
        await stop.CancelAsync();
    }

    private static async Task CloseAsync(WebSocket socket, WebSocketCloseStatus status, string reason)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.CloseOutputAsync(status, reason, timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
        }
    }
}
