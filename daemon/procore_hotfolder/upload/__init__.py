"""One file's way to Procore: the step driver (uploader), the outcome table (policy),
pauses, the bytes (transfer, progress), filing (destinations/) and the last steps
(finishing).
"""
