"""The process exit codes the contract fixes (product.md, command line)."""

#: Done: everything asked for was done.
EXIT_OK = 0
#: Something failed and was named (a file not uploaded, a check that found a problem).
EXIT_FAILURE = 1
#: The command line could not be understood.
EXIT_USAGE = 2
#: The configuration is unusable (sysexits' EX_CONFIG; the unit does not restart on it).
EXIT_CONFIG = 78
