"""How a world is made: the builders (``build_*``) that turn captures, images, meshes and bags into a
scene on disk, and their geometry (back-projection, fusion, registration, ground, completion)."""
