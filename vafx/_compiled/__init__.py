"""Compiled programs: JAX's compilation cache and vafx's persistent exported programs."""
