"""One file's way to Procore: the step driver (uploader) and what a try came to (outcome),
the outcome table (policy), the board of holds (why work waits: holds), the bytes (transfer,
progress), filing (destinations/) and the last step (finishing).
"""
