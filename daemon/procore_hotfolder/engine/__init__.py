"""The running daemon: the composition root (compose), the thread owner (service), the
scheduler and its queue (scheduler, dispatch), run modes, systemd (heartbeat), what it
shows (publisher, pace).
"""
