"""The user's files: look and open safely (sourcefile), leases (leases), moves and writes
that never overwrite (nooverwrite, clash_names), where originals go (archiver).
"""
