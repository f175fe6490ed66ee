"""Pictures beyond plain slices: colour maps, overlays, montages, animations, viewer, preview."""
