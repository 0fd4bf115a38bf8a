"""The commands' work, under the CLI: scan, infer, materialize, stats, similar, near-duplicates, kits, the
review order, the demo archive. The review page is drumcat.web."""
