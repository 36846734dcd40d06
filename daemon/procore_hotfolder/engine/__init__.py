"""The running daemon: the composition root (compose), the thread owner (service), the
scanner, the scheduler and its queue (scanner, scheduler, dispatch), run modes, systemd
(heartbeat), what it shows (publisher, pace).
"""
