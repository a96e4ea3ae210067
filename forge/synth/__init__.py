"""forge.synth."""
