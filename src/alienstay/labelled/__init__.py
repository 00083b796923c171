"""Labelled photos: a labels file, how right a tagger is on it, and the floors calibrated from it."""
