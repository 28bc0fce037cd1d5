"""Photos, landmark files, meshes and atomic writes: vafx's file formats."""
