"""The alien vocabulary: basic words in facets (``words``) and how sure a word must be before it is shown (``evidence``).

The lowest layer of the tagging side: encoders, the tag stage, labelled photos and recipes read it.
"""
