"""From a photo to a fitted face: landmark detection, landmark fitting, photometric refinement."""
