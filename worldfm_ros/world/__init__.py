"""Worlds: the protocol every kind of world implements (``base``), its kinds (``pointcloud``), and
opening them from disk (``store``)."""
