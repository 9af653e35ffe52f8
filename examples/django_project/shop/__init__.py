"""A tiny shop showing rampup in Django: middleware, a flag in a view, a template tag, a guard."""
