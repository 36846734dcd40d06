"""The files of state_dir: the journal (journal, schema), the ledger, the state lock and
the status snapshot.
"""
