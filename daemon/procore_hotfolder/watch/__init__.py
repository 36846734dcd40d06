"""Finding files and judging them complete: which names count (ignore), where a folder
lives (mounts), events and scans (watcher), settling (stability), writers (writers).
"""
