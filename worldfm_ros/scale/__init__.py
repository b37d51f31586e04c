"""Work beyond one process: Ray jobs (``render_batch``). Ray is optional and imported only here."""
