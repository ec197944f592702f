"""Pure card building: the platform-neutral Card model, builders, renderers, action ids, UI strings."""
