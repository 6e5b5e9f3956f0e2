"""The `crossmodal` command line: thin Typer commands over the `crossmodal` library."""
