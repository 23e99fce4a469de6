"""Virtual corridor: procedural textures, display layout, moderngl renderer, photodiode patch.

Importing this package does not import moderngl; `rig.vr.renderer` and `rig.vr.preview` do.
"""
