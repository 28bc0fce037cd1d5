"""Everything that turns a target (V-A, emotion, AUs) into a deformation: bin models, controls, the default models."""
