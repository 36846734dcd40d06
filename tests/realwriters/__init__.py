"""Real writers of the drop folder, for tests: a Samba server (``samba``) and an SMB2 client
that copies as Windows does (``smb_copy``), a local copier (``local_copy.py``), rsync's
remote shell that stalls the stream (``rsync_relay.py``), a tmpfs (``tmpfs``) and the daemon
as a real process under another uid without CAP_LEASE (``unprivileged``)."""
