"""One module per tab: each lays out its components and returns them by name."""
