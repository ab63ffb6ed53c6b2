"""gridwatch: a streaming, real-time control room for a city's grids."""

__version__ = "0.1.0"
