"""The local runtime: the whole pipeline on one machine against moto's server (see localrun.cli)."""
