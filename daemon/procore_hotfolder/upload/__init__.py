"""One file's way to Procore: the step driver (pipeline), the outcome table (policy),
the board of holds (why work waits: holds), the bytes (transfer, progress), filing
(destinations/) and the last steps (finishing).
"""
