"""Batch scoring: `discover` the input, `rows` (one file → item → row, shared by both engines), the `local`
and
Ray (`ray_engine`) engines, decoding processes under a time limit (`pool`), and the part `store` with one
writer per output format."""
