"""Health codes: rules as data, the precomputed status store and its history, manual changes
under four eyes, proxy bindings (this package); signed codes and fast lookups (signing*, keys*,
lookup* modules)."""
