"""The faust agents and, beside them, the pure decision modules they call."""
