"""The short-lived commands beside the daemon: status, explain, retry (reporting);
projects, folders, albums and the online part of check (discovery).
"""
