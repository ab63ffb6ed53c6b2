"""The gateway's Prometheus metrics (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .hub import Hub


class Metrics:
    """Prometheus metrics of one gateway."""

    def __init__(self, hub: Hub, proc: int | None = None) -> None:
        self.registry = CollectorRegistry()
        # Which of several processes on one port answered this scrape (each keeps its
        # own figures; a scraper sums the processes it has seen): -1 when alone.
        Gauge("gridwatch_ws_process", "Index of the gateway process that answered",
              registry=self.registry).set(-1 if proc is None else proc)
        self.clients = Gauge("gridwatch_ws_clients", "Connected WebSocket clients",
                             registry=self.registry)
        self.clients.set_function(lambda: len(hub.conns))
        self.depth = Gauge("gridwatch_ws_send_queue_depth", "Frames waiting, all clients",
                           registry=self.registry)
        self.depth.set_function(lambda: sum(len(c.outbox) for c in hub.conns))
        self.sent = Counter("gridwatch_ws_messages_sent", "Frames sent to clients",
                            registry=self.registry)
        self.slow = Counter("gridwatch_ws_closed_slow", "Clients closed for reading too slowly",
                            registry=self.registry)
        self.commands = Counter("gridwatch_ws_commands", "Commands from clients by outcome",
                                ["outcome"], registry=self.registry)
        self.checks = Counter("gridwatch_ws_session_checks",
                              "Session checks that read Redis (not cached), by outcome",
                              ["outcome"], registry=self.registry)
        self.bad_frames = Counter("gridwatch_ws_bad_frames", "Client frames refused, by reason",
                                  ["reason"], registry=self.registry)
        # Stream ids carry Redis's clock at XADD: from there to the frame written to
        # every ready recipient's socket (the worst entry of each fan-out pass).
        self.delivery = Histogram(
            "gridwatch_ws_delivery_seconds",
            "Channel entry appended in Redis -> written to its recipients' sockets",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
                     1.0, 2.0, 5.0, 10.0), registry=self.registry)
