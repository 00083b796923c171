"""Where photos come from: a folder on disk, or the Hotels-50K dataset."""
