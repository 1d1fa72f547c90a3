"""The `keras-lr` command line: thin subcommands over the library."""
