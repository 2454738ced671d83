using System.Diagnostics.Metrics;

namespace ScheduleSync.Events;

/// <summary>
/// The Meter "ScheduleSync" (shared with <c>Sync.Telemetry</c>, which adds the run counters and spans) and the event
/// feed's counters, recorded by <see cref="EventHub"/>.
/// </summary>
internal static class EventTelemetry
{
    public const string MeterName = "ScheduleSync";

    public static readonly Meter Meter = new(MeterName);

    /// <summary>Events handed to WebSocket clients (one per event, whatever the number of clients).</summary>
    public static readonly Counter<long> EventsPublished = Meter.CreateCounter<long>("schedsync.events.published", "{event}", "Events dispatched to WebSocket clients");

    /// <summary>Events a client's full queue could not take: the slow client is disconnected (it reconnects with ?since=).</summary>
    public static readonly Counter<long> EventsDropped = Meter.CreateCounter<long>("schedsync.events.dropped", "{event}", "Events not delivered because a slow WebSocket client was disconnected");
}
