"""Captions: a sentence a photo from an image-to-text model."""
