"""Restyling: recipes of one parameter, the editors that apply them (diffusion or a classical grade), masks, and the faithfulness guard.

The stage itself is ``alienstay.stages.edit``; the editors, maskers and control maps are registry entries.
"""
