"""A generic text-classification domain built into the core (any ``text,label`` file). Filled in below."""
