"""The gallery's word index: posting lists and tag rows built after tagging, memory-mapped to read."""
