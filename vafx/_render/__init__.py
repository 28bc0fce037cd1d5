"""Re-rendering the fitted face into the photo, its shading, and Poisson blending."""
