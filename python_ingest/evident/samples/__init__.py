"""Deterministic sample generators, one module per reference source (`orders`; app events live in
`evident.sample`)."""
